"""A published site in a real browser (Debian's chromium, driven headless by playwright).

The site opens from disk: the index, a release's front page, a cell page and back, with
every link on them pointing at a file that exists, no console error, nothing fetched
from a network, the leaderboard's figures loaded and the site's tables sortable. Skipped
without chromium locally, failed under CI, as `test_report_browser` does.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from test_report_aggregate import fixed_records
from test_report_browser import browser, opened  # noqa: F401  (the module's browser fixture)
from test_report_html import SCRIPT

from tlbench.cli import main


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site-browser")
    records = fixed_records()
    for seed in range(3):
        records.run(f"evil{SCRIPT}", "lp", "t1", seed, 0.3 + seed / 100)  # a name that must stay text
    assert main(["publish", str(records.write(root / "in")), "--out", str(root / "site"), "--title", "browser"]) == 0
    return root / "site"


def local(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def links_resolve(page) -> list[str]:
    """Every link of the page (without its fragment), checked to name an existing file."""
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    missing = [href for href in hrefs if not local(href.split("#")[0]).is_file()]
    assert not missing, missing
    return hrefs


def follow(page, selector: str) -> Path:
    with page.expect_navigation():
        page.locator(selector).first.click()
    page.wait_for_load_state("load")
    return local(page.url)


def test_index_to_release_to_cell_and_back(browser, site):  # noqa: F811
    page, _, requests, errors, dialogs = opened(browser, site / "index.html")
    assert page.locator("h2", has_text="browser").count() == 1
    links_resolve(page)
    front = follow(page, "a[href$='/index.html'][href*='/r0001-']")
    assert front.name == "index.html" and front.parent.name.startswith("r0001-")
    links_resolve(page)
    assert page.get_by_text(f"evil{SCRIPT}").count() >= 1  # shown as text
    cell = follow(page, "#cells-table a[href^='cells/']")
    assert cell.parent.name == "cells" and page.locator("details").count() >= 1
    links_resolve(page)
    back = follow(page, "nav.site a[href='../index.html']")
    assert back == front
    assert errors == [] and dialogs == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_latest_page_redirects_to_the_release(browser, site):  # noqa: F811
    page, _, _, errors, _ = opened(browser, next(site.glob("*/latest/index.html")))
    page.wait_for_url("**/r0001-*/index.html")
    assert local(page.url).is_file() and errors == []


def test_leaderboard_figures_load_and_it_links_back(browser, site):  # noqa: F811
    page, _, requests, errors, _ = opened(browser, next(site.glob("*/r0001-*/leaderboard.html")))
    images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert images and all(complete and width > 0 for complete, width in images)
    links_resolve(page)
    assert errors == [] and all(url.startswith(("file:", "data:")) for url in requests)


def test_site_tables_sort_on_click(browser, site):  # noqa: F811
    page, _, _, errors, _ = opened(browser, next(site.glob("*/r0001-*/index.html")))
    headers = page.locator("#cells-table thead th")
    index = [h.strip() for h in headers.all_inner_texts()].index("test mean")
    column = f"rows => rows.map(r => r.cells[{index}].dataset.sort)"
    before = page.eval_on_selector_all("#cells-table tbody tr", column)
    headers.nth(index).locator("button").click()
    ascending = page.eval_on_selector_all("#cells-table tbody tr", column)
    numbers = [float(v) for v in ascending if v != ""]
    assert numbers == sorted(numbers) and ascending != before
    headers.nth(index).locator("button").click()
    descending = [float(v) for v in page.eval_on_selector_all("#cells-table tbody tr", column) if v != ""]
    assert descending == sorted(numbers, reverse=True) and errors == []
