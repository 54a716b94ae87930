"""Linear-probe cost and quality, against plain baselines run side by side.

    python bench/linear_probe.py [--model resnet18] [--input-size 64] [--seeds 5] [--threads N] [--repeats 3]

Prints one line per figure, the figure first and its target next to it:

1. wall time of `linear-probe` over N seeds / over one seed, through tlbench's own
   worker (source build, splits, feature cache, probe, metrics) with a fresh cache
   each: the features are extracted once, so extra seeds cost only the probe;
2. test accuracy of tlbench's probe minus scikit-learn's LogisticRegression on the
   same features (standardised, the same L2 grid as C = 1 / (l2 · n), the strength
   chosen on the same validation split, scikit-learn's defaults otherwise), averaged
   over few-shot settings and seeds of 10-class digits;
3. solver time of tlbench's probe / scikit-learn's on those settings, both on the
   same number of BLAS threads (one), interleaved so both see the same machine load;
   wall time is the figure, CPU time is printed next to it (steadier on a busy machine);
4. for reference, the same ratio for the probe's torch code run on the CPU (torch's CPU
   BLAS is MKL): the CPU path of linear-probe v2, and the code the GPU path runs.

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


def solver_problems(registry, args, cache_dir: Path, weights: Path) -> list[dict]:
    """The few-shot problems of the solver figures: features and labels of each split, for
    `SOLVER_SETTINGS` x 3 seeds of 10-class digits."""
    from tlbench.api import Env
    from tlbench.run.features import FeatureCache
    from tlbench.params import resolve_params
    from tlbench.testing import run_context
    from tlbench_builtin.digits import DigitsData

    item = registry.get("source", "timm").item
    params = resolve_params(item.params, {"model": args.model, "file": str(weights),
                                          "input_size": args.input_size}, "source")
    source = item.build(params, Env(cache_dir=cache_dir))
    cache = FeatureCache(cache_dir / "features")
    problems = []
    for shots, val_shots in SOLVER_SETTINGS:
        data = DigitsData(list(range(10)), shots, val_shots)
        for seed in range(3):
            splits = data.splits(seed)
            run = run_context(source, data, seed, splits=splits, feature_cache=cache, registry=registry)
            problems.append({"shots": shots, "seed": seed,
                             **{f"{split}_x": run.features(split) for split in ("train", "val", "test")},
                             **{f"{split}_y": np.asarray(getattr(splits, split).labels)
                                for split in ("train", "val", "test")}})
    return problems


SOLVERS = ("numpy", "torch", "sklearn")
"""tlbench's probe on its CPU path (numpy, OpenBLAS), the same probe on its GPU path's code
run on the CPU (torch, whose CPU BLAS is MKL: the CPU path of linear-probe v2), scikit-learn."""


def time_solvers(problems: list[dict], solvers=SOLVERS, repeats: int = 1) -> dict:
    """Fit every problem with every solver, interleaved (each problem by each solver in
    turn, the order rotating), on one BLAS thread each: every BLAS library is loaded
    before the limit is set, and the limit is checked. Returns per solver its wall and
    CPU seconds summed over problems (mean over repeats) and its test accuracy per problem."""
    import sklearn.linear_model  # noqa: F401  (loads scipy's BLAS before the limit is set)
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from tlbench_builtin.linear_probe import DEFAULT_L2
    from tlbench_builtin.linear_solvers import fit_probe

    def ours(backend):
        def fit(p):
            fit = fit_probe(p["train_x"], p["train_y"], p["val_x"],
                            lambda logits: float((logits.argmax(1) == p["val_y"]).mean()), loss="softmax",
                            num_classes=10, l2_grid=DEFAULT_L2, backend_name=backend)
            return lambda x: (x @ fit.weight.T + fit.bias).argmax(1)
        return fit

    fits = {"numpy": ours("numpy"), "torch": ours("torch"),
            "sklearn": lambda p: sklearn_probe(p["train_x"], p["train_y"], p["val_x"], p["val_y"], DEFAULT_L2)}
    result = {name: {"wall": 0.0, "cpu": 0.0, "accuracy": []} for name in solvers}
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            threads = {info["filepath"]: info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}
            if set(threads.values()) != {1} or torch.get_num_threads() != 1:
                raise SystemExit(f"not one BLAS thread each: {threads}, torch {torch.get_num_threads()}")
            for name in solvers:  # first calls: imports, allocator, caches
                fits[name](problems[0])
            turn = 0
            for repeat in range(repeats):
                for problem in problems:
                    order = solvers[turn % len(solvers):] + solvers[:turn % len(solvers)]
                    turn += 1
                    for name in order:
                        wall, cpu = time.perf_counter(), time.process_time()
                        predict = fits[name](problem)
                        result[name]["wall"] += (time.perf_counter() - wall) / repeats
                        result[name]["cpu"] += (time.process_time() - cpu) / repeats
                        if repeat == 0:
                            result[name]["accuracy"].append(float((predict(problem["test_x"]) == problem["test_y"]).mean()))
    finally:
        torch.set_num_threads(torch_threads)
    return result


def solver_figures(registry, args, cache_dir: Path, weights: Path) -> None:
    problems = solver_problems(registry, args, cache_dir, weights)
    times = time_solvers(problems, repeats=args.repeats)
    ours, torch_path, theirs = times["numpy"], times["torch"], times["sklearn"]
    differences = 100 * (np.array(ours["accuracy"]) - np.array(theirs["accuracy"]))
    print(f"{np.mean(differences):+.2f} points  (target >= -1.0)  test accuracy, tlbench probe - scikit-learn "
          f"(mean of {len(differences)}: shots {[s for s, _ in SOLVER_SETTINGS]} x 3 seeds; "
          f"worst {min(differences):+.2f})", flush=True)
    print(f"{ours['wall'] / theirs['wall']:.2f}x  (target <= 1.0x)  solver time, tlbench probe (numpy, OpenBLAS) / "
          f"scikit-learn ({ours['wall']:.2f} s / {theirs['wall']:.2f} s; CPU time {ours['cpu']:.2f} s / "
          f"{theirs['cpu']:.2f} s; one BLAS thread each, checked; interleaved, {args.repeats} repeat(s))", flush=True)
    print(f"{torch_path['wall'] / theirs['wall']:.2f}x  (reference, no target)  solver time, the same probe on torch "
          f"(MKL; the CPU path of linear-probe v2, the GPU path's code) / scikit-learn ({torch_path['wall']:.2f} s / "
          f"{theirs['wall']:.2f} s; CPU time {torch_path['cpu']:.2f} s / {theirs['cpu']:.2f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18", help="timm architecture (random weights)")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the solver problems (mean)")
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
