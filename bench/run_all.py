"""Run every benchmark in bench/, one after the other, and print their figures.

    python bench/run_all.py [NAME ...]

With names (e.g. ``startup overhead``), only those. Each script runs in its own
process with its default settings; their lines are printed as they come, under the
script's name, with the load average before each (measure on a quiet machine). About
20 minutes on 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["startup", "overhead", "linear_probe", "logme", "parallel_scaling", "end_to_end", "scale_law"]


def main() -> int:
    names = sys.argv[1:] or SCRIPTS
    unknown = [name for name in names if name not in SCRIPTS]
    if unknown:
        print(f"run_all: unknown benchmark {unknown[0]!r}; expected some of {', '.join(SCRIPTS)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"== bench/{name}.py  (load average {os.getloadavg()[0]:.1f})", flush=True)
        start = time.perf_counter()
        code = subprocess.run([sys.executable, str(HERE / f"{name}.py")]).returncode
        print(f"   ({time.perf_counter() - start:.0f} s{'' if code == 0 else f', exit {code}'})", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
