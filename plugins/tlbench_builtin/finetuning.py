"""What the fine-tuning strategies share: the source with a new head for the target's
task, which of its parameters train, the source's layer groups by parameter, optimiser
groups for the backbone and the head (and the `backbone_lr_scale` parameter that sets
their ratio), and one call from optimiser groups to a `FitResult` that records what
trained and how.

Every fine-tuning strategy trains through the target's task (its head, loss and
predictions), so each one serves every task type whose head the source can feed.

Importing this module stays light (strategies take `BACKBONE_LR_SCALE` into their
schemas at registration); torch and the engine are imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from tlbench.api import Requirements
from tlbench.params import Param

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from tlbench.api import FitResult
    from tlbench.training import Step, TaskModel

BACKBONE_LR_SCALE = {
    "backbone_lr_scale": Param(float, 1.0, "backbone learning rate = lr × this (the head gets lr)", min=0),
}
"""The parameter of strategies that train the backbone slower (or faster) than the head."""

ANY_TASK = Requirements(tasks=None)
"""What the fine-tuning strategies require: nothing but a task whose head the source can feed."""


def new_model(run, head: nn.Module | None = None) -> TaskModel:
    """The source's backbone with `head` (a fresh head for the target's task by default)."""
    from tlbench.training import TaskModel

    return TaskModel(run.source.backbone, head if head is not None else run.new_head(), run.task.representation)


def set_trainable(model: nn.Module, trains: Callable[[str, nn.Parameter], bool]) -> None:
    """``requires_grad`` of every parameter of `model` from ``trains(name, param)``."""
    for name, param in model.named_parameters():
        param.requires_grad_(bool(trains(name, param)))


def is_layer_mix(run, name: str) -> bool:
    """Whether `name` (of a `TaskModel`) is the layer mix of a source that mixes its layers
    (`SourceModel.mixed_layers`): it belongs with the head (SUPERB trains it with the
    downstream model), so strategies that train a few parameters train it too."""
    return bool(run.source.mixed_layers) and name == "backbone.layer_weights"


def learning_rates(params: dict) -> dict[str, float]:
    """Peak learning rates: the head's is `lr`; the backbone's is ``lr × backbone_lr_scale``
    for strategies that take `BACKBONE_LR_SCALE`, else `lr` too."""
    return {"backbone_lr": params["lr"] * params.get("backbone_lr_scale", 1.0), "head_lr": params["lr"]}


def backbone_and_head_groups(model: TaskModel, params: dict, backbone_label: str = "backbone") -> list[dict]:
    """Optimiser groups of the trainable backbone parameters (labelled `backbone_label`)
    and of the head's, at their `learning_rates`, each split by weight decay."""
    from tlbench.training import param_groups

    rates = learning_rates(params)
    groups = param_groups(model.backbone.named_parameters(), rates["backbone_lr"], params["weight_decay"],
                          backbone_label)
    groups += param_groups(model.head.named_parameters(), rates["head_lr"], params["weight_decay"], "head")
    return groups


def layer_index(run) -> dict[str, int]:
    """Backbone parameter name -> index of its layer group (0 = stem, last = top block)."""
    groups = run.source.layer_groups
    names = {name for name, _ in run.source.backbone.named_parameters()}
    if not groups:
        raise ValueError("the source declares no layer groups")
    index: dict[str, int] = {}
    for i, group in enumerate(groups):
        for name in group:
            if name not in names:
                raise ValueError(f"source layer group {i} names {name!r}, which the backbone does not have")
            if name in index:
                raise ValueError(f"source layer groups {index[name]} and {i} both hold {name!r}")
            index[name] = i
    missing = sorted(names - set(index))
    if missing:
        raise ValueError(f"source layer groups miss {len(missing)} backbone parameters, e.g. {missing[0]!r}")
    return index


def trainable_by_part(model: TaskModel) -> dict[str, int]:
    """Trainable parameter counts of the backbone and of the head."""
    from tlbench.training import count_params

    return {"backbone": count_params(model.backbone)[0], "head": count_params(model.head)[0]}


def finetune(run, model: TaskModel, groups: list[dict], params: dict, resolved: dict, *,
             loss_hook: Callable[[Step], object] | None = None,
             set_train_mode: Callable[[nn.Module], None] | None = None,
             epoch_metrics: Callable[[], dict] | None = None,
             info: dict | None = None) -> FitResult:
    """Train `model` on `groups` with the engine, then evaluate every split.

    The record's strategy info holds `resolved` (what the strategy decided from its
    parameters and the source), the trainable counts by part, and the training log.
    """
    from tlbench.training import evaluate, train

    outcome = train(run, model, groups, params, loss_hook=loss_hook, set_train_mode=set_train_mode,
                    epoch_metrics=epoch_metrics)
    details = {"resolved": resolved, "trainable": trainable_by_part(model), **(info or {}),
               "training": outcome.to_json()}
    result = evaluate(run, model, params, details)
    result.selection = outcome.selection if params["select"] == "best_val" else {"rule": "last", "reads": []}
    return result
