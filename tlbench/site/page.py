"""The HTML every site page shares: one shell, one style, one table sorter.

Pages are static files that open from disk (file://) and from any static host, so they
carry everything inline and fetch nothing. As in the leaderboard, every string that
comes from a record, a suite or a plugin goes through `esc`, and a Content-Security-
Policy allows only the page's own style and script (by hash) and no network: a name
that escaped escaping still could not load or run anything. No data is embedded in a
script: records and provenance are shown as escaped text, so ``</script>`` in an id is
only ever text.

Tables use the leaderboard's markup and sorter (`tlbench.report.html.SCRIPT`): a click
on a header sorts the rows by each cell's ``data-sort`` key.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Callable

from ..report.html import SCRIPT, esc

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 1.5rem 3rem; color: #1b1b1b; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
nav.site { padding: .6rem 0; border-bottom: 1px solid #ddd; } nav a { margin-right: 1rem; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d6d6d6; padding: .25rem .5rem; text-align: left; vertical-align: top; }
td.num { text-align: right; } .scroll { overflow-x: auto; }
th { background: #f3f3f3; } th button { all: unset; cursor: pointer; font-weight: 600; }
th button:focus-visible { outline: 2px solid #3569c8; }
th[aria-sort=ascending] button::after { content: " \\25B2"; }
th[aria-sort=descending] button::after { content: " \\25BC"; }
.apart { background: #fff4e0; border: 1px solid #e0b050; padding: .4rem 1rem; }
.muted { color: #555; } pre { white-space: pre-wrap; word-break: break-all; background: #f7f7f7;
       padding: .4rem; margin: .2rem 0; } details { margin: .3rem 0; } summary { cursor: pointer; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; word-break: break-all; }
.pager a, .pager span { margin-right: .8rem; }
"""


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode() + "'"


CSP = ("default-src 'none'; img-src data:; style-src " + _csp_hash(STYLE) + "; script-src "
       + _csp_hash(SCRIPT) + "; base-uri 'none'; form-action 'none'")


def nav(links: list[tuple[str, str]]) -> str:
    """The site's navigation bar: (relative href, label) pairs; hrefs are made by tlbench."""
    return '<nav class="site">' + "".join(f'<a href="{esc(href)}">{esc(label)}</a>' for href, label in links) \
        + "</nav>"


def page(title: str, body: str, links: list[tuple[str, str]] = ()) -> bytes:
    """A whole page: `title` is text (escaped here), `body` is HTML already escaped."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>"
            + (nav(list(links)) if links else "") + body
            + f"<script>{SCRIPT}</script></body></html>\n").encode("utf-8")


def redirect_page(href: str, label: str) -> bytes:
    """A page that sends the browser to `href` (a relative path tlbench made): a plain
    file, not a symbolic link, so that every static host serves it."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">"
            f'<meta http-equiv="refresh" content="0; url={esc(href)}">'
            f"<title>{esc(label)}</title></head>\n<body><p>Moved to <a href=\"{esc(href)}\">{esc(label)}</a>.</p>"
            "</body></html>\n").encode("utf-8")


@dataclass(frozen=True)
class Column:
    """One column of a sortable table: its header, the HTML of a row's cell (escaped by
    the column) and the row's sort key."""

    header: str
    html: Callable[[dict], str]
    key: Callable[[dict], object]
    numeric: bool = False


def text_column(header: str, name: str, numeric: bool = False) -> Column:
    """A column showing `row[name]` as text."""
    def shown(row):
        value = row.get(name)
        return "" if value is None else str(value)
    return Column(header, lambda row: esc(shown(row)), lambda row: row.get(name), numeric)


def table(rows: list[dict], columns: list[Column], table_id: str) -> str:
    head = "".join(f'<th scope="col" data-type="{"number" if c.numeric else "text"}">'
                   f'<button type="button">{esc(c.header)}</button></th>' for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            key = column.key(row)
            key = "" if key is None or (isinstance(key, float) and key != key) else key
            cells.append(f'<td data-sort="{esc(key)}"' + (' class="num"' if column.numeric else "")
                         + f">{column.html(row)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="sortable" id="{esc(table_id)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def link(href: str, text: str) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def facts(pairs: list[tuple[str, object]]) -> str:
    """A definition list of (label, value) pairs, values as text."""
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc('' if v is None else v)}</dd>"
                                         for k, v in pairs) + "</dl>"
