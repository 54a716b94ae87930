"""`tlbench run` end to end on a tiny suite: records, leaderboard, results.csv, resume."""

from __future__ import annotations

import json

import pandas as pd

SUITE = """
[suite]
name = "tiny"
seeds = [0, 1]
device = "cpu"
time_budget_s = 600

[[sources]]
id = "pre"
plugin = "pretrain"
model = "test_resnet"
input_size = 32
target = "digits"
target_params = { classes = [0, 1, 2], shots = 20, val_shots = 5 }
epochs = 1

[[sources]]
id = "rand"
plugin = "timm"
model = "test_resnet"
pretrained = false
input_size = 32

[[targets]]
id = "d"
plugin = "digits"
classes = [5, 6, 7]
shots = 4
val_shots = 2

[[strategies]]
id = "lp"
plugin = "linear-probe"

[[strategies]]
id = "ft"
plugin = "full-finetune"
epochs = 1
batch_size = 8
"""


def test_run_report_and_resume(write_suite, cli, tmp_path):
    suite = write_suite(SUITE)
    out = tmp_path / "out"
    first = cli("run", str(suite), "--out", str(out))
    assert first.returncode == 0, first.stderr + first.stdout
    # 2 sources x 1 target x 2 strategies x 2 seeds, plus one baseline per architecture and
    # seed: both sources are test_resnet at 32 px, so they share it
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert len(records) == 8 + 2
    assert all(r["status"] == "ok" for r in records)
    transfer = [r for r in records if not r["spec"]["baseline"]]
    baselines = {r["run_id"]: r for r in records if r["spec"]["baseline"]}
    for record in transfer:
        metrics = record["metrics"]
        assert 0.0 <= metrics["test_accuracy"] <= 1.0
        assert metrics["overfitting_gap"] == metrics["train_accuracy"] - metrics["test_accuracy"]
        baseline = baselines[record["spec"]["baseline_run_id"]]
        assert baseline["spec"]["seed"] == record["spec"]["seed"]
        assert metrics["negative_transfer"] == metrics["test_accuracy"] - baseline["metrics"]["test_accuracy"]
        assert metrics["trainable_params"] <= metrics["total_params"]
        assert record["provenance"]["versions"]["torch"]
    lp = next(r for r in transfer if r["spec"]["strategy"]["id"] == "lp")
    assert lp["metrics"]["trainable_params"] == 96 * 3 + 3  # only the head: test_resnet has 96 features
    leaderboard = (out / "leaderboard.md").read_text()
    assert "## Target: d" in leaderboard and "NT vs scratch" in leaderboard
    for name in ("pre", "rand"):
        assert f"| {name} " in leaderboard
    assert leaderboard.count(" (from scratch) ") == 1
    assert "# tlbench leaderboard: tiny" in first.stdout  # printed at the end of the run
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 10 and set(table["status"]) == {"ok"}
    assert {"p_strategy_epochs", "p_source_model", "p_target_shots", "torch_version", "host"} <= set(table.columns)

    again = cli("run", str(suite), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "10 runs planned: 10 already done, 0 executed" in again.stdout
    assert sorted(p.name for p in (out / "runs").glob("*.json")) == sorted(f"{r['run_id']}.json" for r in records)

    rebuilt = cli("report", str(out), "--out", str(tmp_path / "rebuilt"))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (tmp_path / "rebuilt" / "leaderboard.md").read_text() == leaderboard
