"""Strategies `full-finetune` and `scratch`: every parameter trains.

`full-finetune` starts from the pretrained source with a new linear head, optionally
with a smaller learning rate for the backbone than for the head. `scratch` is the same
recipe from a random initialisation of the same architecture: the from-scratch baseline.
"""

from __future__ import annotations

import tlbench
from tlbench.api import FitResult, Strategy
from tlbench.training import ENGINE_PARAMS

from .finetuning import ANY_TASK, BACKBONE_LR_SCALE


class FullFinetune(Strategy):
    name = "full-finetune"
    version = "1"
    description = "fine-tune the whole pretrained model with a new head"
    requires = ANY_TASK
    baseline_recipe = True
    params = {**ENGINE_PARAMS, **BACKBONE_LR_SCALE}

    def fit(self, params: dict, run) -> FitResult:
        from .finetuning import backbone_and_head_groups, finetune, learning_rates, new_model, set_trainable

        model = new_model(run)
        set_trainable(model, lambda name, param: True)
        groups = backbone_and_head_groups(model, params)
        return finetune(run, model, groups, params, learning_rates(params))


class Scratch(FullFinetune):
    name = "scratch"
    version = "1"
    description = "the full fine-tuning recipe from a random initialisation (the baseline)"
    requires = ANY_TASK
    init = "random"


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(FullFinetune())
    register(Scratch())
