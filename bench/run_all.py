"""Run every benchmark in bench/, one after the other, and print their figures.

    python bench/run_all.py [NAME ...]

With names (e.g. ``startup overhead``), only those. Each script runs in its own
process with its default settings; their lines are printed as they come, under the
script's name. First comes the machine (bench/machine.py: the CPU model, torch's and
numpy's BLAS libraries, the kernels they chose and their default thread counts, and any
environment variable that changes those); then every figure line (one that starts with
its number) ends with the load average when it was printed and that machine in short, so
a figure copied elsewhere keeps what it was measured on. Measure on a quiet machine.
About 30 minutes on 2 cores (the statistics and publish benchmarks about 8 of them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["startup", "overhead", "linear_probe", "blas_dispatch", "logme", "parallel_scaling", "end_to_end",
           "scale_law", "across_targets", "publish_scale", "audio_decoding", "audio_probe", "whisper_padding",
           "search_protocol", "detection", "multitask"]
DEFAULT = [name for name in SCRIPTS if name != "blas_dispatch"]
"""`blas_dispatch` (about 15 minutes) runs only when named."""
FIGURE = re.compile(r"^[-+]?\d")


def machine() -> tuple[list[str], str]:
    """(the machine's lines, its one-line summary), read in a child so that this process
    imports neither torch nor numpy and the child sees the same environment as the scripts."""
    sys.path.insert(0, str(HERE))
    import machine as described

    out = subprocess.run([sys.executable, str(HERE / "machine.py"), "--json"], capture_output=True, text=True,
                         check=False)
    if out.returncode:
        return [f"machine: unknown ({out.stderr.strip().splitlines()[-1:]})"], "machine unknown"
    found = json.loads(out.stdout)
    return described.lines(found), described.short(found)


def main() -> int:
    names = sys.argv[1:] or DEFAULT
    unknown = [name for name in names if name not in SCRIPTS]
    if unknown:
        print(f"run_all: unknown benchmark {unknown[0]!r}; expected some of {', '.join(SCRIPTS)}", file=sys.stderr)
        return 2
    described, summary = machine()
    print("\n".join(described), flush=True)
    failed = []
    for name in names:
        print(f"== bench/{name}.py  (load average {os.getloadavg()[0]:.2f})", flush=True)
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, str(HERE / f"{name}.py")], stdout=subprocess.PIPE, text=True,
                                 bufsize=1)
        for line in child.stdout:
            line = line.rstrip("\n")
            if FIGURE.match(line):
                line = f"{line}  [load {os.getloadavg()[0]:.2f}; {summary}]"
            print(line, flush=True)
        code = child.wait()
        print(f"   ({time.perf_counter() - start:.0f} s{'' if code == 0 else f', exit {code}'}; "
              f"load average {os.getloadavg()[0]:.2f})", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
