"""A release's front page: the suite as it stood, what it keeps apart, what changed.

The leaderboard itself (tables, figures, statistics) is the report's ``leaderboard.html``
in the same folder, built by `tlbench.report.build_report` from the release's records;
this page leads to it, to every cell and to the downloads. What the report keeps apart
(entries that differ in a plugin version, targets whose records disagree on the data)
comes first and in a box: a reader comparing two look-alike rows must see at once that
they are different experiments, never averaged together.
"""

from __future__ import annotations

from .cells import CELL_COLUMNS, Cell, listing_rows
from .page import esc, link, page, table, text_column
from .releases import change_summary
from .shards import sharded

FRONT = "index.html"
CHANGES = "changes.html"


def site_links(title: str) -> list[tuple[str, str]]:
    return [("../../index.html", "all suites"), ("../latest/index.html", f"latest {title}"),
            ("leaderboard.html", "leaderboard")]


def kept_apart_html(notes: list[str]) -> str:
    if not notes:
        return ('<section id="kept-apart"><h2>Kept apart</h2><p>Nothing: the records agree on plugin versions, '
                "data revisions and content hashes wherever they share an entry or a target.</p></section>")
    return ('<section id="kept-apart" class="apart"><h2>Kept apart, never averaged</h2>'
            "<p>These look alike but are different experiments (another plugin version, other data); "
            "each is its own row and cell everywhere on this release.</p><ul>"
            + "".join(f"<li>{esc(note)}</li>" for note in notes) + "</ul></section>")


DOWNLOADS = [("bundle.zip", "records.jsonl, results.parquet and summary.json in one zip"),
             ("records.jsonl", "every record, one per line"), ("results.parquet", "one row per run"),
             ("results.csv", "one row per run"), ("summary.json", "cells, the view across targets, provenance"),
             ("leaderboard.md", "the leaderboard as Markdown"), ("release.json", "this release's manifest")]


def _header(manifest: dict, meta: dict) -> str:
    return (f"<h1>{esc(manifest['suite'])}</h1>"
            f'<p class="muted">release {esc(manifest["release"])} · published {esc(manifest["published_at"])} '
            f"· {esc(len(manifest['records']))} records</p>"
            f'<p><strong>{esc(meta.get("headline", ""))}</strong></p>')


def front_pages(manifest: dict, meta: dict, cells: list[Cell], bundle_sha256: str) -> list[tuple[str, bytes]]:
    """The front page (with the first page of cells) and the further pages of cells."""
    title, release = manifest["suite"], manifest["release"]
    change = manifest["changes"]
    listed = any(change[name] for name in ("records_added", "records_removed", "records_changed", "cells_added",
                                            "cells_removed"))
    intro = [
        _header(manifest, meta), kept_apart_html(manifest.get("kept_apart") or []),
        '<section id="leaderboard"><h2>Leaderboard</h2><p>',
        link("leaderboard.html", "The leaderboard"),
        ": tables across targets and by target, figures and statistics, built from this release's records.</p>"
        "</section>",
        '<section id="changes"><h2>Changes</h2><p>',
        esc(change_summary(change) + (f" (against {change['previous']})" if change.get("previous") else "")),
        (" " + link(CHANGES, "every record and cell that changed")) if listed else "", "</p>",
        *(f"<p>{esc(name)}: {esc(', '.join(c['before']) or 'none')} → {esc(', '.join(c['after']) or 'none')}</p>"
          for name, c in change["plugins_changed"].items()),
        "</section>",
        '<section id="downloads"><h2>Downloads</h2><ul>',
        *(f"<li>{link(name, name)}: {esc(what)}</li>" for name, what in DOWNLOADS),
        f"</ul><p>bundle.zip sha256: <code>{esc(bundle_sha256)}</code></p></section>",
    ]
    rows = listing_rows(cells)

    def render(part: list[dict], pager: str, index: int) -> bytes:
        body = (intro if index == 0 else [f"<h1>{esc(title)}: cells</h1>"]) + [
            f'<section id="cells"><h2>Cells ({len(rows)})</h2>',
            "<p>One per entry and target; click a header to sort this page, a cell for its runs and provenance.</p>",
            pager, table(part, CELL_COLUMNS, "cells-table"), pager, "</section>"]
        return page(f"{title} · {release}", "".join(body), site_links(title))

    return list(sharded(rows, FRONT, render, stem="cells"))


CHANGE_COLUMNS = [text_column("change", "change"), text_column("kind", "kind"),
                  text_column("run id or cell", "what")]


def change_pages(manifest: dict) -> list[tuple[str, bytes]]:
    """The records added, removed and changed against the previous release, paged."""
    change = manifest["changes"]
    rows = [{"change": f"record {what}", "kind": key.split(":", 1)[0], "what": key.split(":", 1)[-1]}
            for what in ("added", "removed", "changed") for key in change[f"records_{what}"]]
    rows += [{"change": f"cell {what}", "kind": "cell", "what": label}
             for what in ("added", "removed") for label in change[f"cells_{what}"]]
    title, release = manifest["suite"], manifest["release"]

    def render(part: list[dict], pager: str, index: int) -> bytes:
        body = [f"<h1>{esc(title)} · {esc(release)}: changes</h1>", f"<p>{esc(change_summary(change))}</p>",
                pager, table(part, CHANGE_COLUMNS, "changes-table"), pager]
        return page(f"{title} · {release}: changes", "".join(body),
                    site_links(title) + [(FRONT, f"release {release}")])

    return list(sharded(rows, CHANGES, render))

