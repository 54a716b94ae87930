"""leaderboard.html in a real browser (Debian's chromium, driven headless by playwright).

The page must show its tables, sort a table when a column header is clicked, show its
figures as images that loaded, request nothing from any network, and run nothing that a
record smuggled in — also on a page that mixes task types, whose tables sort by metrics
that may be negative (R²) or better when lower (MAE). Without chromium the test is skipped locally and fails under CI
(`CI` set), where .ci/run installs it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_report_aggregate import fixed_records
from test_report_html import SCRIPT
from test_report_tasks import mixed_records

from tlbench.report import build_report

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def chromium_path() -> str | None:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless chromium for the module (playwright runs one sync session at a time)."""
    executable = chromium_path()
    if executable is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the browser test")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")), executable_path=executable, headless=True, args=ARGS)
        try:
            yield context
        finally:
            context.close()


def opened(browser, page_path: Path):
    """The page, with every request, console error and dialog it caused."""
    page = browser.new_page()
    requests, errors, dialogs = [], [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(page_path.as_uri())
    page.wait_for_load_state("load")
    return page, page_path, requests, errors, dialogs


@pytest.fixture(scope="module")
def browser_page(browser, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    records = fixed_records()
    records.run(f"evil{SCRIPT}", "lp", "t1", 0, 0.3)  # a name that must stay text
    build_report([records.write(root / "in")], root / "out", title="browser")
    return opened(browser, root / "out" / "leaderboard.html")


@pytest.fixture(scope="module")
def mixed_page(browser, tmp_path_factory):
    """Targets of three task types: classification, regression (R² below 0) and an error (MAE)."""
    root = tmp_path_factory.mktemp("browser-mixed")
    build_report([mixed_records().write(root / "in")], root / "out", title="mixed")
    return opened(browser, root / "out" / "leaderboard.html")


def column_texts(page, table_id: str, index: int) -> list[str]:
    return page.eval_on_selector_all(f"#{table_id} tbody tr",
                                     f"rows => rows.map(r => r.cells[{index}].textContent)")


def test_tables_are_there(browser_page):
    page, *_ = browser_page
    assert page.locator("#overall-table tbody tr").count() == 4  # good·lp, good·ft, bad·lp, evil·lp
    targets = page.locator("table[id^=target-]")
    assert targets.count() == 2
    assert page.locator("h3", has_text="Target: t1").count() == 1
    assert "missing" in page.locator("#target-1").inner_text()  # bad · lp on t2


def test_clicking_a_header_sorts_the_table(browser_page):
    page, *_ = browser_page
    headers = page.locator("#overall-table thead th")
    index = [h.strip() for h in headers.all_inner_texts()].index("mean acc")
    before = column_texts(page, "overall-table", index)
    header = headers.nth(index)
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "ascending"
    ascending = column_texts(page, "overall-table", index)
    numbers = [float(v) for v in ascending if v != "—"]
    assert numbers == sorted(numbers) and ascending != before
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "descending"
    descending = column_texts(page, "overall-table", index)
    assert [float(v) for v in descending if v != "—"] == sorted(numbers, reverse=True)
    # a text column sorts alphabetically
    source = page.locator("#target-0 thead th").nth(1)
    source.locator("button").click()
    names = column_texts(page, "target-0", 1)
    assert names == sorted(names, key=str.casefold) or names == sorted(names)


def test_missing_values_sort_last_both_ways(browser_page):
    page, *_ = browser_page
    headers = page.locator("#target-1 thead th")
    index = [h.strip() for h in headers.all_inner_texts()].index("test acc (mean ± std)")
    for _ in range(2):
        headers.nth(index).locator("button").click()
        assert column_texts(page, "target-1", index)[-1] == "missing"


def test_figures_are_images_that_loaded(browser_page):
    page, *_ = browser_page
    images = page.eval_on_selector_all(
        "figure img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.src.slice(0, 22)])")
    assert len(images) == 2
    for complete, width, height, src in images:
        assert complete and width > 100 and height > 100
        assert src == "data:image/png;base64,"


def test_nothing_is_fetched_and_nothing_smuggled_runs(browser_page):
    page, page_path, requests, errors, dialogs = browser_page
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert errors == [] and dialogs == []
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("script").count() == 1
    assert page.get_by_text(f"evil{SCRIPT}").count() >= 1  # shown as text
    assert Path(page_path).is_file()


def header_index(page, table_id: str, header: str) -> int:
    return [h.strip() for h in page.locator(f"#{table_id} thead th").all_inner_texts()].index(header)


def test_mixed_task_types_page_loads_and_sorts_by_its_metrics(mixed_page):
    page, _, requests, errors, dialogs = mixed_page
    assert errors == [] and dialogs == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert page.locator("h2", has_text="Task type:").count() == 3
    assert page.locator("figure img").count() == 6  # headline and NT per task type
    # R² can be negative: the across-targets mean r2 sorts as a number, negatives first
    index = header_index(page, "overall-table-regression", "mean r2")
    page.locator("#overall-table-regression thead th").nth(index).locator("button").click()
    values = [float(v) for v in column_texts(page, "overall-table-regression", index)]
    assert values == sorted(values) and values[0] < 0
    # an error sorts the same way: ascending puts the best (lowest) first
    table = page.locator("#task-counting table[id^=target-]").first.get_attribute("id")
    index = header_index(page, table, "test mae (mean ± std)")
    header = page.locator(f"#{table} thead th").nth(index)
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "ascending"
    means = [float(v.split(" ± ")[0]) for v in column_texts(page, table, index)]
    assert means == sorted(means)
    assert column_texts(page, table, 1)[0] == "good"  # the lowest error, ranked 1


@pytest.fixture(scope="module")
def statistics_page(browser, tmp_path_factory):
    """Eight targets, eight entries: the statistics across targets with their four figures."""
    from test_report_across import many_targets

    root = tmp_path_factory.mktemp("browser-statistics")
    build_report([many_targets().write(root / "in")], root / "out", title="statistics")
    return opened(browser, root / "out" / "leaderboard.html")


def test_statistics_figures_load_and_their_table_sorts(statistics_page):
    page, _, requests, errors, dialogs = statistics_page
    assert errors == [] and dialogs == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    for figure_id in ("cd-entries", "iqm-entries", "profiles-entries", "improvement-entries", "cd-strategies",
                      "cd-sources"):
        complete, width, height = page.eval_on_selector(
            f"#{figure_id} img", "i => [i.complete, i.naturalWidth, i.naturalHeight]")
        assert complete and width > 100 and height > 50, figure_id
    index = header_index(page, "statistics-entries", "IQM gain")
    header = page.locator("#statistics-entries thead th").nth(index)
    header.locator("button").click()
    values = [float(v) for v in column_texts(page, "statistics-entries", index)]
    assert values == sorted(values) and values != sorted(values, reverse=True)
    assert page.locator("#statistics h2").inner_text() == "Statistics across targets"
