"""Strategy `bitfit` (Ben Zaken et al. 2022): only the bias terms and the new head train.

Bias terms are the backbone parameters named ``bias`` or ``*_bias`` (linear,
convolution and normalisation biases, and split attention biases such as ``q_bias``);
every other backbone parameter stays bitwise unchanged. With `freeze_bn_stats`, all
BatchNorm layers run in eval mode, so their running statistics stay fixed and the
biases are the only backbone state that changes.
"""

from __future__ import annotations

import tlbench
from tlbench.api import FitResult, Strategy
from tlbench.params import Param
from tlbench.training import ENGINE_PARAMS

from .finetuning import ANY_TASK


def is_bias(name: str) -> bool:
    leaf = name.rpartition(".")[2]
    return leaf == "bias" or leaf.endswith("_bias")


class BitFit(Strategy):
    name = "bitfit"
    version = "1"
    description = "train only the backbone's bias terms and a new head"
    requires = ANY_TASK
    params = {
        **ENGINE_PARAMS,
        "freeze_bn_stats": Param(bool, True, "keep every BatchNorm layer's running statistics fixed "
                                             "(those layers run in eval mode)"),
    }

    def fit(self, params: dict, run) -> FitResult:
        from tlbench.training import stat_layers, train_mode_keeping_stats

        from .finetuning import backbone_and_head_groups, finetune, is_layer_mix, new_model, set_trainable

        model = new_model(run)
        set_trainable(model, lambda name, param: name.startswith("head.") or is_bias(name) or is_layer_mix(run, name))
        keep = stat_layers(model.backbone) if params["freeze_bn_stats"] else []
        groups = backbone_and_head_groups(model, params, backbone_label="biases")
        resolved = {"bias_tensors": sum(1 for n, p in model.backbone.named_parameters() if p.requires_grad),
                    "frozen_bn_stat_layers": len(keep)}
        return finetune(run, model, groups, params, resolved,
                        set_train_mode=train_mode_keeping_stats(keep) if keep else None)


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(BitFit())
