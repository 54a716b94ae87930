"""End to end: suites/quickstart.toml from a cold cache, then fully cached.

    python bench/end_to_end.py [SUITE] [--jobs auto|N] [--cached-repeats 3]

1. cold: a fresh TLBENCH_CACHE_DIR and result directory, so the sources are pretrained,
   every feature extracted and every run executed, with `tlbench run`'s default
   ``--jobs auto`` (the first command of README.md) unless ``--jobs`` says otherwise;
2. cached: the same command again, the same cache and results: every run is already
   done, so this is planning, the store, and the report.

Each is a whole ``python -m tlbench run`` process, timed from outside; its peak memory
is the largest sum of resident memory over the process and its children (the
workers), sampled every 50 ms: RSS (the target's measure) and PSS (shared pages
counted once, what the machine really gives). Prints one line per figure, the figure as a fraction of
its target first, then the target and the measurement.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
COLD_TARGET_S, CACHED_TARGET_S, MEMORY_TARGET_MB = 120.0, 15.0, 2048.0


def tree_memory_mb(process: psutil.Process) -> tuple[float, float]:
    """Resident memory of a process and its children, summed: RSS (shared pages counted
    in every process that maps them) and PSS (shared pages divided among them)."""
    rss = pss = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            info = member.memory_full_info()
        except psutil.Error:
            continue
        rss, pss = rss + info.rss, pss + info.pss
    return rss / 2**20, pss / 2**20


def run(command: list[str], env: dict) -> tuple[float, tuple[float, float], str]:
    """Wall seconds, peak tree memory (RSS, PSS in MB) and stdout of a command."""
    start = time.perf_counter()
    child = psutil.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_rss = peak_pss = 0.0
    while child.poll() is None:
        try:
            rss, pss = tree_memory_mb(child)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = child.communicate()
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{err[-3000:]}")
    return seconds, (peak_rss, peak_pss), out


def memory_line(what: str, rss_pss: tuple[float, float]) -> str:
    rss, pss = rss_pss
    return (f"{rss / MEMORY_TARGET_MB:.2f}x  (target <= 1.00x of {MEMORY_TARGET_MB / 1024:g} GiB)  peak memory "
            f"of the process tree, {what}: {rss:.0f} MB resident (RSS summed over the processes; "
            f"{pss:.0f} MB counting shared pages once, PSS)")


def summary_line(stdout: str) -> str:
    return next((line for line in stdout.splitlines() if "runs planned" in line), "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", nargs="?", default=str(REPO / "suites" / "quickstart.toml"))
    parser.add_argument("--jobs", default="auto", help="auto (the default of tlbench run) or a number")
    parser.add_argument("--cached-repeats", type=int, default=3, help="cached runs (median reported)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tlbench-bench-") as tmp:
        env = {**os.environ, "TLBENCH_CACHE_DIR": str(Path(tmp) / "cache")}
        command = [sys.executable, "-m", "tlbench", "run", args.suite, "--out", str(Path(tmp) / "out"),
                   "--jobs", args.jobs]
        cold_s, cold_mb, cold_out = run(command, env)
        cold_load = os.getloadavg()[0]
        cached = [run(command, env) for _ in range(args.cached_repeats)]
    cached_s = statistics.median(s for s, _, _ in cached)
    cached_mb = max(mb for _, mb, _ in cached)  # (RSS, PSS) of the largest
    name = Path(args.suite).name
    print(f"{cold_s / COLD_TARGET_S:.2f}x  (target <= 1.00x of {COLD_TARGET_S:g} s)  {name} cold cache, "
          f"--jobs {args.jobs}: {cold_s:.1f} s ({summary_line(cold_out)})", flush=True)
    print(memory_line("cold", cold_mb), flush=True)
    print(f"{cached_s / CACHED_TARGET_S:.2f}x  (target <= 1.00x of {CACHED_TARGET_S:g} s)  {name} fully cached: "
          f"{cached_s:.1f} s (median of {len(cached)}: {', '.join(f'{s:.1f}' for s, _, _ in cached)}; "
          f"{summary_line(cached[0][2])})", flush=True)
    print(memory_line("cached", cached_mb), flush=True)
    print(f"(load average {load:.1f} at the start, {cold_load:.1f} after the cold run, "
          f"{os.getloadavg()[0]:.1f} at the end; {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
