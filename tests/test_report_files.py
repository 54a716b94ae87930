"""`tlbench report`: the files it writes from records alone, from one or many directories."""

from __future__ import annotations

import json
import math
import os
import stat

import pandas as pd
import pytest
from test_report_aggregate import RecordSet, fixed_records

from tlbench.report import build_report

FILES = ("leaderboard.md", "leaderboard.html", "results.csv", "results.parquet", "summary.json")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    results = fixed_records().write(root / "results")
    return build_report([results], root / "out", title="fixed"), root / "out"


def test_writes_every_file(report):
    built, out = report
    assert [p.name for p in built.files] == list(FILES)
    mask = os.umask(0)
    os.umask(mask)
    for name in FILES:
        path = out / name
        assert path.stat().st_size > 0
        # meant to be shared: the umask decides, not the private temporary file it was written as
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, name
    assert built.n_records == 24 and built.problems == []


def test_results_tables_are_long_one_row_per_run(report):
    _, out = report
    csv = pd.read_csv(out / "results.csv")
    parquet = pd.read_parquet(out / "results.parquet")
    records = fixed_records().records
    assert len(csv) == len(parquet) == len(records)
    assert set(csv["run_id"]) == set(parquet["run_id"]) == set(records)
    assert list(csv.columns) == list(parquet.columns)
    params = [c for c in csv.columns if c.startswith("p_")]
    assert {"p_source_model", "p_source_tag", "p_strategy_lr", "p_target_shots", "p_target_classes"} <= set(params)
    assert params == sorted(params) and csv.columns[-len(params):].tolist() == params
    provenance = {"tlbench_version", "torch_version", "device", "device_name", "host", "git_revision",
                  "started_at", "finished_at"}
    assert provenance <= set(parquet.columns)
    row = parquet.set_index("run_id").loc[next(r for r, rec in records.items() if rec["status"] == "error")]
    assert row["status"] == "error" and row["error_type"] == "RuntimeError" and math.isnan(row["test_accuracy"])
    assert parquet["p_target_classes"].iloc[0] in ("[0,1,2,3,4]", "[5,6,7,8,9]")  # lists as JSON text


def test_summary_json_has_cells_overall_and_provenance(report):
    _, out = report
    summary = json.loads((out / "summary.json").read_text())
    cells = {(c["target_label"], c["source"], c["strategy"]): c for c in summary["cells"]}
    assert cells[("t1", "bad", "lp")]["negative_transfer"] is True
    assert cells[("t1", "bad", "lp")]["nt_mean"] == pytest.approx(-0.11)
    missing = cells[("t2", "bad", "lp")]
    assert missing["n_seeds"] == 0 and missing["test_mean"] is None and missing["vs_best"] == "missing"
    assert {(c["task"], c["metric"], c["higher_is_better"]) for c in summary["cells"]} == {
        ("classification", "accuracy", True)}
    overall = {(r["source"], r["strategy"]): r for r in summary["overall"]}
    assert overall[("bad", "lp")]["coverage"] == "1/2 targets"
    assert overall[("good", "lp")]["mean_headline"] == pytest.approx(0.85) and overall[("good", "lp")]["task"] == \
        "classification"
    meta = summary["meta"]
    assert meta["title"] == "fixed" and meta["complete_targets"] == ["t1"]
    assert meta["task_types"] == [{"task": "classification", "metric": "accuracy", "higher_is_better": True,
                                   "low": 0.0, "high": 1.0, "targets": ["t1", "t2"], "complete_targets": ["t1"]}]
    machine = meta["provenance"]["machines"][0]
    assert machine["host"] == "lab-a" and machine["runs"] == 24 and machine["devices"] == ["cpu (Test CPU)"]
    assert machine["first"].startswith("2025-01-01") and machine["last"].startswith("2025-01-03")
    assert meta["provenance"]["versions"]["torch"] == {"2.14.1": 24}


def test_markdown_shows_missing_cells_and_flags(report):
    built, out = report
    markdown = (out / "leaderboard.md").read_text()
    assert markdown == built.markdown
    lines = markdown.splitlines()
    t2 = lines.index("## Target: t2 (n_train = 50)")
    bad_t2 = next(line for line in lines[t2:] if "| bad " in line)
    assert "| missing " in bad_t2 and "3 error" in bad_t2
    t1 = lines.index("## Target: t1 (n_train = 50)")
    bad_t1 = next(line for line in lines[t1:t2] if "| bad " in line)
    assert "negative transfer" in bad_t1 and "-0.110" in bad_t1
    good_ft = next(line for line in lines[t1:t2] if "| good " in line and "| ft " in line)
    assert "negative transfer" not in good_ft  # mean below 0, interval reaches 0
    across = lines[lines.index("## Across targets"):]
    assert any("| bad " in line and "1/2 targets" in line and "0.440" in line for line in across)
    assert "machine lab-a: 24 runs (21 ok)" in markdown


GOLDEN_DEFINITIONS = (
    "Test accuracy is top-1 on the target's test split at the checkpoint selected on validation; ± is the standard "
    "deviation over seeds and the 95% CI a Student-t interval for the mean. \"vs best\" is the paired per-seed "
    "difference to the best cell of the target: ≈ best when its 95% interval reaches 0, so the two are not "
    "separable with these seeds. Gap = train − test accuracy. NT = test accuracy − that of the same-seed "
    "from-scratch baseline; flagged as negative transfer only when its paired 95% interval lies below 0. A "
    "missing cell has no successful run; it is shown, never averaged away.")
GOLDEN_TARGET_HEADER = (
    "| rank   | source              | strategy   | test acc (mean ± std)   | 95% CI         | vs best [95% CI]   "
    "                | seeds   | train acc   | gap (train − test)   | NT vs scratch [95% CI]                    "
    "| wall s   | peak MB   |")
GOLDEN_ACROSS_HEADER = "| source   | strategy   | coverage    | mean acc   | mean rank   | best or ≈ best   |"
"""tlbench 0.1's leaderboard of `fixed_records`, by heart: classification reads as it always has."""


def test_classification_leaderboard_reads_as_in_tlbench_0_1(report):
    built, _ = report
    lines = built.markdown.splitlines()
    assert lines[4] == GOLDEN_DEFINITIONS
    assert [line for line in lines if line.startswith("## ")] == [
        "## Target: t1 (n_train = 50)", "## Target: t2 (n_train = 50)", "## Across targets", "## Provenance"]
    assert lines[lines.index("## Target: t1 (n_train = 50)") + 2] == GOLDEN_TARGET_HEADER
    assert lines[lines.index("## Across targets") + 4] == GOLDEN_ACROSS_HEADER
    assert lines[lines.index("## Across targets") + 2] == (
        "Mean accuracy and mean rank are over the 1 of 2 targets on which every entry has results (t1); they are "
        "never averaged over missing cells. Baselines are not ranked.")
    assert "Ranked by" not in built.markdown and "Task type" not in built.markdown


def test_report_from_many_directories_and_cli(tmp_path, cli):
    a = RecordSet("lab-a")
    b = RecordSet("lab-b")
    for seed in range(2):
        a.run("x", "lp", "t1", seed, 0.8)
        b.run("x", "lp", "t2", seed, 0.6)
    first, second = a.write(tmp_path / "a"), b.write(tmp_path / "b")
    result = cli("report", str(first), str(second), "--out", str(tmp_path / "both"))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "both" / "summary.json").read_text())
    assert {c["target_label"] for c in summary["cells"]} == {"t1", "t2"}
    assert [m["host"] for m in summary["meta"]["provenance"]["machines"]] == ["lab-a", "lab-b"]
    assert summary["meta"]["title"] == "a, b"
    assert "# tlbench leaderboard: a, b" in result.stdout
    # rebuilding one directory's report keeps the title it was given
    assert cli("report", str(first), "--title", "lab A").returncode == 0
    rebuilt = cli("report", str(first))
    assert rebuilt.returncode == 0 and "# tlbench leaderboard: lab A" in rebuilt.stdout
    missing = cli("report", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "nowhere: no such result directory" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_invalid_records_are_reported_by_path_and_skipped(tmp_path):
    results = fixed_records().write(tmp_path / "results")
    broken = results / "runs" / "0123456789abcdef0123.json"
    broken.write_text("{not json", encoding="utf-8")
    built = build_report([results], tmp_path / "out")
    assert [p.path for p in built.problems] == [broken]
    assert built.n_records == 24
    assert f"{broken}: skipped: unreadable JSON" in (tmp_path / "out" / "leaderboard.md").read_text()


def test_empty_directory_gives_an_empty_report(tmp_path):
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    built = build_report([tmp_path / "empty"], tmp_path / "out")
    assert built.n_records == 0 and "No records yet." in built.markdown
    assert pd.read_parquet(tmp_path / "out" / "results.parquet").empty
    assert "No records yet." in (tmp_path / "out" / "leaderboard.html").read_text()


def test_gap_against_size_is_drawn_only_when_the_size_varies(tmp_path):
    rs = RecordSet()
    for seed in range(2):
        for shots, target in ((5, "small1"), (50, "large1")):
            rs.run("x", "lp", target, seed, 0.6 + shots / 1000, train=0.9 + shots / 1000, shots=shots)
    varied = build_report([rs.write(tmp_path / "varied")], tmp_path / "varied")
    assert 'id="gap-figure"' in (varied.out / "leaderboard.html").read_text()
    single = build_report([fixed_records().write(tmp_path / "fixed")], tmp_path / "fixed")
    assert 'id="gap-figure"' not in (single.out / "leaderboard.html").read_text()
    assert 'id="nt-figure"' in (single.out / "leaderboard.html").read_text()
    assert 'id="accuracy-figure"' in (single.out / "leaderboard.html").read_text()
