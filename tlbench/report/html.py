"""leaderboard.html: one self-contained page, safe to open whoever wrote the records.

The page is laid out as leaderboard.md is: with one task type, the across-targets
table, the targets and the figures; with several, one section per task type holding
its own across-targets table, targets and figures (ids suffixed by the task type's
slug, so that every id stays unique and stable).

Everything is inline (style, the small table sorter, the figures as PNG data URIs), so the
file can be mailed or published as it is and opens without a network. Every string that
comes from a suite, a plugin or a record goes through `esc`. On top of that the page
carries a Content-Security-Policy that allows no network at all and runs only the
page's own script and style (by their hashes): even a name that escaped escaping could
not load or run anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools

import pandas as pd

from . import display
from .markdown import (across_targets, definitions, domain_gap_caption, provenance_lines, ranked_by, target_intro,
                       target_parts, upper_bounds_caption)
from .tasks import TaskGroup, task_groups

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 1.5rem 3rem; color: #1b1b1b; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
nav a { margin-right: 1rem; } .headline { font-weight: 600; } .defs { color: #444; max-width: 70rem; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d6d6d6; padding: .25rem .5rem; text-align: left; vertical-align: top; }
td { white-space: nowrap; } td.wrap { white-space: normal; min-width: 20rem; }
.scroll { overflow-x: auto; }
th { background: #f3f3f3; } th button { all: unset; cursor: pointer; font-weight: 600; }
th button:focus-visible { outline: 2px solid #3569c8; }
th[aria-sort=ascending] button::after { content: " \\25B2"; }
th[aria-sort=descending] button::after { content: " \\25BC"; }
td.num { text-align: right; white-space: nowrap; }
tr.missing td { color: #777; background: #fafafa; font-style: italic; }
tr.best td { background: #eef7ee; } td.negative { background: #fbe3e1; font-weight: 600; }
td.helps { background: #e6f0fb; } tr.baseline td { color: #444; }
tr.upper-bound td { color: #555; background: #fdf8e8; } p.caption { color: #444; max-width: 70rem; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #444; max-width: 70rem; } .notes li { margin-bottom: .3rem; }
code { font-size: 90%; }
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(headers, function (th, index) {
    th.querySelector("button").addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(headers, function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.dataset.type === "number";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[index].dataset.sort, y = b.cells[index].dataset.sort;
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def esc(value) -> str:
    """Text from outside tlbench, inert in HTML content and in quoted attributes."""
    return html.escape(str(value), quote=True)


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode() + "'"


CSP = ("default-src 'none'; img-src data:; style-src " + _csp_hash(STYLE) + "; script-src "
       + _csp_hash(SCRIPT) + "; base-uri 'none'; form-action 'none'")


def sortable_table(rows: pd.DataFrame, columns: list[display.Column], table_id: str,
                   row_class=lambda row: "", cell_class=lambda column, row: "") -> str:
    head = "".join(
        f'<th scope="col" data-type="{"number" if c.numeric else "text"}"'
        + (f' title="{esc(c.title)}"' if c.title else "") + f'><button type="button">{esc(c.header)}</button></th>'
        for c in columns)
    body = []
    for _, row in rows.iterrows():
        cells = []
        for column in columns:
            key = column.key(row)
            classes = " ".join(filter(None, ["num" if column.numeric else "", cell_class(column, row)]))
            cells.append(f'<td data-sort="{esc("" if key is None else key)}"'
                         + (f' class="{classes}"' if classes else "") + f">{esc(column.text(row))}</td>")
        klass = row_class(row)
        body.append((f'<tr class="{klass}">' if klass else "<tr>") + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="sortable" id="{esc(table_id)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _cell_row_class(cell) -> str:
    classes = []
    if cell["n_seeds"] == 0:
        classes.append("missing")
    if cell["vs_best"] == "best":
        classes.append("best")
    if cell["baseline"]:
        classes.append("baseline")
    if display.truthy(cell, "upper_bound"):
        classes.append("upper-bound")
    return " ".join(classes)


def _cell_class(column: display.Column, cell) -> str:
    return column.flag(cell) if column.flag is not None else ""


def figure(png: bytes | None, alt: str, caption: str, figure_id: str) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="{esc(figure_id)}"><img src="data:image/png;base64,{data}" alt="{esc(alt)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def failures_table(frame: pd.DataFrame) -> str:
    failed = frame[frame["status"] != "ok"]
    if failed.empty:
        return "<p>No failed runs.</p>"
    columns = [display.Column(header, (lambda name: lambda r: "" if display.is_nan(r[name]) else str(r[name])[:300])(name),
                              (lambda name: lambda r: "" if display.is_nan(r[name]) else str(r[name]))(name),
                              numeric=name == "seed")
               for header, name in (("status", "status"), ("target", "target_label"), ("source", "source"),
                                    ("strategy", "strategy"), ("seed", "seed"), ("error", "error_type"),
                                    ("message", "error_message"), ("run id", "run_id"), ("host", "host"))]
    return sortable_table(failed, columns, "failures")


def leaderboard_html(frame: pd.DataFrame, cells: pd.DataFrame, overall: pd.DataFrame, meta: dict,
                     figures: dict[str, bytes | None], sections: list[str] = ()) -> str:
    """The page; `figures` are PNGs by figure id (`plots.task_figures`); `sections`
    (escaped HTML ``<section>`` elements) come after the figures.

    With one task type the page has today's sections (across targets, by target,
    figures); with several, one section per task type holds its own across-targets
    table, its targets and its figures, as in leaderboard.md."""
    groups = task_groups(cells, overall)
    parts = [f"<h1>tlbench leaderboard: {esc(meta['title'])}</h1>",
             f'<p class="headline">{esc(meta["headline"])}</p>', f'<p class="defs">{esc(definitions(groups))}</p>']
    parts += _by_task_type(groups, figures) if len(groups) > 1 else _one_task_type(groups, figures)
    parts.extend(sections)
    parts.append('<section id="failures-section"><h2>Failed runs</h2>')
    parts.append(failures_table(frame))
    parts.append('</section><section id="provenance"><h2>Provenance</h2>')
    parts.append(_machines_table(meta["provenance"]["machines"]))
    parts.append("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in provenance_lines(
        {"machines": [], "versions": meta["provenance"]["versions"]})) + "</ul>")
    parts.append(f"<p>Report built {esc(meta['built_at'])} by tlbench {esc(meta['tlbench'])}.</p>")
    parts.append('</section><section id="notes" class="notes"><h2>Notes</h2>')
    notes = meta.get("notes") or []
    parts.append("<ul>" + "".join(f"<li>{esc(note)}</li>" for note in notes) + "</ul>" if notes else "<p>None.</p>")
    parts.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>tlbench leaderboard: {esc(meta['title'])}</title><style>{STYLE}</style></head>\n<body>"
            + "\n".join(parts) + f"<script>{SCRIPT}</script></body></html>\n")


UPPER_NOTE = (" Strategies marked upper bound were selected on target labels the method is not given: drawn for "
              "reference, never ranked.")
NO_FIGURES = "<p>No figures: no successful runs yet.</p>"
PAGE_LINKS = '<a href="#failures-section">failures</a><a href="#provenance">provenance</a><a href="#notes">notes</a>'


def _one_task_type(groups: list[TaskGroup], figures: dict[str, bytes | None]) -> list[str]:
    """tlbench 0.1's layout: across targets, by target, figures (groups: none or one)."""
    group = groups[0] if groups else None
    return ['<nav><a href="#overall">across targets</a><a href="#targets">by target</a>'
            f'<a href="#figures">figures</a>{PAGE_LINKS}</nav>',
            '<section id="overall"><h2>Across targets</h2>',
            *(_across(group, "overall-table", False) if group else ["<p>No entries to compare.</p>"]),
            '</section><section id="targets"><h2>By target</h2>',
            *(_targets(group, itertools.count(), "h3") if group else ["<p>No records yet.</p>"]),
            '</section><section id="figures"><h2>Figures</h2>',
            *((_figures(group, figures) if group else []) or [NO_FIGURES]),
            "</section>"]


def _by_task_type(groups: list[TaskGroup], figures: dict[str, bytes | None]) -> list[str]:
    """One section per task type: its across-targets table, its targets, its figures."""
    links = "".join(f'<a href="#task-{esc(group.suffix)}">{esc(group.task)} ({esc(group.metric.name)})</a>'
                    for group in groups)
    parts = [f"<nav>{links}{PAGE_LINKS}</nav>"]
    numbers = itertools.count()
    for group in groups:
        parts += [f'<section id="task-{esc(group.suffix)}"><h2>{esc(group.heading)}</h2>',
                  f"<h3>Across {esc(group.task)} targets</h3>",
                  *_across(group, f"overall-table-{group.suffix}", True),
                  *_targets(group, numbers, "h3"),
                  "<h3>Figures</h3>", *(_figures(group, figures) or [NO_FIGURES]), "</section>"]
    return parts


def _across(group: TaskGroup, table_id: str, several: bool) -> list[str]:
    """A task type's across-targets table with what it averages over."""
    if group.overall.empty:
        return ["<p>No entries to compare.</p>"]
    return [f"<p>{esc(across_targets(group, several))} Click a header to sort.</p>",
            sortable_table(group.overall, display.overall_columns(group.metric), table_id)]


def _targets(group: TaskGroup, numbers, heading: str) -> list[str]:
    """One sortable table per target; `numbers` hands out page-wide table numbers."""
    parts = []
    for target, cells in group.cells.groupby("target_label", sort=True):
        sizes = cells["n_train"].dropna()
        size = f" (n_train = {sizes.iloc[0]:.0f})" if len(sizes) and sizes.nunique() == 1 else ""
        parts.append(f"<{heading}>Target: {esc(target)}{esc(size)}</{heading}>")
        if not group.metric.legacy:
            parts.append(f"<p>{esc(ranked_by(group.metric))}</p>")
        intro = target_intro(cells)
        if intro:
            parts.append(f"<p>{esc(intro)}</p>")
        ranked, upper, gaps = target_parts(cells)
        columns = display.cell_columns(group.metric, display.compared_plugins(cells))
        number = next(numbers)
        parts.append(sortable_table(ranked, columns, f"target-{number}",
                                    row_class=_cell_row_class, cell_class=_cell_class))
        if len(upper):
            parts.append(f'<p class="caption">{esc(upper_bounds_caption(upper))}</p>')
            parts.append(sortable_table(upper, columns, f"target-{number}-upper-bounds",
                                        row_class=_cell_row_class, cell_class=_cell_class))
        if len(gaps):
            parts.append(f'<p class="caption">{esc(domain_gap_caption(gaps, group.metric))}</p>')
            parts.append(sortable_table(gaps, display.domain_gap_columns(group.metric, gaps),
                                        f"target-{number}-domain-gap"))
    return parts


def _figures(group: TaskGroup, figures: dict[str, bytes | None]) -> list[str]:
    """A task type's figures, captioned in its metric and direction ([] when none drawn)."""
    metric = group.metric
    name, lower = metric.name, not metric.higher_is_better
    upper = "upper_bound" in group.cells and group.cells["upper_bound"].astype(bool).any()
    flipped = ", sign flipped so that below 0 is worse" if lower else ""
    shown = [
        figure(figures.get(group.figure_id("headline")), f"test {name} per strategy and target with 95% intervals",
               f"Test {name} (mean over seeds, 95% Student-t interval) per strategy and source, one panel per "
               f"target{'; lower is better' if lower else ''}. Dashed line and band: the from-scratch baseline and "
               "its interval. × marks a missing cell." + (UPPER_NOTE if upper else ""), group.figure_id("headline")),
        figure(figures.get(group.figure_id("nt")), "negative-transfer heatmap, source by target per strategy",
               f"Negative-transfer score (test {name} − same-seed from-scratch baseline{flipped}), mean over "
               "seeds; outlined cells are flagged: their paired 95% interval lies below 0. Grey: missing or no "
               "baseline.", group.figure_id("nt")),
        figure(figures.get(group.figure_id("gap")), "overfitting gap against training-set size",
               f"Overfitting gap ({metric.gap_formula}, 95% interval) against the number of training examples, "
               "one colour per entry; an entry's points are joined where each size comes from a single target.",
               group.figure_id("gap")),
    ]
    return [part for part in shown if part]


def _machines_table(machines: list[dict]) -> str:
    rows = pd.DataFrame([{**m, "devices": ", ".join(m["devices"]), "tlbench": ", ".join(m["tlbench"]),
                          "git_revisions": ", ".join(m["git_revisions"]) or "unknown",
                          "first": m["first"] or "", "last": m["last"] or ""} for m in machines])
    if rows.empty:
        return "<p>No records.</p>"
    text = lambda name: lambda r: str(r[name])  # noqa: E731
    columns = [display.Column("machine", text("host"), text("host"), numeric=False),
               display.Column("runs", text("runs"), lambda r: r["runs"]),
               display.Column("ok", text("ok"), lambda r: r["ok"]),
               display.Column("devices", text("devices"), text("devices"), numeric=False),
               display.Column("tlbench", text("tlbench"), text("tlbench"), numeric=False),
               display.Column("git revision", text("git_revisions"), text("git_revisions"), numeric=False),
               display.Column("first run", text("first"), text("first"), numeric=False),
               display.Column("last run", text("last"), text("last"), numeric=False)]
    return sortable_table(rows, columns, "machines")
