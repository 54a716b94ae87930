"""Linear-probe cost and quality, against plain baselines run side by side.

    python bench/linear_probe.py [--model resnet18] [--input-size 64] [--seeds 5] [--threads N]

Prints one line per figure, the figure first and its target next to it:

1. wall time of `linear-probe` over N seeds / over one seed, through tlbench's own
   worker (source build, splits, feature cache, probe, metrics) with a fresh cache
   each: the features are extracted once, so extra seeds cost only the probe;
2. test accuracy of tlbench's probe minus scikit-learn's LogisticRegression on the
   same features (standardised, the same L2 grid as C = 1 / (l2 · n), the strength
   chosen on the same validation split, scikit-learn's defaults otherwise), averaged
   over few-shot settings and seeds of 10-class digits;
3. solver time of tlbench's probe / scikit-learn's on those settings, both on the
   same number of BLAS threads (one), interleaved so both see the same machine load.

The source is a timm architecture with random weights saved to a local file (no
download); the figures are about cost and the solver, not about pretrained features.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from random_weights import save_random_weights

SUITE = """
[suite]
name = "bench-linear-probe"
seeds = {seeds}

[[sources]]
id = "src"
plugin = "timm"
model = "{model}"
file = "{file}"
input_size = {input_size}

[[targets]]
id = "digits"
plugin = "digits"
shots = 10
val_shots = 5

[[strategies]]
id = "lp"
plugin = "linear-probe"

[baseline]
enabled = false
"""

SOLVER_SETTINGS = [(5, 5), (20, 10), (80, 20)]
"""(shots, val_shots) per class for the solver comparison."""


def timed_runs(registry, suite_path: Path, cache_dir: Path, threads: int | None) -> tuple[float, list[dict]]:
    """Wall time of running every run of the suite in one worker with a fresh cache."""
    from tlbench.run.execute import RunSettings, Worker
    from tlbench.plan.planner import plan
    from tlbench.plan.suite import load_suite

    suite = load_suite(suite_path, registry)
    specs = sorted(plan(suite, registry, log=lambda message: None).specs, key=lambda spec: spec.seed)
    worker = Worker(RunSettings(device="cpu", cache_dir=str(cache_dir), threads=threads), registry=registry)
    start = time.perf_counter()
    records = [worker.run(spec) for spec in specs]
    elapsed = time.perf_counter() - start
    failed = [r["error"]["message"] for r in records if r["status"] != "ok"]
    if failed:
        raise SystemExit(f"a benchmark run failed: {failed[0]}")
    return elapsed, records


def seeds_figure(registry, args, folder: Path, weights: Path) -> Path:
    """Print the seeds figure; return the cache that holds every example's features."""
    def suite(seeds: list[int]) -> Path:
        path = folder / f"suite-{len(seeds)}.toml"
        path.write_text(SUITE.format(seeds=seeds, model=args.model, file=weights, input_size=args.input_size))
        return path

    timed_runs(registry, suite([0]), folder / "cache-warmup", args.threads)  # imports, first-call costs
    one, _ = timed_runs(registry, suite([0]), folder / "cache-one", args.threads)
    many, records = timed_runs(registry, suite(list(range(args.seeds))), folder / "cache-many", args.threads)
    hits = [r["details"]["feature_cache"]["hits"] for r in records]
    print(f"{many / one:.2f}x  (target <= 1.5x)  linear-probe wall time, {args.seeds} seeds / 1 seed "
          f"({many:.1f} s / {one:.1f} s; cache hits per seed {hits})", flush=True)
    return folder / "cache-many"


def sklearn_probe(train_x, train_y, val_x, val_y, l2_grid):
    """scikit-learn's LogisticRegression over the same grid, chosen on val (stronger on ties)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    train_z, val_z = scaler.transform(train_x), scaler.transform(val_x)
    best = None
    for l2 in sorted(l2_grid, reverse=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(C=1.0 / (l2 * len(train_y))).fit(train_z, train_y)
        score = model.score(val_z, val_y)
        if best is None or score > best[0]:
            best = (score, model)
    return lambda x: best[1].predict(scaler.transform(x))


def solver_figures(registry, args, cache_dir: Path, weights: Path) -> None:
    from threadpoolctl import threadpool_limits

    from tlbench.api import Env
    from tlbench.run.features import FeatureCache
    from tlbench.params import resolve_params
    from tlbench.testing import run_context
    from tlbench_builtin.digits import DigitsData
    from tlbench_builtin.linear_probe import DEFAULT_L2
    from tlbench_builtin.linear_solvers import fit_probe

    item = registry.get("source", "timm").item
    params = resolve_params(item.params, {"model": args.model, "file": str(weights),
                                          "input_size": args.input_size}, "source")
    source = item.build(params, Env(cache_dir=cache_dir))
    cache = FeatureCache(cache_dir / "features")
    ours_time = sklearn_time = 0.0
    differences = []
    for shots, val_shots in SOLVER_SETTINGS:
        data = DigitsData(list(range(10)), shots, val_shots)
        for seed in range(3):
            splits = data.splits(seed)
            run = run_context(source, data, seed, splits=splits, feature_cache=cache, registry=registry)
            x = {split: run.features(split) for split in ("train", "val", "test")}
            y = {split: getattr(splits, split).labels for split in ("train", "val", "test")}
            with threadpool_limits(1):
                start = time.perf_counter()
                fit = fit_probe(x["train"], y["train"], x["val"],
                                lambda logits: float((logits.argmax(1) == y["val"]).mean()), loss="softmax",
                                num_classes=10, l2_grid=DEFAULT_L2)
                ours_time += time.perf_counter() - start
                start = time.perf_counter()
                predict = sklearn_probe(x["train"], y["train"], x["val"], y["val"], DEFAULT_L2)
                sklearn_time += time.perf_counter() - start
            ours = float(((x["test"] @ fit.weight.T + fit.bias).argmax(1) == y["test"]).mean())
            theirs = float((predict(x["test"]) == y["test"]).mean())
            differences.append(100 * (ours - theirs))
    print(f"{np.mean(differences):+.2f} points  (target >= -1.0)  test accuracy, tlbench probe - scikit-learn "
          f"(mean of {len(differences)}: shots {[s for s, _ in SOLVER_SETTINGS]} x 3 seeds; "
          f"worst {min(differences):+.2f})", flush=True)
    print(f"{ours_time / sklearn_time:.2f}x  (target <= 1.0x)  solver time, tlbench probe / scikit-learn "
          f"({ours_time:.2f} s / {sklearn_time:.2f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18", help="timm architecture (random weights)")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: torch's)")
    args = parser.parse_args()

    from tlbench.plugins import PluginRegistry

    registry = PluginRegistry.load()
    with tempfile.TemporaryDirectory(prefix="tlbench-bench-") as tmp:
        folder = Path(tmp)
        weights = save_random_weights(args.model, folder)
        cache_dir = seeds_figure(registry, args, folder, weights)
        solver_figures(registry, args, cache_dir, weights)


if __name__ == "__main__":
    main()
