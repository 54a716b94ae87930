"""Leaderboard statistics against numbers worked out by hand on a small fixed set of
records: t intervals over seeds, the paired negative-transfer interval and its flag, a
missing cell, and the across-targets view over complete targets only.

`RecordSet` builds realistic records (real `RunSpec` identities and run ids, the runner's
record layout) without training anything; the other report tests import it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from tlbench_builtin.classification import Classification
from tlbench_builtin.regression import Regression

from tlbench.hashing import config_hash
from tlbench.plan.matrix import RunSpec, task_json
from tlbench.plan.suite import Entry
from tlbench.report.aggregate import cell_table, complete_targets, overall_table
from tlbench.report.frame import frame_conflicts, records_frame
from tlbench.report.stats import paired_interval, t_interval
from tlbench.results.records import headline_spec, new_record, validate_record
from tlbench.run.execute import record_spec

T_975_2 = 4.302652729749464
"""Student t quantile 0.975 with 2 degrees of freedom (three seeds), from a table."""

ARCHITECTURE = {"model": "resnet18", "input_size": 32}

CLASSIFICATION = task_json(Classification, "1")
REGRESSION = task_json(Regression, "1")
"""The built-in task types as records carry them (regression: headline R², with MAE and RMSE)."""


class RecordSet:
    """Hand-made run records, paired with their same-seed baselines as the runner pairs them.

    Each target has a task (`tasks`: target id → task as records carry it; classification
    by accuracy unless named); `test` and `train` are values of that task's headline,
    and the gap and NT are signed by its direction, as the runner signs them.
    """

    def __init__(self, host: str = "lab-a", tasks: dict[str, dict] | None = None):
        self.host = host
        self.tasks = dict(tasks or {})
        self.records: dict[str, dict] = {}
        self.baselines: dict[tuple[str, int, str], dict] = {}

    def task(self, target: str) -> dict:
        return self.tasks.get(target, CLASSIFICATION)

    def _target(self, target: str, version: str, shots: int) -> Entry:
        classes = [5, 6, 7, 8, 9] if target.endswith("1") else [0, 1, 2, 3, 4]  # t1 and t2 differ
        plugin = "digits" if self.task(target) == CLASSIFICATION else "table"
        return Entry("target", target, plugin, version, {"classes": classes, "shots": shots, "name": target})

    def _record(self, spec: RunSpec, status: str, metrics: dict, host: str | None) -> dict:
        error = None if status == "ok" else {"type": "RuntimeError", "message": "boom", "traceback": "..."}
        record = new_record(record_spec(spec), spec.run_id, status, metrics=metrics, error=error,
                            provenance={"versions": {"tlbench": "0.1.0", "torch": "2.14.1", "python": "3.11.7"},
                                        "device": "cpu", "device_name": "Test CPU", "host": host or self.host,
                                        "git_revision": "0123abcd"},
                            started_at=f"2025-01-0{spec.seed + 1}T10:00:00+00:00",
                            finished_at=f"2025-01-0{spec.seed + 1}T10:05:00+00:00", task=spec.task)
        assert validate_record(record) == [], validate_record(record)
        self.records[spec.run_id] = record
        return record

    @staticmethod
    def _sign(task: dict) -> float:
        return 1.0 if headline_spec(task)["higher_is_better"] else -1.0

    def _metrics(self, task: dict, test, train, wall, peak, n_train, extra: dict | None) -> dict:
        if test is None:
            return {}
        headline = task["headline"]
        metrics = {f"test_{headline}": test, "wall_seconds": wall, "peak_memory_mb": peak, "n_train": n_train,
                   "n_test": 100, "trainable_params": 1000, "total_params": 5000}
        if train is not None:
            metrics |= {f"train_{headline}": train, "overfitting_gap": self._sign(task) * (train - test)}
        return metrics | (extra or {})

    def baseline(self, target: str, seed: int, test: float | None, *, train=None, status="ok", data="v1",
                 target_version="1", shots=10, host=None, wall=5.0, peak=50.0, extra=None) -> dict:
        task = self.task(target)
        spec = RunSpec(Entry("source", "good", "pretrain", "1", {"model": "resnet18"}),
                       (("target", self._target(target, target_version, shots)),),
                       Entry("strategy", "scratch", "full-finetune", "1", {"epochs": 15}), seed, init="random",
                       baseline=True, architecture=ARCHITECTURE,
                       content_hashes=(config_hash([target, data, shots, seed]),), task=task)
        record = self._record(spec, status, self._metrics(task, test, train, wall, peak, shots * 5, extra), host)
        self.baselines[(target, seed, data)] = record
        return record

    def run(self, source: str, strategy: str, target: str, seed: int, test: float | None, *, train=None,
            status="ok", data="v1", strategy_version="1", target_version="1", shots=10, host=None,
            wall=1.0, peak=100.0, store_nt=True, extra=None) -> dict:
        task = self.task(target)
        baseline = self.baselines.get((target, seed, data))
        spec = RunSpec(Entry("source", source, "pretrain", "1", {"model": "resnet18", "tag": source}),
                       (("target", self._target(target, target_version, shots)),),
                       Entry("strategy", strategy, strategy, strategy_version, {"lr": 0.001}), seed,
                       architecture=ARCHITECTURE, source_fingerprint=f"weights-of-{source}",
                       content_hashes=(config_hash([target, data, shots, seed]),),
                       baseline_run_id=baseline["run_id"] if baseline else None, task=task)
        metrics = self._metrics(task, test, train, wall, peak, shots * 5, extra)
        if store_nt and baseline and baseline["status"] == "ok" and status == "ok":
            key = f"test_{task['headline']}"
            metrics |= {f"baseline_{key}": baseline["metrics"][key],
                        "negative_transfer": self._sign(task) * (test - baseline["metrics"][key])}
        return self._record(spec, status, metrics, host)

    def write(self, directory: Path) -> Path:
        runs = Path(directory) / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        for run_id, record in self.records.items():
            (runs / f"{run_id}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        return Path(directory)


def fixed_records(host: str = "lab-a") -> RecordSet:
    """Two targets, three seeds; 'bad · lp' has negative transfer on t1 and only failures on t2."""
    rs = RecordSet(host)
    for seed, (b1, b2) in enumerate([(0.50, 0.30), (0.60, 0.40), (0.55, 0.50)]):
        rs.baseline("t1", seed, b1, train=1.0)
        rs.baseline("t2", seed, b2, train=1.0)
    good_lp_t1 = [(0.80, 0.95, 10.0, 100.0), (0.90, 1.00, 20.0, 200.0), (0.85, 0.90, 30.0, 300.0)]
    for seed, (test, train, wall, peak) in enumerate(good_lp_t1):
        rs.run("good", "lp", "t1", seed, test, train=train, wall=wall, peak=peak)
    for seed, test in enumerate([0.70, 0.65, 0.72]):
        rs.run("good", "lp", "t2", seed, test, train=0.9)
    for seed, test in enumerate([0.52, 0.62, 0.50]):
        rs.run("good", "ft", "t1", seed, test, train=1.0, store_nt=seed != 1)  # seed 1: baseline came later
    for seed, test in enumerate([0.35, 0.45, 0.40]):
        rs.run("good", "ft", "t2", seed, test, train=1.0)
    for seed, test in enumerate([0.40, 0.45, 0.47]):
        rs.run("bad", "lp", "t1", seed, test, train=0.6)
    for seed in range(3):
        rs.run("bad", "lp", "t2", seed, None, status="error")
    return rs


@pytest.fixture(scope="module")
def tables():
    frame = records_frame(list(fixed_records().records.values()))
    conflicts = frame_conflicts(frame)
    cells = cell_table(frame)
    return frame, conflicts, cells, overall_table(cells)


def cell(cells: pd.DataFrame, target: str, source: str, strategy: str) -> pd.Series:
    match = cells[(cells["target_label"] == target) & (cells["source"] == source) & (cells["strategy"] == strategy)]
    assert len(match) == 1, (target, source, strategy)
    return match.iloc[0]


def test_t_interval_by_hand():
    interval = t_interval([0.80, 0.90, 0.85, None, float("nan")])
    half = T_975_2 * 0.05 / math.sqrt(3)
    assert interval.n == 3
    assert interval.mean == pytest.approx(0.85) and interval.std == pytest.approx(0.05)
    assert (interval.low, interval.high) == (pytest.approx(0.85 - half), pytest.approx(0.85 + half))
    single = t_interval([0.7])
    assert single.n == 1 and single.mean == 0.7 and math.isnan(single.low) and not single.below_zero
    assert t_interval([]).n == 0


def test_paired_interval_uses_common_seeds_only():
    interval = paired_interval({0: 0.4, 1: 0.45, 2: 0.47, 3: 0.9}, {0: 0.5, 1: 0.6, 2: 0.55})
    assert interval.n == 3 and interval.mean == pytest.approx(-0.11)


def test_cell_statistics_by_hand(tables):
    _, conflicts, cells, _ = tables
    assert conflicts == []
    good = cell(cells, "t1", "good", "lp")
    half = T_975_2 * 0.05 / math.sqrt(3)
    assert good["n_seeds"] == 3 and good["seeds"] == "0,1,2"
    assert good["test_mean"] == pytest.approx(0.85) and good["test_std"] == pytest.approx(0.05)
    assert good["test_low"] == pytest.approx(0.85 - half) and good["test_high"] == pytest.approx(0.85 + half)
    assert good["train_mean"] == pytest.approx(0.95)
    assert good["gap_mean"] == pytest.approx(0.10)  # (0.15 + 0.10 + 0.05) / 3
    assert good["wall_mean"] == pytest.approx(20.0) and good["peak_memory_mean"] == pytest.approx(200.0)
    assert good["peak_memory_max"] == pytest.approx(300.0)
    # NT: 0.30 on every seed: zero spread, the interval is the point 0.30, above zero
    assert good["nt_mean"] == pytest.approx(0.30) and good["nt_low"] == pytest.approx(0.30)
    assert not good["negative_transfer"] and good["positive_transfer"]
    assert good["vs_best"] == "best" and good["rank_in_target"] == 1


def test_negative_transfer_flagged_only_below_zero(tables):
    _, _, cells, _ = tables
    bad = cell(cells, "t1", "bad", "lp")
    # per-seed differences to the baseline: -0.10, -0.15, -0.08
    std = math.sqrt((0.01 ** 2 + 0.04 ** 2 + 0.03 ** 2) / 2)
    half = T_975_2 * std / math.sqrt(3)
    assert bad["nt_seeds"] == 3 and bad["nt_mean"] == pytest.approx(-0.11)
    assert bad["nt_std"] == pytest.approx(std)
    assert bad["nt_high"] == pytest.approx(-0.11 + half) and bad["nt_high"] < 0
    assert bad["negative_transfer"]
    # good · ft on t1: differences +0.02, +0.02, -0.05; mean below 0 but the interval reaches 0
    ft = cell(cells, "t1", "good", "ft")
    assert ft["nt_mean"] == pytest.approx(-0.01 / 3) and ft["nt_low"] < 0 < ft["nt_high"]
    assert not ft["negative_transfer"] and not ft["positive_transfer"]
    # seed 1 of good · ft had no stored score (its baseline finished later): recomputed from the records
    assert ft["nt_seeds"] == 3
    baselines = cells[cells["baseline"]]
    assert set(baselines["source"]) == {"good (from scratch)"} and not baselines["negative_transfer"].any()


def test_comparison_with_the_best_cell(tables):
    _, _, cells, _ = tables
    ft = cell(cells, "t1", "good", "ft")
    # paired differences to good · lp: -0.28, -0.28, -0.35
    deviations = [0.07 / 3, 0.07 / 3, -0.14 / 3]
    std = math.sqrt(sum(d * d for d in deviations) / 2)
    assert ft["best_delta_mean"] == pytest.approx(-0.91 / 3)
    assert ft["best_delta_high"] == pytest.approx(-0.91 / 3 + T_975_2 * std / math.sqrt(3))
    assert ft["vs_best"] == "below best"


def test_not_separable_from_best():
    rs = RecordSet()
    for seed, (a, b) in enumerate([(0.80, 0.78), (0.72, 0.74), (0.76, 0.74)]):
        rs.run("a", "lp", "t", seed, a)
        rs.run("b", "lp", "t", seed, b)
    frame = records_frame(list(rs.records.values()))
    cells = cell_table(frame)
    assert cell(cells, "t", "b", "lp")["vs_best"] == "not separable from best"
    assert cell(cells, "t", "a", "lp")["vs_best"] == "best"


def test_missing_cell_is_shown_not_averaged(tables):
    _, _, cells, overall = tables
    missing = cell(cells, "t2", "bad", "lp")
    assert missing["n_seeds"] == 0 and missing["n_failed"] == 3 and missing["failures"] == "3 error"
    assert math.isnan(missing["test_mean"]) and missing["vs_best"] == "missing"
    assert len(cells) == 2 * 4  # every entry (baseline included) on every target
    assert complete_targets(cells) == [cell(cells, "t1", "good", "lp")["target_key"]]
    rows = {(r["source"], r["strategy"]): r for _, r in overall.iterrows()}
    assert set(rows) == {("good", "lp"), ("good", "ft"), ("bad", "lp")}  # baselines are not ranked
    assert rows[("bad", "lp")]["coverage"] == "1/2 targets"
    assert rows[("good", "lp")]["coverage"] == "2/2 targets"
    # t2 is incomplete (bad · lp has no result there), so means and ranks use t1 alone
    assert rows[("good", "lp")]["mean_headline"] == pytest.approx(0.85)
    assert rows[("good", "ft")]["mean_headline"] == pytest.approx(1.64 / 3)
    assert rows[("bad", "lp")]["mean_headline"] == pytest.approx(0.44)
    assert [rows[k]["mean_rank"] for k in [("good", "lp"), ("good", "ft"), ("bad", "lp")]] == [1.0, 2.0, 3.0]
    assert all(r["compared_on"] == 1 for r in rows.values())
    assert list(overall["strategy"]) == ["lp", "ft", "lp"]


def test_entry_without_any_record_on_a_target_is_missing():
    rs = RecordSet()
    for seed in range(2):
        rs.run("a", "lp", "t1", seed, 0.8)
        rs.run("a", "lp", "t2", seed, 0.6)
        rs.run("b", "lp", "t1", seed, 0.7)
    frame = records_frame(list(rs.records.values()))
    cells = cell_table(frame)
    nothing = cell(cells, "t2", "b", "lp")
    assert nothing["n_runs"] == 0 and nothing["n_seeds"] == 0
    overall = overall_table(cells)
    b = overall[overall["source"] == "b"].iloc[0]
    a = overall[overall["source"] == "a"].iloc[0]
    assert b["coverage"] == "1/2 targets"
    assert a["mean_headline"] == pytest.approx(0.8)  # t1 only: never 0.7 averaged with a missing t2


def test_mean_rank_is_borda_over_complete_targets():
    rs = RecordSet()
    scores = {"t1": {"a": 0.9, "b": 0.8, "c": 0.7}, "t2": {"a": 0.5, "b": 0.6, "c": 0.6}}
    for target, by_source in scores.items():
        for source, value in by_source.items():
            rs.run(source, "lp", target, 0, value)
    frame = records_frame(list(rs.records.values()))
    overall = overall_table(cell_table(frame)).set_index("source")
    # t1 ranks a=1 b=2 c=3; t2 ranks b=c=1.5 (tie), a=3
    assert overall.loc["a", "mean_rank"] == pytest.approx(2.0)
    assert overall.loc["b", "mean_rank"] == pytest.approx(1.75)
    assert overall.loc["c", "mean_rank"] == pytest.approx(2.25)
    assert list(overall.index) == ["b", "a", "c"]


def test_different_strategy_versions_are_separate_entries():
    rs = RecordSet()
    for seed in range(2):
        rs.run("a", "lp", "t", seed, 0.8)
        rs.run("a", "lp", "t", seed, 0.4, strategy_version="2")
    frame = records_frame(list(rs.records.values()))
    cells = cell_table(frame)
    assert sorted(cells["variant_note"]) == ["strategy v1", "strategy v2"]
    assert sorted(cells["test_mean"]) == [pytest.approx(0.4), pytest.approx(0.8)]  # never pooled to 0.6


def test_frame_is_long_with_param_and_provenance_columns(tables):
    frame, _, _, _ = tables
    assert len(frame) == len(fixed_records().records) == 6 + 18
    assert frame["run_id"].is_unique
    assert {"p_source_model", "p_strategy_lr", "p_target_shots", "p_target_classes", "host", "torch_version",
            "device_name", "git_revision", "started_at", "content_hash", "entry", "target_key"} <= set(frame.columns)
    assert set(frame.loc[frame["status"] == "error", "error_type"]) == {"RuntimeError"}
