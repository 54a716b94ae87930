"""What the fine-tuning strategies share: a classifier over the source with a new head,
which of its parameters train, the source's layer groups by parameter, and one call
from optimiser groups to a `FitResult` that records what trained and how.

Imported only inside `fit`, so torch stays out of plugin registration.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from tlbench.api import FitResult
from tlbench.engine import Classifier, count_params, evaluate, train


def new_classifier(run, head: nn.Module | None = None) -> Classifier:
    """The source's backbone with `head` (a fresh linear head by default)."""
    return Classifier(run.source.backbone, head if head is not None else run.new_head())


def set_trainable(model: nn.Module, trains: Callable[[str, nn.Parameter], bool]) -> None:
    """``requires_grad`` of every parameter of `model` from ``trains(name, param)``."""
    for name, param in model.named_parameters():
        param.requires_grad_(bool(trains(name, param)))


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


def trainable_by_part(model: Classifier) -> dict[str, int]:
    """Trainable parameter counts of the backbone and of the head."""
    return {"backbone": count_params(model.backbone)[0], "head": count_params(model.head)[0]}


def finetune(run, model: Classifier, groups: list[dict], params: dict, resolved: dict, *,
             extra_loss: Callable[[], torch.Tensor] | None = None,
             set_train_mode: Callable[[nn.Module], None] | None = None,
             epoch_metrics: Callable[[], dict] | None = None,
             info: dict | None = None) -> FitResult:
    """Train `model` on `groups` with the engine, then evaluate every split.

    The record's strategy info holds `resolved` (what the strategy decided from its
    parameters and the source), the trainable counts by part, and the training log.
    """
    outcome = train(run, model, groups, params, extra_loss=extra_loss, set_train_mode=set_train_mode,
                    epoch_metrics=epoch_metrics)
    details = {"resolved": resolved, "trainable": trainable_by_part(model), **(info or {}),
               "training": outcome.to_json()}
    return evaluate(run, model, params, details)
