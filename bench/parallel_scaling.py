"""Speed-up of `tlbench run --jobs 2` over `--jobs 1` on suites/quickstart.toml.

One command: `python bench/parallel_scaling.py [SUITE]`. Each configuration runs the
whole suite from a cold cache (source pretraining included) into its own result
directory, one after the other, through the real CLI. Prints one line per figure,
the ratio first and its target next to it, then checks that both gave the same
records (run ids and every metric but wall time and peak memory).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_SPEEDUP = 1.5
TIMING_KEYS = ("wall_seconds", "peak_memory_mb")


def cpu_seconds() -> float:
    """CPU time of finished child processes (the CLI and the workers it waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_suite(suite: Path, out: Path, cache: Path, jobs: int) -> tuple[float, float]:
    """Wall seconds of one `tlbench run`, and the cores it kept busy on average."""
    env = {**os.environ, "TLBENCH_CACHE_DIR": str(cache)}
    cpu, started = cpu_seconds(), time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "tlbench.cli", "run", str(suite), "--out", str(out),
                             "--jobs", str(jobs)], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"--jobs {jobs} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return elapsed, (cpu_seconds() - cpu) / elapsed


def metrics(out: Path) -> dict[str, dict]:
    found = {}
    for path in (out / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        found[record["run_id"]] = {k: v for k, v in record["metrics"].items() if k not in TIMING_KEYS}
    return found


def main() -> None:
    suite = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "suites" / "quickstart.toml"
    with tempfile.TemporaryDirectory(prefix="tlbench-bench-") as tmp:
        root = Path(tmp)
        load = os.getloadavg()[0]
        timed = {jobs: run_suite(suite, root / f"out{jobs}", root / f"cache{jobs}", jobs) for jobs in (1, 2)}
        one, two = metrics(root / "out1"), metrics(root / "out2")
    (wall1, cores1), (wall2, cores2) = timed[1], timed[2]
    same = sum(one[run_id] == two.get(run_id) for run_id in one)
    print(f"{wall1 / wall2:.2f}x  (target >= {TARGET_SPEEDUP}x)  {suite.name} wall time, --jobs 2 vs "
          f"--jobs 1: {wall2:.1f} s vs {wall1:.1f} s (cold caches; {os.cpu_count()} cores; "
          f"load average {load:.1f} -> {os.getloadavg()[0]:.1f})")
    print(f"{cores2 / cores1:.2f}x  (target ~2x on idle cores)  cores kept busy, --jobs 2 vs --jobs 1: "
          f"{cores2:.2f} vs {cores1:.2f} (CPU seconds / wall seconds; below 2 when others use the cores)")
    print(f"{same}/{len(one)} runs  (target {len(one)}/{len(one)})  identical run ids and metrics, "
          f"--jobs 2 vs --jobs 1" + ("" if set(one) == set(two) else f"; run ids differ: {len(two)} vs {len(one)}"))


if __name__ == "__main__":
    main()
