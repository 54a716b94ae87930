"""What a multi-task training step costs against a single-task step, side by side.

    python bench/multitask.py [--repeats 3] [--epochs 3] [--threads 1] [--model test_resnet]

The runs: timm's `--model` at input 32 (random weights saved to a local file) on
digit-scenes (160 training scenes of seed 0), trained by tlbench's engine through the
task-group code every multi-task strategy uses (`tlbench.run.task_group`), in batches
of 16 with AdamW, no validation (only training steps are timed). Two pairs of tasks on
shared inputs: pooled heads (which digits appear: multi-label; how many: regression)
and dense heads (boxes: detection; pixels: segmentation). For each pair:

- a single-task step (`stl`: one member alone, the same code with one head), for each
  member, and the equal-weights two-task step (`mtl-equal`): the backbone runs once per
  batch for both heads, so the two-task step should cost well under two single-task
  steps (target: at most 1.3x the dearer single-task step);
- the gradient methods' step (`mtl-pcgrad`, `mtl-upgrad`) against `mtl-equal`'s: a
  backward pass per task through the backbone (the Jacobian) and the aggregation.

Each configuration is timed `--repeats` times, interleaved, after a warm-up; the figure is
the median time per step. Prints one line per figure, the figure first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from random_weights import save_random_weights

SCENES = {"n_train": 160, "n_val": 50, "n_test": 400, "n_scenes": 1200}
PAIRS = {"pooled": ("multilabel", "regression"), "dense": ("detection", "segmentation")}
PARAMS = {"epochs": 3, "batch_size": 16, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 0, "optimizer": "adamw",
          "momentum": 0.9, "select": "last", "patience": 0, "clip_grad_norm": None, "amp": True,
          "num_workers": 0, "backbone_lr_scale": 1.0, "backbone": "full", "train_last": 1}


def build(weights: Path, model: str):
    from tlbench.plugins import PluginRegistry
    from tlbench.api import Env

    registry = PluginRegistry.load()
    env = Env(cache_dir=Path(tempfile.mkdtemp()), registry=registry)
    source = registry.get("source", "timm").item
    params = {"model": model, "file": str(weights), "input_size": 32, "pretrained": True}
    return registry, lambda: source.build(params, env)


def step_time(registry, make_source, tasks: tuple[str, ...], method: str, params: dict) -> float:
    """Seconds per training step of `method` on the digit-scenes members `tasks`."""
    import torch

    from tlbench.run.budget import Budget
    from tlbench.run.context import RunContext
    from tlbench.run.engine import train
    from tlbench.run.task_group import TaskGroup, multitask_model

    torch.manual_seed(0)
    source = make_source()
    run = RunContext(source=source, seed=0, device=torch.device("cpu"), budget=Budget(float("inf")),
                     sampling="shared")
    target = registry.get("target", "digit-scenes").item
    for i, task in enumerate(tasks):
        data = target.load({**{k: p.default for k, p in target.params.items()}, **SCENES, "task": task}, None)
        run.add_target(task, data.info(), registry.get("task", task).item, data.splits(0), scored=i == 0)
    group = TaskGroup(run, "shared")
    model = multitask_model(group)
    strategy = registry.get("strategy", method).item
    weighting = strategy.weighting(params, group, model)
    from tlbench_builtin.finetuning import backbone_and_head_groups

    groups = backbone_and_head_groups(model, params) + weighting.groups
    group.batches("train", params["batch_size"])  # encoded once, outside the timing, as a run does before training
    started = time.perf_counter()
    result = train(group, model, groups, params, backward=weighting.backward)
    return (time.perf_counter() - started) / result.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="test_resnet")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    params = {**PARAMS, "epochs": args.epochs}
    with tempfile.TemporaryDirectory() as folder:
        weights = save_random_weights(args.model, Path(folder))
        registry, make_source = build(weights, args.model)
        configs = []
        for name, (a, b) in PAIRS.items():
            configs += [(name, (a,), "stl"), (name, (b,), "stl"), (name, (a, b), "mtl-equal"),
                        (name, (a, b), "mtl-pcgrad"), (name, (a, b), "mtl-upgrad")]
        for config in configs:  # warm-up
            step_time(registry, make_source, config[1], config[2], {**params, "epochs": 1})
        times: dict[tuple, list[float]] = {config: [] for config in configs}
        for _ in range(args.repeats):
            for config in configs:
                times[config].append(step_time(registry, make_source, config[1], config[2], params))
    median = {config: statistics.median(values) for config, values in times.items()}
    figure = 0
    for name, (a, b) in PAIRS.items():
        single_a, single_b = median[(name, (a,), "stl")], median[(name, (b,), "stl")]
        both = median[(name, (a, b), "mtl-equal")]
        figure += 1
        print(f"{figure}. {both / max(single_a, single_b):.3f}x  (target <= 1.3x)  a 2-task step ({a} + {b}, shared "
              f"inputs, mtl-equal) / the dearer single-task step ({1000 * both:.1f} ms vs {a} "
              f"{1000 * single_a:.1f} ms, {b} {1000 * single_b:.1f} ms; {args.model}, {args.threads} thread(s))")
        figure += 1
        print(f"{figure}. {both / (single_a + single_b):.3f}x  a 2-task step / both single-task steps together "
              f"(what training the two tasks apart costs)")
        for method in ("mtl-pcgrad", "mtl-upgrad"):
            figure += 1
            value = median[(name, (a, b), method)]
            print(f"{figure}. {value / both:.3f}x  a {method} step / an mtl-equal step ({a} + {b}: "
                  f"{1000 * value:.1f} ms vs {1000 * both:.1f} ms; a backward pass per task and the aggregation)")


if __name__ == "__main__":
    main()
