"""Listings split into pages, so that no page grows with the suite.

A suite of 10,000 records has thousands of cells; one page listing them all would be
megabytes of HTML that a browser lays out slowly and a reader cannot use. Every listing
on the site (cells of a release, runs of a cell, changes between releases) is cut into
pages of at most `ROWS_PER_PAGE` rows, linked in order by previous/next links. The first
page keeps the listing's own name, so links to a listing never change with its size.
"""

from __future__ import annotations

from typing import Callable, Iterator

from .page import esc

ROWS_PER_PAGE = 1000


def shard_names(first: str, count: int, stem: str | None = None) -> list[str]:
    """File names of a listing's pages: `first`, then ``<stem>-2.html``, ``<stem>-3.html``..."""
    stem = stem or first.removesuffix(".html")
    return [first] + [f"{stem}-{number}.html" for number in range(2, count + 1)]


def chunks(rows: list, size: int | None = None) -> list[list]:
    """`rows` in pages of at most `size` (`ROWS_PER_PAGE`; one empty page for no rows)."""
    size = size or ROWS_PER_PAGE
    return [rows[start:start + size] for start in range(0, len(rows), size)] or [[]]


def pager(names: list[str], index: int, total_rows: int, size: int | None = None) -> str:
    """Previous/next links between a listing's pages ('' when it has one page)."""
    size = size or ROWS_PER_PAGE
    if len(names) < 2:
        return ""
    first, last = index * size + 1, min((index + 1) * size, total_rows)
    parts = [f'<a href="{esc(names[index - 1])}" rel="prev">previous</a>' if index else "<span>previous</span>",
             f"<span>page {index + 1} of {len(names)} (rows {first}–{last} of {total_rows})</span>",
             f'<a href="{esc(names[index + 1])}" rel="next">next</a>' if index + 1 < len(names)
             else "<span>next</span>"]
    return '<p class="pager">' + "".join(parts) + "</p>"


def sharded(rows: list, first: str, render: Callable[[list, str, int], bytes],
            stem: str | None = None, size: int | None = None) -> Iterator[tuple[str, bytes]]:
    """(file name, page) for each page of `rows`: `render(rows_of_page, pager_html, page_index)`."""
    size = size or ROWS_PER_PAGE
    pages = chunks(rows, size)
    names = shard_names(first, len(pages), stem)
    for index, part in enumerate(pages):
        yield names[index], render(part, pager(names, index, len(rows), size), index)
