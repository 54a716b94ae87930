"""The statistics across targets (`across`) as the report's Markdown and HTML sections.

Each tested view gets one table, a method per row: mean rank, its groups (a letter per
maximal set of methods the post-hoc tests, Wilcoxon–Holm by default, do not tell
apart: methods sharing a letter are not different), and the IQM of its normalised gain with the stratified-bootstrap
interval; then the omnibus tests, the Bayesian verdicts of the top pairs and, for the
entries view, the probability-of-improvement matrix. A view with fewer complete blocks
than `ranking.MIN_BLOCKS` says so and shows mean ranks only.
"""

from __future__ import annotations

import string

import pandas as pd

from . import display
from .across import AcrossTargets, View, shown_views
from .comparison_plots import figure_id
from .ranking import ALPHA, MIN_BLOCKS

MAX_MATRIX = 15
"""The probability-of-improvement matrix is printed for at most this many methods
(summary.json always has it; the heatmap shows it for any number)."""
VIEW_TITLES = {"entries": "Entries (source · strategy) over targets",
               "strategies": "Strategies over targets and sources",
               "sources": "Sources over targets and strategies"}


def _letters(view: View) -> dict[str, str]:
    """A compact letter display: one letter per maximal set of methods the tests do not
    tell apart (a method different from all others has a letter of its own)."""
    from .ranking import groups

    letters = {method: "" for method in view.methods}
    for number, group in enumerate(groups(view.ranks.posthoc_pvalues, view.ranks.ranks, min_size=1)):
        letter = string.ascii_lowercase[number] if number < 26 else f"g{number + 1}"
        for method in group:
            letters[method] += letter
    return letters


def view_rows(view: View) -> pd.DataFrame:
    letters = _letters(view) if view.ranks.tested else {}
    rows = []
    for method in view.ranks.methods:
        iqm = view.iqm.get(method)
        rows.append({"method": method, "mean_rank": float(view.ranks.ranks[method]),
                     "group": letters.get(method, ""),
                     "iqm": iqm[0] if iqm else float("nan"), "iqm_low": iqm[1] if iqm else float("nan"),
                     "iqm_high": iqm[2] if iqm else float("nan"), "runs": iqm[3] if iqm else 0})
    return pd.DataFrame(rows)


def view_columns(view: View) -> list[display.Column]:
    columns = [display.Column("method", lambda r: str(r["method"]), lambda r: str(r["method"]), numeric=False),
               display.Column("mean rank", lambda r: display.num(r["mean_rank"], 2), lambda r: r["mean_rank"],
                              title="1 = best on every block; ties share the average rank")]
    if view.ranks.tested:
        columns.append(display.Column(
            "group", lambda r: str(r["group"]), lambda r: str(r["group"]), numeric=False,
            title=f"methods sharing a letter are not different ({view.ranks.posthoc_name}, α = {ALPHA})"))
    columns += [
        display.Column("IQM gain", lambda r: display.num(r["iqm"], 3, signed=True), lambda r: r["iqm"],
                       title="interquartile mean of the normalised gain over scratch, over every run"),
        display.Column("95% interval", lambda r: display.interval(r["iqm_low"], r["iqm_high"], 3, signed=True),
                       lambda r: r["iqm_low"], title="stratified bootstrap over runs within each target"),
        display.Column("runs", lambda r: str(int(r["runs"])), lambda r: int(r["runs"]))]
    return columns


def _p(value: float) -> str:
    return "p < 0.0001" if value < 1e-4 else f"p = {value:.4f}"


def test_lines(view: View) -> list[str]:
    ranks = view.ranks
    k, n = len(ranks.methods), ranks.n_blocks
    lines = []
    if not ranks.tested:
        lines.append(f"{ranks.note.capitalize()}.")
        return lines
    if ranks.note:
        lines.append(f"{ranks.note.capitalize()}.")
    if ranks.friedman:
        f = ranks.friedman
        lines.append(f"Friedman χ² = {f.statistic:.2f}, {_p(f.pvalue)}; Iman–Davenport F = "
                     f"{f.iman_davenport:.2f}, {_p(f.iman_davenport_pvalue)} ({k} methods, {n} blocks).")
    lines.append(f"Nemenyi critical difference at α = {ALPHA}: {ranks.cd:.2f} ranks (k = {k}, N = {n}). "
                 f"Groups: {ranks.posthoc_name}.")
    for verdict in ranks.bayes:
        lines.append(f"Bayesian signed-rank, {verdict.left} vs {verdict.right} (ROPE ±{verdict.rope:g}): "
                     f"P({verdict.left} better) = {verdict.p_left:.3f}, P(equivalent) = {verdict.p_rope:.3f}, "
                     f"P({verdict.right} better) = {verdict.p_right:.3f}: {verdict.verdict}.")
    return lines


def explanation(stats: AcrossTargets) -> str:
    normalisation = next((view.normalisation for view in stats.views if view.normalisation), "")
    return (f"Methods are compared on the blocks where every one of them has a result (baselines and upper bounds "
            f"are not methods). Mean rank: over each block's mean test {stats.group.metric.name}; 1 is best. "
            f"Tests need at least {MIN_BLOCKS} blocks. Normalised gain of a run: {normalisation or 'n/a'}, with "
            f"m_scratch its same-seed from-scratch baseline (0 = no better than scratch, below 0 = worse); its "
            f"IQM pools every run of the method and its interval is a stratified bootstrap (targets as strata). "
            f"P(X > Y) is the chance that a run of X beats a run of Y on the same target, averaged over targets.")


def improvement_rows(view: View) -> tuple[list[str], list[list[str]]]:
    methods = view.ranks.methods
    rows = [[a, *("—" if a == b else f"{view.improvement[a][b]:.2f}" for b in methods)] for a in methods]
    return ["P(row > column)", *methods], rows


def heading(stats: AcrossTargets, several: bool) -> str:
    return "Statistics across targets" + (f": {stats.group.task} ({stats.group.metric.name})" if several else "")


def across_markdown(stats: AcrossTargets, several: bool) -> str:
    """The section (from its level-2 heading), or '' when no view compares anything."""
    from tabulate import tabulate

    from .markdown import text

    views = shown_views(stats)
    if not views:
        return ""
    lines = [f"## {text(heading(stats, several))}", "", text(explanation(stats))]
    for view in views:
        lines += ["", f"**{text(VIEW_TITLES[view.name])}** ({view.ranks.n_blocks} blocks)", ""]
        columns = view_columns(view)
        lines.append(tabulate([[text(c.text(row)) for c in columns] for _, row in view_rows(view).iterrows()],
                              headers=[text(c.header) for c in columns], tablefmt="github", disable_numparse=True))
        lines += [""] + [f"- {text(line)}" for line in test_lines(view) + view.notes]
        if view.name == "entries" and view.improvement and len(view.methods) <= MAX_MATRIX:
            headers, rows = improvement_rows(view)
            lines += ["", tabulate([[text(c) for c in row] for row in rows], headers=[text(h) for h in headers],
                                   tablefmt="github", disable_numparse=True)]
    return "\n".join(lines)


FIGURE_CAPTIONS = {
    "cd": "Critical-difference diagram: mean rank of each method (1 = best); a bar joins methods that no "
          "{posthoc} test tells apart at α = 0.05.",
    "iqm": "IQM of the normalised gain over scratch per method, with its 95% stratified-bootstrap interval.",
    "improvement": "Probability of improvement: the chance that a run of the row's method beats a run of the "
                   "column's on the same target, averaged over targets.",
    "profiles": "Performance profiles: the fraction of runs whose normalised gain exceeds τ, with 95% "
                "stratified-bootstrap bands; a curve above another is better at every threshold.",
}


def across_html(stats: AcrossTargets, several: bool, figures: dict[str, tuple[bytes, bytes]]) -> str:
    """The section as HTML ('' when no view compares anything); its id and its figures'
    ids carry the task type's suffix when the report has several."""
    from .html import esc, figure, sortable_table

    views = shown_views(stats)
    if not views:
        return ""
    prefix = figure_prefix(stats)
    section_id = "statistics" + (f"-{stats.group.suffix}" if stats.group.suffix else "")
    parts = [f'<section id="{esc(section_id)}"><h2>{esc(heading(stats, several))}</h2>',
             f'<p class="caption">{esc(explanation(stats))}</p>']
    for view in views:
        parts.append(f"<h4>{esc(VIEW_TITLES[view.name])} ({view.ranks.n_blocks} blocks)</h4>")
        parts.append(sortable_table(view_rows(view), view_columns(view), f"{section_id}-{view.name}"))
        parts.append("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in test_lines(view) + view.notes) + "</ul>")
        for kind in ("cd", "iqm", "profiles", "improvement"):
            key = figure_id(prefix, view.name, kind)
            if key in figures:
                caption = FIGURE_CAPTIONS[kind].format(posthoc=view.ranks.posthoc_name)
                parts.append(figure(figures[key][0], f"{kind} figure, {view.name}", caption, key))
    parts.append("</section>")
    return "".join(parts)


def figure_prefix(stats: AcrossTargets) -> str:
    """What a task type's figure ids and file names start with ('' with one task type)."""
    return f"{stats.group.suffix}-" if stats.group.suffix else ""
