"""One page per cell, and the release's listing of cells.

A cell is one entry (source × strategy, with every version and parameter that makes it
what it is) on one target: the unit a leaderboard ranks (`report.aggregate.cell_table`,
keyed by ``target_key`` and ``entry``). Its page shows the report's numbers for it and
every run behind them with full provenance, so a reader can check a number without the
records. Entries that differ only in a plugin version, a data revision or a content hash
are different cells (the report keeps them apart); the site never merges them.

The numbers come from the report's own outputs (``summary.json`` cells, and
``results.parquet`` for which run belongs to which cell), never recomputed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .names import slug
from .page import Column, esc, facts, link, page, table, text_column
from .provenance import data_revision, provenance_html
from .shards import sharded

CELL_FOLDER = "cells"


@dataclass
class Cell:
    key: str
    label: str
    href: str
    """The cell page's path relative to the release folder."""
    summary: dict
    run_ids: list[str] = field(default_factory=list)


def cell_key(target_key: str, entry: str) -> str:
    return f"{target_key}/{entry}"


def cell_label(cell: dict) -> str:
    note = cell.get("variant_note") or ""
    return (f"{cell.get('target_label', cell.get('target', '?'))} · {cell.get('source', '?')} · "
            f"{cell.get('strategy', '?')}" + (f" ({note})" if note else ""))


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _shown(value, digits: int = 3) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:.{digits}f}"


def release_cells(summary_cells: list[dict], frame) -> list[Cell]:
    """The release's cells in the report's order, each with its runs (from the run table)."""
    runs: dict[str, list[str]] = {}
    if len(frame):
        for run_id, target_key, entry in zip(frame["run_id"], frame["target_key"], frame["entry"]):
            runs.setdefault(cell_key(str(target_key), str(entry)), []).append(str(run_id))
    cells = []
    for summary in summary_cells:
        key = cell_key(str(summary.get("target_key")), str(summary.get("entry")))
        label = cell_label(summary)
        cells.append(Cell(key, label, f"{CELL_FOLDER}/{slug(label, key)}.html", summary, runs.get(key, [])))
    return cells


def _numbers(cell: dict) -> list[tuple[str, object]]:
    metric = cell.get("metric") or "headline"
    rows = [("target", cell.get("target_label")), ("source", cell.get("source")),
            ("strategy", cell.get("strategy")), ("kept apart by", cell.get("variant_note") or "—"),
            ("task", f"{cell.get('task')} (headline {metric}, "
                     f"{'higher' if cell.get('higher_is_better', True) else 'lower'} is better)"),
            ("seeds", f"{cell.get('n_seeds')} ok of {cell.get('n_runs')} runs"),
            (f"test {metric}", f"{_shown(cell.get('test_mean'))} ± {_shown(cell.get('test_std'))} "
                               f"[{_shown(cell.get('test_low'))}, {_shown(cell.get('test_high'))}]"),
            ("negative transfer", f"{_shown(cell.get('nt_mean'))} [{_shown(cell.get('nt_low'))}, "
                                  f"{_shown(cell.get('nt_high'))}]"),
            ("vs best", cell.get("vs_best")), ("rank in target", cell.get("rank_in_target"))]
    return [(label, value) for label, value in rows if value is not None]


def _run_row(record: dict, headline) -> dict:
    spec, prov = record.get("spec") or {}, record.get("provenance") or {}
    versions = prov.get("versions") if isinstance(prov.get("versions"), dict) else {}
    target = spec.get("target") if isinstance(spec.get("target"), dict) else {}
    return {"run_id": record["run_id"], "seed": spec.get("seed"), "status": record.get("status"),
            "test": _number(headline), "host": prov.get("host"), "device": prov.get("device_name") or prov.get("device"),
            "git": prov.get("git_revision"), "content_hash": str(target.get("content_hash") or "")[:12],
            "revision": data_revision(record), "tlbench": versions.get("tlbench"), "started": record.get("started_at")}


RUN_COLUMNS = [
    Column("run", lambda r: f'<a href="#run-{esc(r["run_id"])}">{esc(r["run_id"])}</a>', lambda r: r["run_id"]),
    text_column("seed", "seed", numeric=True), text_column("status", "status"),
    Column("test", lambda r: esc(_shown(r["test"])), lambda r: r["test"], numeric=True),
    text_column("host", "host"), text_column("device", "device"), text_column("git revision", "git"),
    text_column("content hash", "content_hash"), text_column("data revision", "revision"),
    text_column("tlbench", "tlbench"), text_column("started", "started"),
]


def cell_pages(cell: Cell, records: dict[str, dict], headlines: dict[str, float], title: str,
               release: str) -> list[tuple[str, bytes]]:
    """(path in the release folder, page) for a cell: its numbers, runs and provenance."""
    links = [("../../../index.html", "all suites"), ("../index.html", f"{title} · {release}"),
             ("../leaderboard.html", "leaderboard")]
    chosen = [records[run_id] for run_id in cell.run_ids if run_id in records]
    stem = cell.href.removesuffix(".html")

    def render(part: list[dict], pager: str, index: int) -> bytes:
        rows = [_run_row(record, headlines.get(record["run_id"])) for record in part]
        body = [f"<h1>{esc(cell.label)}</h1>", f'<p class="muted">{esc(title)} · release {esc(release)}</p>',
                facts(_numbers(cell.summary)), f"<h2>Runs ({len(chosen)})</h2>",
                "<p>Click a header to sort this page's runs; each run's full provenance follows the table.</p>",
                pager, table(rows, RUN_COLUMNS, "runs"), pager, "<h2>Provenance</h2>",
                *(provenance_html(record, f"run-{record['run_id']}") for record in part)]
        return page(cell.label, "".join(body), links)

    return [(f"{CELL_FOLDER}/{name}", data) for name, data in
            sharded(chosen, cell.href.split("/", 1)[1], render, stem=stem.split("/", 1)[1])]


CELL_COLUMNS = [
    Column("cell", lambda c: link(c["href"], c["label"]), lambda c: c["label"]),
    text_column("target", "target"), text_column("source", "source"), text_column("strategy", "strategy"),
    text_column("kept apart by", "note"), text_column("metric", "metric"),
    Column("test mean", lambda c: esc(_shown(c["test"])), lambda c: c["test"], numeric=True),
    text_column("ok seeds", "seeds", numeric=True), text_column("runs", "runs", numeric=True),
    Column("NT mean", lambda c: esc(_shown(c["nt"])), lambda c: c["nt"], numeric=True),
    text_column("vs best", "vs_best"),
]


def listing_rows(cells: list[Cell], prefix: str = "") -> list[dict]:
    """The rows of the cell listing (`prefix`: the listing's path back to the release folder)."""
    return [{"href": prefix + cell.href, "label": cell.label, "target": cell.summary.get("target_label"),
             "source": cell.summary.get("source"), "strategy": cell.summary.get("strategy"),
             "note": cell.summary.get("variant_note") or "", "metric": cell.summary.get("metric"),
             "test": _number(cell.summary.get("test_mean")), "seeds": cell.summary.get("n_seeds"),
             "runs": len(cell.run_ids), "nt": _number(cell.summary.get("nt_mean")),
             "vs_best": cell.summary.get("vs_best")} for cell in cells]
