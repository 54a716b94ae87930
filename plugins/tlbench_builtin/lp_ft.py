"""Strategy `lp-ft` (Kumar et al. 2022): linear probe, then full fine-tuning from that head.

Phase one is exactly `linear-probe` (L2 logistic regression on cached frozen features,
strength chosen on the validation split); phase two is exactly `full-finetune`, except
that the head starts from the probe instead of a random initialisation, so fine-tuning
does not distort the pretrained features to fit a random head.
"""

from __future__ import annotations

import tlbench
from tlbench.api import FitResult, Strategy
from tlbench.params import Param
from tlbench.recipe import ENGINE_PARAMS

from .linear_probe import PROBE_PARAMS


class LinearProbeThenFinetune(Strategy):
    name = "lp-ft"
    version = "1"
    description = "linear probe on frozen features, then fine-tune everything from that head"
    params = {
        **ENGINE_PARAMS,
        "backbone_lr_scale": Param(float, 1.0, "backbone learning rate = lr × this (the head gets lr)", min=0),
        **{f"probe_{name}": param for name, param in PROBE_PARAMS.items()},
    }

    def fit(self, params: dict, run) -> FitResult:
        from tlbench.engine import param_groups

        from .finetuning import finetune, new_classifier, set_trainable
        from .linear_probe import probe_head

        probe = {name: params[f"probe_{name}"] for name in PROBE_PARAMS}
        head, fit = probe_head(run, probe)
        model = new_classifier(run, head)
        set_trainable(model, lambda name, param: True)
        backbone_lr = params["lr"] * params["backbone_lr_scale"]
        groups = param_groups(model.backbone.named_parameters(), backbone_lr, params["weight_decay"], "backbone")
        groups += param_groups(model.head.named_parameters(), params["lr"], params["weight_decay"], "head")
        resolved = {"backbone_lr": backbone_lr, "head_lr": params["lr"], "probe_l2": fit.l2}
        return finetune(run, model, groups, params, resolved, info={"probe": fit.to_json()})


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(LinearProbeThenFinetune())
