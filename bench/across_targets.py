"""Statistics across targets: their cost within a report of a large comparison.

    python bench/across_targets.py [--strategies 50] [--targets 100] [--seeds 3]

Writes synthetic records (each strategy with its own mean gain over a same-seed
from-scratch baseline, per-target difficulty and per-run noise; one source), then times
`tlbench report` on them in-process, and, on the same tables, the statistics alone
(`report._statistics`: ranks, Friedman, Wilcoxon–Holm, Nemenyi, Bayesian signed-rank,
IQM and profiles with stratified bootstraps, probability of improvement, and their
figures). Prints both and the share of the report the statistics take; target ≤ 10%.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET = 0.10


def write_records(directory: Path, strategies: int, targets: int, seeds: int) -> int:
    from tlbench.hashing import config_hash
    from tlbench.plan.matrix import RunSpec, task_json
    from tlbench.plan.suite import Entry
    from tlbench.results.records import new_record
    from tlbench.run.execute import record_spec
    from tlbench_builtin.classification import Classification

    task = task_json(Classification, "1")
    rng = np.random.default_rng(0)
    runs = directory / "runs"
    runs.mkdir(parents=True)
    provenance = {"versions": {"tlbench": "0.1.0"}, "device": "cpu", "device_name": "bench", "host": "bench"}
    source = Entry("source", "src", "pretrain", "1", {"model": "resnet18"})
    architecture = {"model": "resnet18", "input_size": 32}
    quality = rng.normal(0.1, 0.05, strategies)
    written = 0

    def write(spec, metrics):
        nonlocal written
        record = new_record(record_spec(spec), spec.run_id, "ok", metrics=metrics, provenance=provenance,
                            started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:01:00+00:00",
                            task=task)
        (runs / f"{spec.run_id}.json").write_text(json.dumps(record), encoding="utf-8")
        written += 1

    for t in range(targets):
        target = Entry("target", f"t{t}", "digits", "1", {"classes": [t % 10], "name": f"t{t}"})
        difficulty = rng.uniform(0.3, 0.7)
        for seed in range(seeds):
            content = (config_hash([t, seed]),)
            scratch = float(np.clip(difficulty + rng.normal(0, 0.02), 0, 1))
            baseline = RunSpec(source, (("target", target),), Entry("strategy", "scratch", "full-finetune", "1", {}),
                               seed, init="random", baseline=True, architecture=architecture,
                               content_hashes=content, task=task)
            write(baseline, {"test_accuracy": scratch, "train_accuracy": 1.0, "overfitting_gap": 1.0 - scratch,
                             "n_train": 50, "n_test": 100, "wall_seconds": 1.0, "peak_memory_mb": 10.0})
            for s in range(strategies):
                test = float(np.clip(scratch + quality[s] + rng.normal(0, 0.03), 0, 1))
                spec = RunSpec(source, (("target", target),), Entry("strategy", f"s{s:02d}", f"s{s:02d}", "1", {}),
                               seed, architecture=architecture, source_fingerprint="w", content_hashes=content,
                               baseline_run_id=baseline.run_id, task=task)
                write(spec, {"test_accuracy": test, "train_accuracy": 1.0, "overfitting_gap": 1.0 - test,
                             "baseline_test_accuracy": scratch, "negative_transfer": test - scratch,
                             "n_train": 50, "n_test": 100, "wall_seconds": 1.0, "peak_memory_mb": 10.0})
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", type=int, default=50)
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
    from tlbench.report import _statistics, build_report
    from tlbench.report.aggregate import cell_table, overall_table
    from tlbench.report.frame import records_frame
    from tlbench.results.collect import collect

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "results"
        n = write_records(directory, args.strategies, args.targets, args.seeds)
        start = time.perf_counter()
        build_report([directory], directory)
        report_seconds = time.perf_counter() - start
        frame = records_frame(collect([directory]).of_kind("run"))
        cells = cell_table(frame)
        overall = overall_table(cells)
        start = time.perf_counter()
        _statistics(cells, overall, frame, 0.01)
        stats_seconds = time.perf_counter() - start
    share = stats_seconds / report_seconds
    print(f"# {args.strategies} strategies × {args.targets} targets × {args.seeds} seeds: {n} records")
    print(f"{report_seconds:.1f} s  whole report (tlbench report, in-process)")
    print(f"{stats_seconds:.1f} s  statistics across targets alone, figures included")
    print(f"{share:.3f}  statistics / report (target ≤ {TARGET:.2f}) {'ok' if share <= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
