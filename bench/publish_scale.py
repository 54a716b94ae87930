"""Scale law of `tlbench report` and `tlbench publish`: the cost per record must stay flat.

    python bench/publish_scale.py [--sizes 100,10000] [--repeats 1]

Synthetic records (the hand-made records of the report's tests: real identities and run
ids, no training) for two suites of about 100 and 10,000 records with the same shape (5
seeds, two strategies per source, one from-scratch baseline per target and seed; the
larger suite has more targets and sources). Each size is timed in one process, the
report (`report.build_report`) into a fresh folder and the publish (`site.publish`: the
report again, the bundle, a page per cell, the manifest) into a fresh site, sizes
interleaved, medians over the repeats.

The publish's own work (the site: records made portable, the bundle, the pages, the
manifest) is timed apart as well: the publish less the report it builds inside.

Prints one line per figure: the ratio of the cost per record at the large size to the
one at the small size first (1.0 = linear; the fixed cost of a command, a few hundred
ms, makes the small size dearer per record, so a ratio below 1 is expected), its
target next to it, then the seconds and ms per record at both sizes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

TARGET = 1.2
"""Cost per record at the large size / at the small size; above it, something grows faster than linearly."""
SEEDS = 5
STRATEGIES = ("lp", "ft")


def shape(n: int) -> tuple[int, int]:
    """(targets, sources) giving about `n` records: targets × seeds × (sources × strategies + 1)."""
    targets = max(1, round((n / 25) ** 0.5))
    sources = max(1, round((n / (targets * SEEDS) - 1) / len(STRATEGIES)))
    return targets, sources


def write_records(n: int, folder: Path) -> int:
    """A result directory of about `n` ok records; returns how many."""
    from test_report_aggregate import RecordSet

    records = RecordSet("bench")
    targets, sources = shape(n)
    for target in range(targets):
        name = f"t{target}"
        for seed in range(SEEDS):
            records.baseline(name, seed, 0.3 + 0.01 * seed, train=0.9)
            for source in range(sources):
                for offset, strategy in enumerate(STRATEGIES):
                    test = 0.4 + 0.5 * ((source * 7 + target * 3 + seed + offset) % 11) / 11
                    records.run(f"s{source}", strategy, name, seed, test, train=min(1.0, test + 0.05))
    records.write(folder)
    return len(records.records)


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,10000", help="records of the small and the large suite")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    import tlbench.report
    from tlbench.report import build_report
    from tlbench.site.publish import publish_site

    inner: list[float] = []

    def report_inside_publish(*args, **kwargs):
        start = time.perf_counter()
        try:
            return build_report(*args, **kwargs)
        finally:
            inner.append(time.perf_counter() - start)

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tlbench-bench-") as tmp:
        folder = Path(tmp)
        counts = {n: write_records(n, folder / f"in-{n}") for n in sizes}
        times: dict[str, dict[int, list[float]]] = {name: {n: [] for n in sizes}
                                                    for name in ("report", "publish", "site (publish - report)")}
        runs = 0
        for repeat in range(args.repeats):
            for n in (sizes if repeat % 2 == 0 else sizes[::-1]):
                runs += 1
                source = folder / f"in-{n}"
                times["report"][n].append(timed(lambda: build_report([source], folder / f"report-{runs}",
                                                                     title="bench")))
                tlbench.report.build_report = report_inside_publish
                try:
                    times["publish"][n].append(timed(lambda: publish_site([source], folder / f"site-{runs}",
                                                                          "bench")))
                finally:
                    tlbench.report.build_report = build_report
                times["site (publish - report)"][n].append(times["publish"][n][-1] - inner[-1])
    small, large = sizes
    for command, by_size in times.items():
        seconds = {n: statistics.median(values) for n, values in by_size.items()}
        per = {n: 1000 * seconds[n] / counts[n] for n in sizes}
        print(f"{per[large] / per[small]:.2f}x  (target <= {TARGET}x)  {command}: ms per record, "
              f"{counts[large]} records / {counts[small]} records ({per[large]:.2f} ms / {per[small]:.2f} ms; "
              f"{', '.join(f'{counts[n]} records {seconds[n]:.1f} s' for n in sizes)})", flush=True)
    print(f"(load average {load:.1f} -> {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
