"""Scale law: the cost of one more run must not grow with the number of runs.

    python bench/scale_law.py [--repeats 3] [--sizes 8,32,128] [--done-sizes 16,128,1024]

1. executed: whole ``python -m tlbench run --jobs 1`` processes on suites of 8, 32 and
   128 small runs (a linear probe of timm's `test_resnet` on digits, one run per seed,
   the feature cache warmed beforehand, a fresh result directory each time; one worker,
   so that the figure is the cost per run, not how well the runs share the cores). The marginal
   cost per run between the two larger sizes is compared with the one between the two
   smaller sizes: a quadratic scan of the store, the schedule or the report would make
   the later runs dearer.
2. done: the same suite with 16, 128 and 1,024 seeds whose runs are all in the store
   already (records cloned from a real one, each with its own planned identity), so
   `tlbench run` plans, reads the store, skips everything and builds the report: the
   marginal cost per record between the larger sizes against the smaller ones.

Prints one line per figure, the ratio of marginal costs first (1.0 = linear; a
quadratic cost gives about (n3 - n2) / (n2 - n1) + 1) and its target next to it.
Sizes are timed interleaved, medians over the repeats.
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

from random_weights import save_random_weights

TARGET = 1.2
"""Marginal cost of the larger sizes / of the smaller ones; 1.0 is linear, the rest is noise."""

SUITE = """
[suite]
name = "bench-scale"
seeds = {seeds}
device = "cpu"

[[sources]]
id = "test_resnet"
plugin = "timm"
model = "test_resnet"
file = "{weights}"
input_size = 32

[[targets]]
id = "digits"
plugin = "digits"
shots = 10
val_shots = 5

[[strategies]]
id = "linear-probe"
plugin = "linear-probe"

[baseline]
enabled = false
"""


class Bench:
    def __init__(self, folder: Path, weights: Path):
        self.folder, self.weights = folder, weights
        self.env = {**os.environ, "TLBENCH_CACHE_DIR": str(folder / "cache")}
        self.count = 0

    def suite(self, n: int) -> Path:
        path = self.folder / f"suite-{n}.toml"
        if not path.exists():
            path.write_text(SUITE.format(seeds=list(range(n)), weights=self.weights))
        return path

    def tlbench_run(self, n: int, out: Path | None = None) -> float:
        self.count += 1
        out = out or self.folder / f"out-{n}-{self.count}"
        command = [sys.executable, "-m", "tlbench", "run", str(self.suite(n)), "--out", str(out), "--jobs", "1"]
        start = time.perf_counter()
        done = subprocess.run(command, env=self.env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return seconds


def clone_records(bench: Bench, n: int, template: dict, out: Path) -> None:
    """A result directory holding an ok record for every run of the n-seed suite."""
    from tlbench.run.execute import record_spec
    from tlbench.plan.planner import plan
    from tlbench.plugins import PluginRegistry
    from tlbench.plan.suite import load_suite

    registry = PluginRegistry.load()
    os.environ["TLBENCH_CACHE_DIR"] = bench.env["TLBENCH_CACHE_DIR"]
    suite = load_suite(bench.suite(n), registry, output=out)
    runs = out / "runs"
    runs.mkdir(parents=True)
    for spec in plan(suite, registry, log=lambda message: None).specs:
        record = dict(template, run_id=spec.run_id, spec=record_spec(spec))
        (runs / f"{spec.run_id}.json").write_text(json.dumps(record, indent=1, sort_keys=True))


def marginal(sizes: list[int], seconds: dict[int, float]) -> tuple[float, float]:
    small, middle, large = sizes
    return ((seconds[middle] - seconds[small]) / (middle - small),
            (seconds[large] - seconds[middle]) / (large - middle))


def interleaved(sizes: list[int], repeats: int, measure) -> dict[int, float]:
    times: dict[int, list[float]] = {n: [] for n in sizes}
    for i in range(repeats):
        for n in (sizes if i % 2 == 0 else sizes[::-1]):
            times[n].append(measure(n))
    return {n: statistics.median(values) for n, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="8,32,128", help="runs per executed suite (three sizes)")
    parser.add_argument("--done-sizes", default="16,128,1024", help="records per fully-done suite (three sizes)")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    done_sizes = [int(n) for n in args.done_sizes.split(",")]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tlbench-bench-") as tmp:
        folder = Path(tmp)
        bench = Bench(folder, save_random_weights("test_resnet", folder))
        bench.tlbench_run(max(sizes), folder / "warm")  # features of every example into the cache
        seconds = interleaved(sizes, args.repeats, bench.tlbench_run)
        before, after = marginal(sizes, seconds)
        print(f"{after / before:.2f}x  (target <= {TARGET}x)  executed suites: marginal seconds per run, "
              f"{sizes[1]}->{sizes[2]} runs / {sizes[0]}->{sizes[1]} runs ({after:.2f} s / {before:.2f} s; "
              f"whole process {', '.join(f'{n} runs {s:.1f} s' for n, s in seconds.items())})", flush=True)

        template = json.loads(next((folder / "warm" / "runs").glob("*.json")).read_text())
        for n in done_sizes:
            clone_records(bench, n, template, folder / f"done-{n}")
        done = interleaved(done_sizes, args.repeats, lambda n: bench.tlbench_run(n, folder / f"done-{n}"))
        before, after = marginal(done_sizes, done)
        print(f"{after / before:.2f}x  (target <= {TARGET}x)  fully-done suites (plan, store, report): marginal "
              f"ms per record, {done_sizes[1]}->{done_sizes[2]} / {done_sizes[0]}->{done_sizes[1]} "
              f"({1000 * after:.1f} ms / {1000 * before:.1f} ms; whole process "
              f"{', '.join(f'{n} records {s:.1f} s' for n, s in done.items())})", flush=True)
    print(f"(load average {load:.1f} -> {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
