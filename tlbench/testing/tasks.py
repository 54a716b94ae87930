"""Conformance of task types, checked on a target that gives the task's labels and a
source: labels that validate and hash losslessly, an objective made from the training
labels alone, batches cut the same whichever way, a finite loss that trains the head
through tlbench's engine, and predictions the task scores into every metric it declares,
within their ranges."""

from __future__ import annotations

import dataclasses

import math
from pathlib import Path

from ..api import REPRESENTATIONS, Task
from ..plugins import PluginRegistry, Registered
from .items import ItemRef, fail, kit_env, resolve
from .targets import check_target, declared_task
from .tiny import TinySource


def check_task(task: ItemRef, *, target: ItemRef, target_params: dict | None = None,
               source: ItemRef | None = None, seed: int = 0, epochs: int = 2, registry: PluginRegistry | None = None,
               cache_dir: str | Path | None = None) -> dict:
    """Check a task type on `target` (a target whose labels are of this task) and `source`
    (the kit's tiny CNN unless given); returns the task's metrics on the test split after
    `epochs` of training the source with the task's head through tlbench's engine.

    Checks: the task's fields; the target declares this task and passes `check_target`;
    `label_bytes` gives bytes, equal for equal labels and different for different ones;
    the objective's head takes the source's representation, `targets` is row-wise (a
    split's targets cut by rows equal the targets of those rows), the loss is a finite
    scalar whose gradient reaches the head, predictions have one entry per example and
    pass `check_predictions` (for a word-level task, `Task.words`: one per word of each
    example); `score` returns every declared metric, finite or None,
    within its range, and the same twice.
    """

    from ..run.context import encoder_for
    from ..training import (TaskModel, engine_defaults, evaluate, param_groups, seed_everything,
                            supervised_target, train)

    reg, _ = resolve("task", task, None, registry)
    item: Task = reg.item
    _check_fields(reg, item)
    target_reg, params = resolve("target", target, target_params, registry)
    if declared_task(target_reg, params, registry).name != item.name:
        fail(reg, f"target {target_reg.name!r} declares a {target_reg.item.task(params)!r} task, not this one")
    data = check_target(target_reg.item, params, seeds=(seed,), registry=registry, cache_dir=cache_dir)
    splits, info = data.splits(seed), data.info()
    _check_label_bytes(reg, item, splits.train.labels)
    source_reg, source_params = resolve("source", source if source is not None else TinySource(), None, registry)
    env = dataclasses.replace(kit_env(registry, cache_dir), seed=seed)
    source_reg.item.prepare(source_params, env)
    seed_everything(seed)
    built = source_reg.item.build(source_params, env, pretrained=True)
    if item.representation not in built.representations:
        fail(reg, f"reads {item.representation} but source {source_reg.name!r} gives only "
                  f"{', '.join(built.representations)}; check it with a source that gives them")
    run = supervised_target(splits, data, item, encoder_for(built, item), "cpu", seed)
    _check_objective(reg, item, run, built)
    model = TaskModel(built.backbone, run.objective.head(built), item.representation)
    knobs = engine_defaults(epochs=epochs, batch_size=8, lr=1e-2, select="last")
    train(run, model, param_groups(model.named_parameters(), knobs["lr"], knobs["weight_decay"]), knobs)
    result = evaluate(run, model, knobs)
    for name, split in splits.items():
        predictions = result.predictions[name]
        if len(predictions) != len(split):
            fail(reg, f"predictions of split {name!r} have {len(predictions)} entries for {len(split)} examples")
        try:
            item.check_predictions(predictions, len(split), info)
        except ValueError as exc:
            fail(reg, f"check_predictions refuses the predictions of its own objective on {name!r}: {exc}")
        if item.words:  # word lists: one prediction per word
            lengths = [(len(p), len(e)) for p, e in zip(predictions, split.examples) if len(p) != len(e)]
            if lengths:
                fail(reg, f"predictions of split {name!r} must have one tag per word; an example of {lengths[0][1]} "
                          f"words has {lengths[0][0]}")
    scores = item.score(result.predictions["test"], splits.test.labels, info)
    _check_scores(reg, item, scores)
    if item.score(result.predictions["test"], splits.test.labels, info) != scores:
        fail(reg, "score gave other values for the same predictions and labels")
    return scores


def _check_fields(reg: Registered, task: Task) -> None:
    """What registration checks, checked again for instances passed directly."""
    names = [metric.name for metric in task.metrics]
    if not names or task.headline not in names:
        fail(reg, f"headline {task.headline!r} must be one of its metrics {names}")
    if task.representation not in REPRESENTATIONS:
        fail(reg, f"representation must be one of {REPRESENTATIONS}, got {task.representation!r}")


def _check_label_bytes(reg: Registered, task: Task, labels) -> None:
    encoded = [task.label_bytes(label) for label in labels]
    if not all(isinstance(value, bytes) for value in encoded):
        fail(reg, "label_bytes must return bytes")
    if [task.label_bytes(label) for label in labels] != encoded:
        fail(reg, "label_bytes gave other bytes for the same label")
    by_bytes: dict[bytes, object] = {}
    for label, value in zip(labels, encoded):
        earlier = by_bytes.setdefault(value, label)
        if _differ(earlier, label):
            fail(reg, f"label_bytes gives the same bytes to different labels ({earlier!r} and {label!r}): content "
                      f"hashes would not see the difference")


def _differ(a, b) -> bool:
    import numpy as np

    try:
        return not np.array_equal(np.asarray(a), np.asarray(b))
    except Exception:
        return a != b


def _check_objective(reg: Registered, task: Task, run, source) -> None:
    import torch

    from ..training import TaskModel, index_inputs

    objective = run.objective
    head = objective.head(source)
    if not isinstance(head, torch.nn.Module):
        fail(reg, f"Objective.head must return a torch.nn.Module, got {type(head).__name__}")
    labels = run.split("train").labels
    rows = [0, len(labels) - 1]
    whole = objective.targets(labels)
    cut = index_inputs(whole, torch.tensor(rows))
    alone = objective.targets([labels[i] for i in rows])
    if not _same(cut, alone):
        fail(reg, "Objective.targets is not row-wise: the targets of two labels differ from those rows of a "
                  "whole split's targets (batches are cut from the whole split's)")
    inputs, targets = next(iter(run.batches("train", 4).batches()))
    model = TaskModel(source.backbone, head, task.representation)
    loss = objective.loss(model(inputs), targets)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not torch.isfinite(loss):
        fail(reg, f"Objective.loss must be a finite scalar tensor, got {loss!r}")
    loss.backward()
    if not any(p.grad is not None and torch.any(p.grad != 0) for p in head.parameters()):
        fail(reg, "the loss's gradient does not reach the head's parameters")
    with torch.no_grad():
        predictions = objective.predictions(model(inputs))
    if len(predictions) != len(targets):
        fail(reg, f"Objective.predictions gave {len(predictions)} entries for a batch of {len(targets)}")


def _same(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _check_scores(reg: Registered, task: Task, scores) -> None:
    if not isinstance(scores, dict):
        fail(reg, f"score must return a dict of metrics, got {type(scores).__name__}")
    for metric in task.metrics:
        if metric.name not in scores:
            fail(reg, f"score did not return its metric {metric.name!r}")
        value = scores[metric.name]
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            fail(reg, f"metric {metric.name!r} is {value!r}; expected a finite number or None")
        if (metric.low is not None and value < metric.low) or (metric.high is not None and value > metric.high):
            fail(reg, f"metric {metric.name!r} is {value}, outside its declared range [{metric.low}, {metric.high}]")
    extra = sorted(set(scores) - {metric.name for metric in task.metrics})
    if extra:
        fail(reg, f"score returned metrics it does not declare: {extra}")
