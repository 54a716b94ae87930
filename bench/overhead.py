"""Harness overhead: one full fine-tuning run through tlbench against a hand-written loop.

    python bench/overhead.py [--repeats 5] [--epochs 40] [--threads 1]

The run is quickstart-sized: timm's `test_resnet` at input 32 (weights saved to a local
file), digits 5-9 with 10 training images per class, `full-finetune` for 40 epochs at
lr 1e-3 in batches of 16, seed 0. The plain baseline is bench/plain_finetune.py: the
same data, model, seed, optimiser, schedule and per-epoch validation, in plain PyTorch.
Both run on the same number of torch threads (tlbench's CPU default, 1).

Prints one line per figure, the figure first and its target next to it:

1. in-process wall time, tlbench / plain: `load_suite` + `run_suite` with the inline
   executor (planning, the target's content hashes, source checks and build, the
   engine, the record written with fsync) against `finetune()` of the plain script,
   both in this process after a warm-up of each, in interleaved pairs;
2. whole-process wall time: ``python -m tlbench run suite.toml`` (a worker process,
   the report with its figures) against ``python bench/plain_finetune.py``, each a
   fresh interpreter, in interleaved pairs;
3. test accuracy of tlbench's run minus the plain loop's (the same numbers expected).

Figures are medians over the pairs of the per-pair ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from random_weights import save_random_weights

SUITE = """
[suite]
name = "bench-overhead"
seeds = [{seed}]
device = "cpu"
time_budget_s = 600

[[sources]]
id = "test_resnet"
plugin = "timm"
model = "test_resnet"
file = "{weights}"
input_size = 32

[[targets]]
id = "digits5-9"
plugin = "digits"
classes = [5, 6, 7, 8, 9]
shots = 10
val_shots = 5

[[strategies]]
id = "full-finetune"
plugin = "full-finetune"
epochs = {epochs}
lr = 1e-3
batch_size = 16

[baseline]
enabled = false
"""


def only_record(out: Path) -> dict:
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    if len(records) != 1 or records[0]["status"] != "ok":
        raise SystemExit(f"expected one ok record in {out}, found "
                         f"{[(r['status'], (r.get('error') or {}).get('message')) for r in records]}")
    return records[0]


class InProcess:
    """Both sides in this process: tlbench's runner (inline executor) and the plain loop."""

    def __init__(self, suite_path: Path, weights: Path, folder: Path, args):
        from tlbench.plugins import PluginRegistry

        self.suite_path, self.weights, self.folder, self.args = suite_path, weights, folder, args
        self.registry = PluginRegistry.load()
        self.count = 0

    def tlbench(self) -> tuple[float, float]:
        from tlbench.runner import run_suite
        from tlbench.plan.suite import load_suite

        self.count += 1
        out = self.folder / f"inproc-{self.count}"
        start = time.perf_counter()
        suite = load_suite(self.suite_path, self.registry, output=out)
        summary = run_suite(suite, self.registry, executor="inline", threads=self.args.threads,
                            log=lambda message: None)
        seconds = time.perf_counter() - start
        if summary.ok != 1:
            raise SystemExit(f"the tlbench run failed: {summary.failed}")
        return seconds, only_record(out)["metrics"]["test_accuracy"]

    def plain(self) -> tuple[float, float]:
        import torch

        from plain_finetune import finetune

        torch.set_num_threads(self.args.threads)
        start = time.perf_counter()
        result = finetune(str(self.weights), self.args.seed, self.args.epochs)
        return time.perf_counter() - start, result["test_accuracy"]


class Processes:
    """Both sides as whole processes: `tlbench run` and the plain script."""

    def __init__(self, suite_path: Path, weights: Path, folder: Path, args):
        self.suite_path, self.weights, self.folder, self.args = suite_path, weights, folder, args
        self.env = {**os.environ, "TLBENCH_CACHE_DIR": str(folder / "cache")}
        self.count = 0

    def _run(self, command: list[str]) -> tuple[float, str]:
        start = time.perf_counter()
        done = subprocess.run(command, env=self.env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return seconds, done.stdout

    def tlbench(self) -> tuple[float, float]:
        self.count += 1
        out = self.folder / f"process-{self.count}"
        seconds, _ = self._run([sys.executable, "-m", "tlbench", "run", str(self.suite_path), "--out", str(out),
                                "--threads", str(self.args.threads)])
        return seconds, only_record(out)["metrics"]["test_accuracy"]

    def plain(self) -> tuple[float, float]:
        seconds, stdout = self._run([sys.executable, str(HERE / "plain_finetune.py"), str(self.weights),
                                     "--seed", str(self.args.seed), "--epochs", str(self.args.epochs),
                                     "--threads", str(self.args.threads)])
        return seconds, json.loads(stdout.strip().splitlines()[-1])["test_accuracy"]


def pairs(side, repeats: int, warmup: bool) -> tuple[list[float], list[float], list[float], list[float]]:
    """Interleaved timings (tlbench first in even pairs, plain first in odd ones)."""
    if warmup:
        side.tlbench(), side.plain()
    ours, theirs, ours_acc, theirs_acc = [], [], [], []
    for i in range(repeats):
        order = (side.tlbench, side.plain) if i % 2 == 0 else (side.plain, side.tlbench)
        for call in order:
            seconds, acc = call()
            (ours if call == side.tlbench else theirs).append(seconds)
            (ours_acc if call == side.tlbench else theirs_acc).append(acc)
    return ours, theirs, ours_acc, theirs_acc


def report(label: str, target: float, ours: list[float], theirs: list[float], what: str) -> None:
    ratio = statistics.median(a / b for a, b in zip(ours, theirs))
    print(f"{ratio:.3f}x  (target <= {target:.2f}x)  {label}: {what} "
          f"(median of {len(ours)} interleaved pairs: {statistics.median(ours):.2f} s vs "
          f"{statistics.median(theirs):.2f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved pairs per figure")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of both sides")
    parser.add_argument("--only", choices=("inprocess", "process"), help="measure one figure only")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tlbench-bench-") as tmp:
        folder = Path(tmp)
        weights = save_random_weights("test_resnet", folder, seed=1234)
        suite_path = folder / "overhead.toml"
        suite_path.write_text(SUITE.format(seed=args.seed, epochs=args.epochs, weights=weights))
        accuracies = []
        if args.only in (None, "process"):
            ours, theirs, ours_acc, theirs_acc = pairs(Processes(suite_path, weights, folder, args),
                                                       args.repeats, warmup=True)
            report("whole process", 1.15, ours, theirs, "`tlbench run` / `python plain_finetune.py`")
            accuracies += list(zip(ours_acc, theirs_acc))
        if args.only in (None, "inprocess"):
            ours, theirs, ours_acc, theirs_acc = pairs(InProcess(suite_path, weights, folder, args),
                                                       args.repeats, warmup=True)
            report("in-process", 1.05, ours, theirs, "tlbench runner (inline executor) / plain loop")
            accuracies += list(zip(ours_acc, theirs_acc))
    differences = [100 * (a - b) for a, b in accuracies]
    print(f"{max(differences, key=abs):+.2f} points  (target +0.00)  test accuracy, tlbench - plain, largest "
          f"difference over {len(differences)} pairs (tlbench {accuracies[0][0]:.4f}, plain "
          f"{accuracies[0][1]:.4f}; {args.epochs} epochs, seed {args.seed}, {args.threads} thread(s); "
          f"load average {load:.1f} -> {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
