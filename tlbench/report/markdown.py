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
    classification by accuracy, the general rules otherwise; and, when some targets are
    groups of targets (domain adaptation), how their comparisons read."""
    text = DEFINITIONS if all(group.legacy for group in groups) else GENERAL_DEFINITIONS
    extra = group_definitions(groups)
    return f"{text} {extra}" if extra else text


def _has(cells: pd.DataFrame, column: str) -> pd.Series:
    """A column's truth per cell (False where the table lacks it)."""
    if column not in cells:
        return pd.Series(False, index=cells.index)
    return cells[column].fillna(False).astype(bool)


def _is_group(cells: pd.DataFrame) -> bool:
    return "scored" in cells and cells["scored"].notna().any()


def group_definitions(groups: list[TaskGroup]) -> str:
    """How the numbers of runs on groups of targets read; '' when a report has none."""
    cells = [group.cells for group in groups]
    if not any(_is_group(c) for c in cells):
        return ""
    plugins = sorted({p for c in cells for p in display.compared_plugins(c)})
    text = ("On a group of targets (domain adaptation: a domain with labels and one without, say), every run is "
            "scored on the test split of its scored role, named under the target's heading.")
    for plugin in plugins:
        text += (f" NT vs {plugin} = the test headline − that of the {plugin} run of the same source, group and "
                 f"seed (the run it is paired with), signed so that below 0 is worse; flagged \"worse than "
                 f"{plugin}\" — negative transfer of the adaptation itself — only when its paired 95% interval "
                 "lies below 0.")
    if any(_has(c, "selection_shown").any() for c in cells):
        text += (" [selection R] marks a cell whose checkpoint was chosen by rule R rather than by the rule of the "
                 "runs the others are compared with.")
    if any(_has(c, "upper_bound").any() for c in cells):
        text += (" An upper bound was selected with labels the method is not given (target labels): it is "
                 "shown in a table of its own, never ranked, never best, and left out of \"vs best\" and of the "
                 "view across targets.")
    if any(c["domain_gap_mean"].notna().any() for c in cells if "domain_gap_mean" in c):
        text += (" The domain gap is the test headline of the runs the others are compared with on the other "
                 "domain's test split − on the scored one (sign flipped where lower is better): how much the "
                 "shift costs before any adaptation.")
    return text


def target_parts(cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A target's cells as its tables show them: the ranked ones, the upper bounds, and
    the reference cells that carry a domain gap."""
    upper = _has(cells, "upper_bound")
    gaps = cells[cells["domain_gap_mean"].notna()] if "domain_gap_mean" in cells else cells.iloc[0:0]
    return cells[~upper], cells[upper], gaps


def target_intro(cells: pd.DataFrame) -> str:
    """What a group target's cells were scored on and selected by ('' for one target)."""
    if not _is_group(cells):
        return ""
    first = cells[cells["scored"].notna()].iloc[0]
    name = first.get("scored_target")
    scored = f"{name} ({first['scored']})" if isinstance(name, str) and name else first["scored"]
    text = f"Scored on the test split of {scored}."
    rules = cells[cells["selection"] != ""] if "selection" in cells else cells.iloc[0:0]
    if len(rules):
        shown = _has(rules, "selection_shown")
        plain = sorted(set(rules.loc[~shown, "selection"]))
        if not shown.any():
            text += f" Checkpoints selected by {', '.join(plain)} in every cell."
        elif plain:
            text += f" Checkpoints selected by {', '.join(plain)} unless marked [selection …]."
        else:
            text += " Each cell's selection rule is marked [selection …]."
    return text


def upper_bounds_caption(cells: pd.DataFrame) -> str:
    revealed = sorted({item for text in cells["revealed"] if isinstance(text, str) for item in text.split(", ")
                       if item})
    given = f" ({', '.join(revealed)})" if revealed else ""
    return (f"Upper bounds — selected on target labels{given}, which the method is not given: what selection could "
            "reach, not what the method does. Not ranked, never best, not in \"vs best\" nor across targets.")


def domain_gap_caption(cells: pd.DataFrame, metric: Metric) -> str:
    names = ", ".join(sorted({display.label(row) for _, row in cells.iterrows()}))
    return (f"Domain gap of {names}: test {metric.name} on the other domain − on the scored one, per seed "
            f"({'positive' if metric.higher_is_better else 'positive (sign flipped)'}: worse on the scored domain), "
            "mean with its 95% interval over seeds.")


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
        intro = target_intro(target)
        if intro:
            lines += [text(intro), ""]
        ranked, upper, gaps = target_parts(target)
        columns = display.cell_columns(group.metric, display.compared_plugins(target))
        lines.append(_table(ranked, columns))
        if len(upper):
            lines += ["", text(upper_bounds_caption(upper)), "", _table(upper, columns)]
        if len(gaps):
            lines += ["", text(domain_gap_caption(gaps, group.metric)), "",
                      _table(gaps, display.domain_gap_columns(group.metric, gaps))]
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
            + "; they are never averaged over missing cells. Baselines are not ranked"
            + (", nor are upper bounds." if _has(group.cells, "upper_bound").any() else "."))


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
