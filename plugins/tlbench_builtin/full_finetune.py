"""Strategies `full-finetune` and `scratch`: every parameter trains.

`full-finetune` starts from the pretrained source, optionally with a smaller learning
rate for the backbone than for the new head. `scratch` is the same recipe from a
random initialisation of the same architecture: the from-scratch baseline.
"""

from __future__ import annotations

import tlbench
from tlbench.api import FitResult, Strategy
from tlbench.recipe import ENGINE_PARAMS
from tlbench.params import Param


class FullFinetune(Strategy):
    name = "full-finetune"
    version = "1"
    description = "fine-tune the whole pretrained model with a new head"
    baseline_recipe = True
    params = {
        **ENGINE_PARAMS,
        "backbone_lr_scale": Param(float, 1.0, "backbone learning rate = lr × this (head gets lr)", min=0),
    }

    def fit(self, params: dict, run) -> FitResult:
        from tlbench.engine import Classifier, evaluate, param_groups, train

        model = Classifier(run.source.backbone, run.new_head())
        for param in model.parameters():
            param.requires_grad_(True)
        groups = param_groups(model.backbone.named_parameters(), params["lr"] * params["backbone_lr_scale"],
                              params["weight_decay"], "backbone")
        groups += param_groups(model.head.named_parameters(), params["lr"], params["weight_decay"], "head")
        outcome = train(run, model, groups, params)
        return evaluate(run, model, params, {"training": outcome.to_json()})


class Scratch(FullFinetune):
    name = "scratch"
    version = "1"
    description = "the full fine-tuning recipe from a random initialisation (the baseline)"
    init = "random"


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(FullFinetune())
    register(Scratch())
