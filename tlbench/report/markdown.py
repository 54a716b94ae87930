"""leaderboard.md: the tables a reader needs, as GitHub-flavoured Markdown (tabulate).

Names come from suites, plugins and other people's records, so every one is made inert:
control characters dropped, HTML special characters written as entities, and pipes and
backticks escaped so a name cannot break a table. Metric and task names come from
records too, so headers and headings are escaped the same way.
"""

from __future__ import annotations

import re

import pandas as pd
from tabulate import tabulate

from . import display
from .tasks import Metric, TaskGroup, task_groups

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

DEFINITIONS = (
    "Test accuracy is top-1 on the target's test split at the checkpoint selected on validation; "
    "± is the standard deviation over seeds and the 95% CI a Student-t interval for the mean. "
    "\"vs best\" is the paired per-seed difference to the best cell of the target: ≈ best when its "
    "95% interval reaches 0, so the two are not separable with these seeds. Gap = train − test accuracy. "
    "NT = test accuracy − that of the same-seed from-scratch baseline; flagged as negative transfer only "
    "when its paired 95% interval lies below 0. A missing cell has no successful run; it is shown, "
    "never averaged away.")
"""The definitions of tlbench 0.1, where every target is classification by accuracy."""

GENERAL_DEFINITIONS = (
    "Each target is scored by its task type's headline metric, named in its tables, in that metric's "
    "direction: ranks, \"best\" and \"vs best\" follow it. The test value is measured on the target's test "
    "split at the checkpoint selected on validation; ± is the standard deviation over seeds and the 95% CI a "
    "Student-t interval for the mean, cut to the range the metric can take. \"vs best\" is the paired per-seed "
    "difference to the best cell of the target, signed so that below 0 is worse: ≈ best when its 95% interval "
    "reaches 0, so the two are not separable with these seeds. Gap = train − test where higher is better, "
    "test − train where lower is better, so a positive gap always means better on the data the run trained "
    "on. NT = the test headline − that of the same-seed from-scratch baseline, sign flipped where lower is "
    "better, so NT < 0 is always worse; flagged as negative transfer only when its paired 95% interval lies "
    "below 0. Task types are compared separately: their metrics are never averaged together. A missing cell "
    "has no successful run; it is shown, never averaged away.")
"""The definitions for any mix of task types."""


def text(value) -> str:
    """A string from outside tlbench, safe inside a Markdown table."""
    value = _CONTROL.sub(" ", str(value))
    for raw, safe in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "\\`")):
        value = value.replace(raw, safe)
    return value


def _table(rows: pd.DataFrame, columns: list[display.Column]) -> str:
    body = [[text(column.text(row)) for column in columns] for _, row in rows.iterrows()]
    return tabulate(body, headers=[text(column.header) for column in columns], tablefmt="github",
                    disable_numparse=True)


def definitions(groups: list[TaskGroup]) -> str:
    """How to read the numbers: tlbench 0.1's paragraph while every target is
    classification by accuracy, the general rules otherwise."""
    return DEFINITIONS if all(group.legacy for group in groups) else GENERAL_DEFINITIONS


def leaderboard_markdown(cells: pd.DataFrame, overall: pd.DataFrame, meta: dict,
                         sections: list[str] = ()) -> str:
    """The leaderboard; `sections` (Markdown, starting with a level-2 heading) come
    before the provenance. With several task types, each has a section of its own
    (its targets, then its own across-targets table); with one, the targets and the
    across-targets table are sections of the page itself."""
    groups = task_groups(cells, overall)
    lines = [f"# tlbench leaderboard: {text(meta['title'])}", "", text(meta["headline"]), "", definitions(groups)]
    if cells.empty:
        lines += ["", "No records yet."]
    several = len(groups) > 1
    for group in groups:
        if several:
            lines += ["", f"## {text(group.heading)}"]
        lines += _group_markdown(group, "###" if several else "##", several)
    for section in sections:
        lines += ["", section]
    lines += ["", "## Provenance", ""] + [f"- {text(line)}" for line in provenance_lines(meta["provenance"])]
    if meta.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {text(note)}" for note in meta["notes"]]
    return "\n".join(lines) + "\n"


def _group_markdown(group: TaskGroup, level: str, several: bool) -> list[str]:
    lines = []
    for label, target in group.cells.groupby("target_label", sort=True):
        lines += ["", f"{level} Target: {text(label)}{_size(target)}", ""]
        if not group.metric.legacy:
            lines += [text(ranked_by(group.metric)), ""]
        lines.append(_table(target, display.cell_columns(group.metric)))
    if not group.overall.empty:
        heading = f"Across {group.task} targets" if several else "Across targets"
        lines += ["", f"{level} {text(heading)}", "", text(across_targets(group, several)), ""]
        lines.append(_table(group.overall, display.overall_columns(group.metric)))
    return lines


def ranked_by(metric: Metric) -> str:
    return f"Ranked by test {metric.name} ({metric.direction})."


def across_targets(group: TaskGroup, several: bool) -> str:
    """What the across-targets table averages over (never a missing cell)."""
    complete = group.complete_labels
    targets = "targets of this task type" if several else "targets"
    return (f"Mean {group.metric.name} and mean rank are over the {len(complete)} of {len(group.target_labels)} "
            f"{targets} on which every entry has results" + (f" ({', '.join(complete)})" if complete else "")
            + "; they are never averaged over missing cells. Baselines are not ranked.")


def _size(group: pd.DataFrame) -> str:
    sizes = group["n_train"].dropna()
    return f" (n_train = {sizes.iloc[0]:.0f})" if len(sizes) and sizes.nunique() == 1 else ""


def provenance_lines(provenance: dict) -> list[str]:
    lines = []
    for machine in provenance["machines"]:
        lines.append(f"machine {machine['host']}: {machine['runs']} runs ({machine['ok']} ok) on "
                     f"{', '.join(machine['devices']) or '?'}; tlbench {', '.join(machine['tlbench']) or '?'}; "
                     f"git {', '.join(machine['git_revisions']) or 'unknown'}; "
                     f"{machine['first'] or '?'} to {machine['last'] or '?'}")
    for library, versions in provenance["versions"].items():
        lines.append(f"{library}: " + ", ".join(f"{v} ({n} runs)" for v, n in versions.items()))
    return lines
