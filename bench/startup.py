"""Start-up: how long the light commands take, that they import nothing heavy, and what
`tlbench run` costs around the runs themselves.

    python bench/startup.py [--repeats 7] [--run-repeats 5]

Times whole processes, as a user starts them (the `tlbench` console script next to this
Python, or ``python -m tlbench``), interleaved with a bare ``python -c pass`` so the
interpreter's own start-up is visible beside them:

1. ``tlbench --help``, ``tlbench list`` and ``tlbench run suites/quickstart.toml
   --dry-run``: one line each with the heavy libraries the command imported (none
   expected);
2. ``tlbench run`` of a one-run suite (a linear probe of timm's random `test_resnet` on
   three digit classes, its features already cached) into a fresh result directory:
   planning, a worker process, the run, the record and the report, nearly all of it
   start-up;
3. the same command once every run is recorded: planning, the store and the report.

Each line gives the median wall time as a fraction of its target first, then the
target and the time. The targets of 2 and 3 are today's figures plus 20%: the runner's
start-up may not grow past them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "timm", "torchvision", "transformers", "pandas", "matplotlib", "sklearn", "scipy",
         "pyarrow", "ray", "datasets", "peft")
COMMANDS = [
    ("tlbench --help", ["--help"], 0.5),
    ("tlbench list", ["list"], 1.5),
    ("tlbench run suites/quickstart.toml --dry-run", ["run", "suites/quickstart.toml", "--dry-run"], 2.0),
]
PROBE = """
import contextlib, io, json, sys
from tlbench.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main({argv!r})
    except SystemExit:
        pass
print(json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)))
"""
ONE_RUN_SUITE = """
[suite]
name = "bench-startup"
seeds = [0]
device = "cpu"

[[sources]]
id = "rn"
plugin = "timm"
model = "test_resnet"
pretrained = false
input_size = 32

[[targets]]
id = "digits"
plugin = "digits"
classes = [0, 1, 2]
shots = 5
val_shots = 3

[[strategies]]
id = "lp"
plugin = "linear-probe"

[baseline]
enabled = false
"""
ONE_RUN_TARGET_S = 1.2 * 11.8
"""`tlbench run` of one cached linear probe, whole process: 11.8 s on the development
machine (2 cores, load average about 2 from other work) at commit a9b9ad2, before the
runner lost its early-started workers and its report-import thread, plus 20%."""
ALL_DONE_TARGET_S = 1.2 * 5.9
"""The same suite with its run recorded: 5.9 s at a9b9ad2, plus 20%."""


def tlbench_command() -> list[str]:
    script = Path(sys.executable).with_name("tlbench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tlbench"]


def wall(command: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def heavy_imports(argv: list[str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def light_commands(tlbench: list[str], repeats: int) -> float:
    """Lines for the commands that must stay light; returns the bare interpreter's time."""
    bare = [sys.executable, "-c", "pass"]
    wall(bare), [wall(tlbench + argv) for _, argv, _ in COMMANDS]  # warm the file-system cache
    times: dict[str, list[float]] = {label: [] for label, _, _ in COMMANDS}
    times["bare"] = []
    for _ in range(repeats):  # interleaved, so load changes hit every command alike
        times["bare"].append(wall(bare))
        for label, argv, _ in COMMANDS:
            times[label].append(wall(tlbench + argv))
    bare_s = statistics.median(times["bare"])
    for label, argv, target in COMMANDS:
        seconds = statistics.median(times[label])
        heavy = heavy_imports(argv)
        print(f"{seconds / target:.2f}x  (target <= 1.00x of {target:g} s)  `{label}`: {seconds:.2f} s "
              f"(median of {repeats}; bare `python -c pass` {bare_s:.2f} s); heavy imports: "
              f"{', '.join(heavy) or 'none'}", flush=True)
    return bare_s


def run_commands(tlbench: list[str], repeats: int) -> None:
    """Lines for `tlbench run` of one cached run, and of a suite already done."""
    with tempfile.TemporaryDirectory(prefix="tlbench-bench-") as tmp:
        folder = Path(tmp)
        suite = folder / "suite.toml"
        suite.write_text(ONE_RUN_SUITE, encoding="utf-8")
        env = {**os.environ, "TLBENCH_CACHE_DIR": str(folder / "cache")}
        done = folder / "done"
        run = tlbench + ["run", str(suite), "--out"]
        wall(run + [str(done)], env)  # features cached, and one result directory with its run done
        fresh, again = [], []
        for i in range(repeats):
            shutil.rmtree(folder / "fresh", ignore_errors=True)
            fresh.append(wall(run + [str(folder / "fresh")], env))
            again.append(wall(run + [str(done)], env))
    for label, times, target in (("one cached run, fresh result directory", fresh, ONE_RUN_TARGET_S),
                                 ("its run already recorded", again, ALL_DONE_TARGET_S)):
        seconds = statistics.median(times)
        print(f"{seconds / target:.2f}x  (target <= 1.00x of {target:g} s)  `tlbench run`, {label}: "
              f"{seconds:.2f} s (median of {repeats}: {', '.join(f'{s:.2f}' for s in times)})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="repeats of the light commands")
    parser.add_argument("--run-repeats", type=int, default=5, help="repeats of the `tlbench run` figures")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    tlbench = tlbench_command()
    light_commands(tlbench, args.repeats)
    if args.run_repeats:
        run_commands(tlbench, args.run_repeats)
    print(f"(load average {load:.1f} -> {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
