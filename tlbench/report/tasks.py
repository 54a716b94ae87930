"""Task types in a report: which targets are compared together, and how their headline reads.

Every target is scored by its task type's headline metric in that metric's direction
(`aggregate`). Targets of different task types never share a table, a mean or a colour
scale: an accuracy and an R² cannot be averaged, and an NT of 0.1 in one is not an NT
of 0.1 in the other. Each (task type, headline metric) pair is one `TaskGroup` (a pair,
not the task alone, so that a task whose headline changed between plugin versions is
still never pooled), and every writer (Markdown, HTML, figures, summary.json) walks the
same groups in the same order.

Wording comes from the metric's spec, never from the task's name: columns and captions
are named after the metric ("test r2", "gap (test − train mae)") and follow its
direction. tlbench 0.1 knew one metric, accuracy, and its leaderboards abbreviated it
("test acc", "gap (train − test)"); that metric keeps 0.1's wording so classification
leaderboards read, and diff, as they always have.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from ..results.records import V1_TASK
from .aggregate import complete_targets

FIGURES = ("headline", "nt", "gap")
"""The figures drawn for each task type (see `TaskGroup.figure_id`)."""


def _bound(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


@dataclass(frozen=True)
class Metric:
    """A headline metric as the report needs it: name, direction and range."""

    name: str
    higher_is_better: bool = True
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, row) -> "Metric":
        """The headline of a cell or run row (`metric`, `higher_is_better`, `metric_low`, `metric_high`)."""
        return cls(str(row["metric"]), bool(row["higher_is_better"]), _bound(row.get("metric_low")),
                   _bound(row.get("metric_high")))

    @property
    def legacy(self) -> bool:
        """tlbench 0.1's metric (accuracy, higher is better): worded as 0.1 worded it."""
        return self.name == V1_TASK["headline"] and self.higher_is_better

    @property
    def short(self) -> str:
        """The name in column headers."""
        return "acc" if self.legacy else self.name

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def gap_order(self) -> str:
        """How the gap is computed, so that positive means better on the data the run trained on."""
        return "train − test" if self.higher_is_better else "test − train"

    @property
    def gap_formula(self) -> str:
        return f"{self.gap_order} {self.name}"

    @property
    def gap_header(self) -> str:
        return "gap (train − test)" if self.legacy else f"gap ({self.gap_formula})"

    @property
    def bounded(self) -> bool:
        return self.low is not None and self.high is not None


@dataclass(frozen=True)
class TaskGroup:
    """The targets of one task type, with their cells and their own across-targets table."""

    task: str
    metric: Metric
    cells: pd.DataFrame
    overall: pd.DataFrame
    suffix: str = ""
    """'' when the report has one task type; otherwise a slug, unique in the report, that
    tells this group's figure and table ids apart."""

    @property
    def legacy(self) -> bool:
        """Classification by accuracy: the only task type tlbench 0.1 knew."""
        return self.task == V1_TASK["name"] and self.metric.legacy

    @property
    def heading(self) -> str:
        return f"Task type: {self.task} — headline {self.metric.name} ({self.metric.direction})"

    @property
    def target_labels(self) -> list[str]:
        return sorted(self.cells["target_label"].unique())

    @property
    def complete_labels(self) -> list[str]:
        """Targets on which every compared entry of this task type has a result."""
        labels = dict(zip(self.cells["target_key"], self.cells["target_label"]))
        return sorted(labels[key] for key in complete_targets(self.cells))

    def figure_id(self, figure: str) -> str:
        """Stable, unique ids: 'accuracy-figure', 'nt-figure', 'gap-figure' for a report of
        one task type (named after its metric), '<...>-figure-<task>' with several."""
        name = slug(self.metric.name) if figure == "headline" else figure
        return f"{name}-figure" + (f"-{self.suffix}" if self.suffix else "")

    def summary(self) -> dict:
        """The group as summary.json's meta lists it."""
        return {"task": self.task, "metric": self.metric.name, "higher_is_better": self.metric.higher_is_better,
                "low": self.metric.low, "high": self.metric.high, "targets": self.target_labels,
                "complete_targets": self.complete_labels}


def slug(text: str) -> str:
    """Text made safe for an HTML id: lower-case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def _suffixes(keys: list[tuple[str, str]]) -> list[str]:
    """A unique slug per (task, metric): the task's name when that is enough."""
    if len(keys) == 1:
        return [""]
    for candidates in ([slug(task) for task, _ in keys], [slug(f"{task}-{metric}") for task, metric in keys]):
        if len(set(candidates)) == len(candidates):
            return candidates
    return [f"{slug(task)}-{number}" for number, (task, _) in enumerate(keys)]


def task_groups(cells: pd.DataFrame, overall: pd.DataFrame | None = None) -> list[TaskGroup]:
    """The report's task types in a stable order (by task name, then metric)."""
    if cells.empty:
        return []
    keyed = list(cells.groupby(["task", "metric"], sort=True))
    suffixes = _suffixes([key for key, _ in keyed])
    groups = []
    for ((task, metric), of_group), suffix in zip(keyed, suffixes):
        rows = overall if overall is not None else pd.DataFrame(columns=["task", "metric"])
        of_overall = rows[(rows["task"] == task) & (rows["metric"] == metric)].reset_index(drop=True)
        groups.append(TaskGroup(str(task), Metric.of(of_group.iloc[0]), of_group, of_overall, suffix))
    return groups
