"""Strategy `lp-ft` (Kumar et al. 2022): linear probe, then full fine-tuning from that head.

Phase one is exactly `linear-probe` (L2 logistic regression on cached frozen features,
strength chosen on the validation split); phase two is exactly `full-finetune`, except
that the head starts from the probe instead of a random initialisation, so fine-tuning
does not distort the pretrained features to fit a random head.
"""

from __future__ import annotations

import tlbench
from tlbench.api import FitResult, Requirements, Strategy
from tlbench.training import ENGINE_PARAMS

from .finetuning import BACKBONE_LR_SCALE
from .linear_probe import PROBE_PARAMS, check_probe


class LinearProbeThenFinetune(Strategy):
    name = "lp-ft"
    version = "2"  # 2: its probe, linear-probe 3
    description = "linear probe on frozen features, then fine-tune everything from that head"
    requires = Requirements(tasks=None, linear_head=True)
    params = {
        **ENGINE_PARAMS,
        **BACKBONE_LR_SCALE,
        **{f"probe_{name}": param for name, param in PROBE_PARAMS.items()},
    }

    def check(self, params: dict, env) -> None:
        check_probe(params, prefix="probe_")

    def fit(self, params: dict, run) -> FitResult:
        from .finetuning import backbone_and_head_groups, finetune, learning_rates, new_model, set_trainable
        from .linear_probe import probe_head

        self.check(params, None)
        probe = {name: params[f"probe_{name}"] for name in PROBE_PARAMS}
        head, fit = probe_head(run, probe)
        model = new_model(run, head)
        set_trainable(model, lambda name, param: True)
        groups = backbone_and_head_groups(model, params)
        resolved = {**learning_rates(params), "probe_l2": fit.l2}
        return finetune(run, model, groups, params, resolved, info={"probe": fit.to_json()})


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(LinearProbeThenFinetune())
