"""Start-up: how long the light commands take, and that they import nothing heavy.

    python bench/startup.py [--repeats 7]

Times whole processes, as a user starts them (the `tlbench` console script next to this
Python, or ``python -m tlbench``): ``tlbench --help``, ``tlbench list`` and
``tlbench run suites/quickstart.toml --dry-run``, interleaved with a bare
``python -c pass`` so the interpreter's own start-up is visible beside them. Prints
one line per command: the median wall time as a fraction of its target first, then the
target, the time, the bare interpreter's time, and which heavy libraries the command
imported (none expected).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
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


def tlbench_command() -> list[str]:
    script = Path(sys.executable).with_name("tlbench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tlbench"]


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def heavy_imports(argv: list[str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    tlbench = tlbench_command()
    bare = [sys.executable, "-c", "pass"]
    wall(bare), [wall(tlbench + argv) for _, argv, _ in COMMANDS]  # warm the file-system cache
    times: dict[str, list[float]] = {label: [] for label, _, _ in COMMANDS}
    times["bare"] = []
    for _ in range(args.repeats):  # interleaved, so load changes hit every command alike
        times["bare"].append(wall(bare))
        for label, argv, _ in COMMANDS:
            times[label].append(wall(tlbench + argv))
    bare_s = statistics.median(times["bare"])
    for label, argv, target in COMMANDS:
        seconds = statistics.median(times[label])
        heavy = heavy_imports(argv)
        print(f"{seconds / target:.2f}x  (target <= 1.00x of {target:g} s)  `{label}`: {seconds:.2f} s "
              f"(median of {args.repeats}; bare `python -c pass` {bare_s:.2f} s); heavy imports: "
              f"{', '.join(heavy) or 'none'}", flush=True)
    print(f"(load average {load:.1f} -> {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
