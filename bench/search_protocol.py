"""What the selection protocol costs: a linear-probe grid on cached features, and the
whole protocol (trials + finals) for fine-tuning.

    python bench/search_protocol.py [--threads 1]

1. A linear probe searched over 8 L2 strengths at one seed (8 trials) against one probe
   at one strength, each in one worker with a fresh feature cache: the first trial
   extracts the features, the other seven read them, so the grid should cost little more
   than one probe (target ≤ 1.3×). The source is timm's resnet18 with random weights at
   64 pixels on all of scikit-learn's digits (20 shots per class; nothing downloaded).
2. Full fine-tuning of timm's test_resnet searched over 8 learning rates at seed 0, then
   the choice retrained on train+val with 3 seeds: (trials + finals) / finals, counted
   in runs and measured in wall time, against the 3 finals alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

PROBE = """
[suite]
name = "bench-search-probe"
seeds = [0]
refit = "train"

[[sources]]
id = "resnet18-random"
plugin = "timm"
model = "resnet18"
pretrained = false
input_size = 64

[[targets]]
id = "digits"
plugin = "digits"
shots = 20
val_shots = 5

[[strategies]]
id = "linear-probe"
plugin = "linear-probe"
{strategy}

[baseline]
enabled = false
"""
ONE_PROBE = "l2_grid = [1e-3]"
PROBE_GRID = ("[strategies.search]\nl2_grid = [[1e-1], [3e-2], [1e-2], [3e-3], [1e-3], [3e-4], [1e-4], [3e-5]]")

FINETUNE = """
[suite]
name = "bench-search-finetune"
seeds = [0, 1, 2]

[[sources]]
id = "test-resnet-random"
plugin = "timm"
model = "test_resnet"
pretrained = false
input_size = 24

[[targets]]
id = "digits"
plugin = "digits"
classes = [5, 6, 7, 8, 9]
shots = 20
val_shots = 5

[[strategies]]
id = "full-finetune"
plugin = "full-finetune"
epochs = 10
batch_size = 16
[strategies.search]
lr = [3e-2, 1e-2, 5e-3, 3e-3, 1e-3, 5e-4, 3e-4, 1e-4]

[baseline]
enabled = false
"""


def run_protocol(registry, suite_path: Path, cache_dir: Path, threads: int | None):
    """(seconds in trials, seconds in finals, trial records, final records): the suite's
    trials, then its finals with the choice, in one worker with a fresh cache."""
    from tlbench.plan.planner import plan
    from tlbench.plan.search import choose_finals
    from tlbench.plan.suite import load_suite
    from tlbench.run.execute import RunSettings, Worker

    suite = load_suite(suite_path, registry)
    planned = plan(suite, registry, log=lambda message: None)
    worker = Worker(RunSettings(device="cpu", cache_dir=str(cache_dir), threads=threads), registry=registry)
    start = time.perf_counter()
    trials = [worker.run(spec) for spec in planned.specs]
    middle = time.perf_counter()
    finals, problems = choose_finals(planned, {record["run_id"]: record for record in trials})
    final_records = [worker.run(spec) for spec in finals]
    end = time.perf_counter()
    failed = [r["error"]["message"] for r in [*trials, *final_records] if r["status"] != "ok"] + problems
    if failed:
        raise SystemExit(f"a benchmark run failed: {failed[0]}")
    return middle - start, end - middle, trials, final_records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from tlbench.plugins import PluginRegistry

    registry = PluginRegistry.load()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def suite(name: str, text: str) -> Path:
            path = folder / f"{name}.toml"
            path.write_text(text)
            return path

        one_probe = suite("one", PROBE.format(strategy=ONE_PROBE))
        grid = suite("grid", PROBE.format(strategy=PROBE_GRID))
        run_protocol(registry, one_probe, folder / "cache-warmup", args.threads)  # imports, first calls
        one, _, records, _ = run_protocol(registry, one_probe, folder / "cache-one", args.threads)
        trials, final, trial_records, _ = run_protocol(registry, grid, folder / "cache-grid", args.threads)
        hits = [r["details"]["feature_cache"]["hits"] for r in trial_records]
        first = trial_records[0]["metrics"]["wall_seconds"]
        print(f"# resnet18 (random weights, 64 px) on all 1,797 digits, {args.threads} torch thread(s)")
        print(f"{(trials + final) / one:.2f}x  (target <= 1.3x)  linear-probe searched over 8 strengths at 1 seed, "
              f"8 trials + the refit final / one untuned probe ({trials:.1f} s + {final:.1f} s / {one:.1f} s; "
              f"feature-cache hits per trial {hits}; trials extract no test features)")
        print(f"{trials / first:.2f}x  the 8 trials / the first alone, which extracts the train and val features "
              f"({trials:.1f} s / {first:.1f} s)")

        tune = suite("finetune", FINETUNE)
        run_protocol(registry, tune, folder / "cache-ft-warmup", args.threads)
        trial_s, final_s, trial_records, final_records = run_protocol(registry, tune, folder / "cache-ft",
                                                                      args.threads)
        n_trials, n_finals = len(trial_records), len(final_records)
        chosen = final_records[0]["spec"]["search"]["chosen"]
        print("# test_resnet (random weights, 24 px) full fine-tuning, 10 epochs, digits 5-9 at 20 shots")
        print(f"{(trial_s + final_s) / final_s:.2f}x  whole protocol / finals alone, measured "
              f"({trial_s:.1f} s in {n_trials} trials + {final_s:.1f} s in {n_finals} finals on train+val); "
              f"counted in runs ({n_trials} + {n_finals}) / {n_finals} = {(n_trials + n_finals) / n_finals:.2f}x; "
              f"chosen {chosen}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
