"""Strategies `full-finetune` and `scratch`: every parameter trains.

`full-finetune` starts from the pretrained source with a new linear head, optionally
with a smaller learning rate for the backbone than for the head. `scratch` is the same
recipe from a random initialisation of the same architecture: the from-scratch baseline.
"""

from __future__ import annotations

import tlbench
from tlbench.api import FitResult, Strategy
from tlbench.params import Param
from tlbench.recipe import ENGINE_PARAMS


class FullFinetune(Strategy):
    name = "full-finetune"
    version = "1"
    description = "fine-tune the whole pretrained model with a new head"
    baseline_recipe = True
    params = {
        **ENGINE_PARAMS,
        "backbone_lr_scale": Param(float, 1.0, "backbone learning rate = lr × this (the head gets lr)", min=0),
    }

    def fit(self, params: dict, run) -> FitResult:
        from tlbench.engine import param_groups

        from .finetuning import finetune, new_classifier, set_trainable

        model = new_classifier(run)
        set_trainable(model, lambda name, param: True)
        backbone_lr = params["lr"] * params["backbone_lr_scale"]
        groups = param_groups(model.backbone.named_parameters(), backbone_lr, params["weight_decay"], "backbone")
        groups += param_groups(model.head.named_parameters(), params["lr"], params["weight_decay"], "head")
        return finetune(run, model, groups, params, {"backbone_lr": backbone_lr, "head_lr": params["lr"]})


class Scratch(FullFinetune):
    name = "scratch"
    version = "1"
    description = "the full fine-tuning recipe from a random initialisation (the baseline)"
    init = "random"


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(FullFinetune())
    register(Scratch())
