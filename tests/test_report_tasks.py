"""A report over targets of several task types: each scored by its own headline metric,
in that metric's direction, in a section of its own, never averaged with another.

The records mix classification (accuracy), regression (headline R², with MAE and RMSE;
R² below 0 on some runs) and a task whose headline is an error (MAE, lower is better),
so that every rule that used to assume "higher accuracy is better, in [0, 1]" is
exercised the other way too.
"""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
from test_report_aggregate import REGRESSION, T_975_2, RecordSet, cell, fixed_records
from test_report_html import Page

from tlbench.report import build_report
from tlbench.report.estimates import EXPLANATION, HEADLINE_EXPLANATION, correlation_table, estimates_markdown

ERRORS = {"name": "counting", "version": "1", "headline": "mae",
          "metrics": [{"name": "mae", "higher_is_better": False, "low": 0.0, "high": None,
                       "description": "mean absolute error of the count"}]}
"""A task scored by an error: lower is better, no upper bound."""

SECTIONS = ["## Task type: classification — headline accuracy (higher is better)",
            "## Task type: counting — headline mae (lower is better)",
            "## Task type: regression — headline r2 (higher is better)"]


def mixed_records() -> RecordSet:
    """c1: classification; r1, r2: regression (bad · lp has R² < 0 on r1); e1: counting,
    where bad · lp makes a larger error than the from-scratch baseline on every seed."""
    rs = RecordSet(tasks={"r1": REGRESSION, "r2": REGRESSION, "e1": ERRORS})
    per_seed = {  # target: (baseline, good · lp, bad · lp) per seed
        "c1": [(0.50, 0.80, 0.45), (0.60, 0.90, 0.50), (0.55, 0.85, 0.48)],
        "r1": [(0.20, 0.99, -0.40), (0.25, 0.90, -0.55), (0.30, 0.97, -0.30)],
        "r2": [(0.50, 0.70, 0.10), (0.55, 0.72, 0.20), (0.60, 0.74, 0.15)],
        "e1": [(2.0, 1.0, 3.0), (2.2, 1.1, 3.3), (2.1, 1.2, 3.1)],
    }
    for target, seeds in per_seed.items():
        for seed, (baseline, good, bad) in enumerate(seeds):
            rs.baseline(target, seed, baseline, train=_train(rs, target, baseline), extra=_extra(rs, target, baseline))
            rs.run("good", "lp", target, seed, good, train=_train(rs, target, good), extra=_extra(rs, target, good))
            rs.run("bad", "lp", target, seed, bad, train=_train(rs, target, bad), extra=_extra(rs, target, bad))
    for seed, value in enumerate([0.60, 0.65, 0.70]):  # an entry seen on classification only
        rs.run("cls-only", "ft", "c1", seed, value, train=0.9)
    return rs


def _extra(rs: RecordSet, target: str, r2: float) -> dict | None:
    """A regression run's other metrics: MAE and RMSE, smaller as R² grows."""
    if rs.task(target) is not REGRESSION:
        return None
    return {"test_mae": round(1.0 - 0.5 * r2, 6), "test_rmse": round(1.2 - 0.5 * r2, 6)}


def _train(rs: RecordSet, target: str, test: float) -> float:
    """A training score better than the test one, in the task's direction."""
    if rs.task(target) is ERRORS:
        return round(test / 2, 6)
    return round(min(1.0, test + 0.1), 6)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    built = build_report([mixed_records().write(root / "in")], root / "out", title="mixed")
    return built, root / "out"


@pytest.fixture(scope="module")
def summary(report):
    _, out = report
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cells(summary):
    return pd.DataFrame(summary["cells"])


def section(markdown: str, heading: str) -> list[str]:
    """The lines of one level-2 section."""
    lines = markdown.splitlines()
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def table_of(lines: list[str], heading: str) -> list[str]:
    """The rows (header first) of the table under `heading`."""
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return [line for line in lines[start:end] if line.startswith("| ")]


def header_of(lines: list[str], heading: str) -> str:
    return table_of(lines, heading)[0]


def column(row: str, index: int) -> str:
    return row.split("|")[index + 1].strip()


def row_of(lines: list[str], heading: str, source: str) -> str:
    """The first row under `heading` whose source column is `source`."""
    return next(row for row in table_of(lines, heading)[1:] if column(row, 1) == source)


def test_one_section_per_task_type_in_order(report):
    built, _ = report
    markdown = built.markdown
    assert [line for line in markdown.splitlines() if line.startswith("## Task type:")] == SECTIONS
    lines = markdown.splitlines()
    assert not any(line.startswith(("## Target:", "## Across targets")) for line in lines)  # the single-type layout
    assert "Task types are compared separately" in markdown  # the general definitions
    assert "Test accuracy is top-1" not in markdown
    regression = section(markdown, SECTIONS[2])
    assert [line for line in regression if line.startswith("### ")] == [
        "### Target: r1 (n_train = 50)", "### Target: r2 (n_train = 50)", "### Across regression targets"]


def test_headers_name_the_metric_and_its_direction(report):
    built, _ = report
    classification, counting, regression = (section(built.markdown, heading) for heading in SECTIONS)
    header = header_of(regression, "### Target: r1 (n_train = 50)")
    assert "| test r2 (mean ± std) " in header and "| train r2 " in header and "| gap (train − test r2) " in header
    assert "| NT vs scratch [95% CI] " in header and "acc" not in header
    assert "Ranked by test r2 (higher is better)." in regression
    header = header_of(counting, "### Target: e1 (n_train = 50)")
    assert "| test mae (mean ± std) " in header and "| gap (test − train mae) " in header
    assert "Ranked by test mae (lower is better)." in counting
    header = header_of(classification, "### Target: c1 (n_train = 50)")
    assert "| test acc (mean ± std) " in header and "| gap (train − test) " in header
    assert not any(line.startswith("Ranked by") for line in classification)  # accuracy needs no mention
    assert "| mean r2 " in header_of(regression, "### Across regression targets")
    assert "| mean mae " in header_of(counting, "### Across counting targets")
    assert "| mean acc " in header_of(classification, "### Across classification targets")


def test_lowest_error_is_best_and_ranks_follow_the_direction(cells, report):
    good, bad = cell(cells, "e1", "good", "lp"), cell(cells, "e1", "bad", "lp")
    baseline = cell(cells, "e1", "good (from scratch)", "scratch")
    assert good["sign"] == -1 and not good["higher_is_better"]
    assert good["test_mean"] == pytest.approx(1.1) and good["rank_in_target"] == 1 and good["vs_best"] == "best"
    assert baseline["rank_in_target"] == 2 and bad["rank_in_target"] == 3
    assert bad["vs_best"] == "below best"
    assert bad["best_delta_mean"] == pytest.approx(-(9.4 - 3.3) / 3)  # signed: below 0 is worse
    assert good["gap_mean"] == pytest.approx(0.55)  # test − train: positive, better on the training split
    built, _ = report
    counting = section(built.markdown, SECTIONS[1])
    rows = table_of(counting, "### Target: e1 (n_train = 50)")[1:]
    assert [(column(row, 0), column(row, 1)) for row in rows] == [
        ("1", "good"), ("2", "good (from scratch)"), ("3", "bad")]
    assert "below best" in row_of(counting, "### Target: e1 (n_train = 50)", "bad")


def test_a_larger_error_than_the_baseline_is_negative_transfer(cells, report):
    bad = cell(cells, "e1", "bad", "lp")
    # per seed: −(3.0 − 2.0), −(3.3 − 2.2), −(3.1 − 2.1)
    std = math.sqrt(((1 / 30) ** 2 * 2 + (2 / 30) ** 2) / 2)
    assert bad["nt_mean"] == pytest.approx(-3.1 / 3)
    assert bad["nt_high"] == pytest.approx(-3.1 / 3 + T_975_2 * std / math.sqrt(3)) and bad["nt_high"] < 0
    assert bad["negative_transfer"] and not bad["positive_transfer"]
    good = cell(cells, "e1", "good", "lp")
    assert good["nt_mean"] == pytest.approx(1.0) and good["positive_transfer"]  # a smaller error helps
    built, _ = report
    counting = section(built.markdown, SECTIONS[1])
    assert "negative transfer" in row_of(counting, "### Target: e1 (n_train = 50)", "bad")
    assert "helps" in row_of(counting, "### Target: e1 (n_train = 50)", "good")


def test_r2_intervals_go_below_zero_but_not_above_one(cells, report):
    bad = cell(cells, "r1", "bad", "lp")
    assert bad["test_mean"] == pytest.approx(-1.25 / 3) and bad["test_low"] < -0.5  # not cut at 0
    assert bad["negative_transfer"] and bad["nt_mean"] == pytest.approx(-2.0 / 3)
    good = cell(cells, "r1", "good", "lp")
    std = math.sqrt(((0.99 - 2.86 / 3) ** 2 + (0.90 - 2.86 / 3) ** 2 + (0.97 - 2.86 / 3) ** 2) / 2)
    assert 2.86 / 3 + T_975_2 * std / math.sqrt(3) > 1  # the raw interval would pass 1...
    assert good["test_high"] == 1.0  # ...and is cut to R²'s range
    built, _ = report
    regression = section(built.markdown, SECTIONS[2])
    row = row_of(regression, "### Target: r1 (n_train = 50)", "bad")
    assert re.search(r"\| -0\.417 ± 0\.126 +\| \[-0\.\d{3}, -0\.\d{3}\]", row), row
    assert "negative transfer" in row
    assert ", 1.000]" in row_of(regression, "### Target: r1 (n_train = 50)", "good")


def test_across_targets_never_mixes_task_types(summary):
    overall = pd.DataFrame(summary["overall"])
    assert sorted(overall.groupby("task").size().items()) == [("classification", 3), ("counting", 2),
                                                              ("regression", 2)]
    assert set(overall[overall["source"] == "cls-only"]["task"]) == {"classification"}
    by_task = {task: rows.set_index("source") for task, rows in overall.groupby("task")}
    assert by_task["regression"].loc["good", "mean_headline"] == pytest.approx((2.86 / 3 + 0.72) / 2)
    assert by_task["regression"].loc["bad", "mean_headline"] == pytest.approx((-1.25 / 3 + 0.15) / 2)
    assert by_task["regression"].loc["good", "coverage"] == "2/2 targets"  # r1, r2; never c1 or e1
    assert by_task["counting"].loc["good", "mean_rank"] == 1.0  # the lowest error ranks first
    assert list(by_task["counting"].index) == ["good", "bad"]
    for task, rows in by_task.items():
        assert rows["metric"].nunique() == 1 and rows["higher_is_better"].nunique() == 1, task


def test_summary_cells_carry_task_metric_and_direction(summary, cells):
    for _, row in cells.iterrows():
        assert (row["task"], row["metric"], row["higher_is_better"]) in {
            ("classification", "accuracy", True), ("regression", "r2", True), ("counting", "mae", False)}
    assert set(cells.loc[cells["target_label"] == "e1", "metric"]) == {"mae"}
    assert {"task", "metric", "higher_is_better"} <= set(summary["overall"][0])
    types = {t["task"]: t for t in summary["meta"]["task_types"]}
    assert sorted(types) == ["classification", "counting", "regression"]
    assert types["regression"] == {"task": "regression", "metric": "r2", "higher_is_better": True, "low": None,
                                   "high": 1.0, "targets": ["r1", "r2"], "complete_targets": ["r1", "r2"]}
    assert types["counting"]["higher_is_better"] is False and types["counting"]["targets"] == ["e1"]
    assert summary["meta"]["n_targets"] == 4


def test_results_tables_have_every_metric_by_name(report):
    _, out = report
    csv = pd.read_csv(out / "results.csv")
    parquet = pd.read_parquet(out / "results.parquet")
    assert list(csv.columns) == list(parquet.columns)
    assert {"test_accuracy", "test_r2", "test_mae", "test_rmse", "train_r2", "task", "metric",
            "higher_is_better", "headline_test"} <= set(csv.columns)
    regression = parquet[parquet["task"] == "regression"]
    assert regression["test_r2"].min() == pytest.approx(-0.55) and regression["test_accuracy"].isna().all()
    assert (regression["headline_test"] == regression["test_r2"]).all()
    counting = parquet[parquet["task"] == "counting"]
    assert (counting["headline_test"] == counting["test_mae"]).all() and not counting["higher_is_better"].any()


def test_page_has_a_section_tables_and_figures_per_task_type(report):
    _, out = report
    page = Page()
    html = (out / "leaderboard.html").read_text(encoding="utf-8")
    page.feed(html)
    ids = [attrs["id"] for _, attrs in page.tags if "id" in attrs]
    assert len(ids) == len(set(ids))
    assert {"task-classification", "task-counting", "task-regression", "overall-table-regression",
            "overall-table-counting", "overall-table-classification"} <= set(ids)
    figures = [attrs["id"] for tag, attrs in page.tags if tag == "figure"]
    assert figures == ["accuracy-figure-classification", "nt-figure-classification", "mae-figure-counting",
                       "nt-figure-counting", "r2-figure-regression", "nt-figure-regression"]
    headers = "".join(page.text)
    for header in ("test r2 (mean ± std)", "gap (test − train mae)", "mean mae", "test acc (mean ± std)"):
        assert header in headers, header
    assert html.count("<h2>Task type: ") == 3


def test_one_task_type_keeps_the_single_layout(tmp_path):
    rs = RecordSet(tasks={"r1": REGRESSION, "r2": REGRESSION})
    for seed in range(2):
        for target in ("r1", "r2"):
            rs.run("a", "lp", target, seed, -0.2 + 0.1 * seed, extra={"test_mae": 1.0})
            rs.run("b", "lp", target, seed, 0.5 + 0.1 * seed)
    built = build_report([rs.write(tmp_path / "in")], tmp_path / "out")
    lines = built.markdown.splitlines()
    assert "## Target: r1 (n_train = 50)" in lines and "## Across targets" in lines
    assert not any(line.startswith("## Task type") for line in lines)
    assert "Mean r2 and mean rank are over the 2 of 2 targets" in built.markdown
    html = (tmp_path / "out" / "leaderboard.html").read_text(encoding="utf-8")
    assert 'id="r2-figure"' in html and 'id="overall-table"' in html and 'id="accuracy-figure"' not in html
    assert "Task types are compared separately" in built.markdown  # not classification: the general rules


def test_classification_report_keeps_its_figure_ids(tmp_path):
    built = build_report([fixed_records().write(tmp_path / "in")], tmp_path / "out")
    html = (tmp_path / "out" / "leaderboard.html").read_text(encoding="utf-8")
    figures = re.findall(r'<figure id="([^"]+)"', html)
    assert figures == ["accuracy-figure", "nt-figure"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["meta"]["task_types"][0]["task"] == \
        "classification"
    assert "Ranked by" not in built.markdown


def test_estimates_compare_with_the_headline_in_its_direction():
    scores = pd.DataFrame({"target": "e", "source": list("abc"), "estimator": "logme", "mean_score": [3.0, 2.0, 1.0],
                           "n_seeds": 1, "not_applicable": False, "target_identity": "e#",
                           "source_identity": ["a#", "b#", "c#"]})
    errors = pd.DataFrame({"target_label": "e", "target_identity": "e#", "source": list("abc"),
                           "source_identity": ["a#", "b#", "c#"], "strategy": "ft", "baseline": False,
                           "n_seeds": 1, "test_mean": [1.0, 2.0, 3.0], "metric": "mae", "sign": -1.0})
    [row] = correlation_table(scores, errors).to_dict("records")
    assert row["kendall_tau"] == pytest.approx(1.0)  # the highest score has the lowest error: same order
    assert row["metric"] == "mae"
    text = estimates_markdown(scores, correlation_table(scores, errors))
    assert "fine-tuned headline metric" in text and "fine-tuned test accuracy" not in text
    accuracy = errors.assign(test_mean=[0.9, 0.8, 0.7], metric="accuracy", sign=1.0)
    [row] = correlation_table(scores, accuracy).to_dict("records")
    assert row["kendall_tau"] == pytest.approx(1.0)
    assert EXPLANATION in estimates_markdown(scores, correlation_table(scores, accuracy))
    assert HEADLINE_EXPLANATION != EXPLANATION


def test_figures_per_task_type_are_deterministic_pngs():
    from tlbench.report import plots
    from tlbench.report.aggregate import cell_table, overall_table
    from tlbench.report.frame import records_frame
    from tlbench.report.tasks import task_groups

    cells = cell_table(records_frame(list(mixed_records().records.values())))
    groups = task_groups(cells, overall_table(cells))
    first = {key: png for group in groups for key, png in plots.task_figures(group).items()}
    again = {key: png for group in groups for key, png in plots.task_figures(group).items()}
    drawn = {key: png for key, png in first.items() if png is not None}
    assert sorted(drawn) == sorted(["accuracy-figure-classification", "nt-figure-classification",
                                    "mae-figure-counting", "nt-figure-counting", "r2-figure-regression",
                                    "nt-figure-regression"])
    assert all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in drawn.values())
    assert first == again
