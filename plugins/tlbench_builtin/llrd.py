"""Strategy `llrd`: full fine-tuning with layer-wise learning-rate decay.

With L layer groups (0 = stem ... L-1 = top block), group i trains at
``lr × decay^(L - i)`` and the new head at ``lr``: each group's rate is `decay` times
the rate of the group above it (the scheme of BEiT and MAE fine-tuning). The groups
come from the source, so the same strategy serves timm and transformers models; the
engine's schedule scales every group's rate by the same factor, so the ratios hold at
every step.
"""

from __future__ import annotations

import tlbench
from tlbench.api import FitResult, Strategy
from tlbench.params import Param
from tlbench.training import ENGINE_PARAMS

from .finetuning import ANY_TASK


def llrd_groups(model, index: dict[str, int], n_groups: int, lr: float, decay: float,
                weight_decay: float) -> list[dict]:
    """Optimiser groups: one rate per layer group (split by weight decay), then the head."""
    from tlbench.training import param_groups

    named = list(model.backbone.named_parameters())
    groups = []
    for i in range(n_groups):
        members = [(name, param) for name, param in named if index[name] == i]
        groups += param_groups(members, lr * decay ** (n_groups - i), weight_decay, f"layer{i}")
    groups += param_groups(model.head.named_parameters(), lr, weight_decay, "head")
    return groups


class LayerwiseLRDecay(Strategy):
    name = "llrd"
    version = "1"
    description = "fine-tune everything, the learning rate decaying layer group by layer group"
    requires = ANY_TASK
    params = {
        **ENGINE_PARAMS,
        "decay": Param(float, 0.75, "learning-rate ratio between a layer group and the one above it "
                                    "(the head gets lr)", min=0, max=1),
    }

    def fit(self, params: dict, run) -> FitResult:
        from .finetuning import finetune, layer_index, new_model, set_trainable

        index = layer_index(run)
        n_groups = len(run.source.layer_groups)
        model = new_model(run)
        set_trainable(model, lambda name, param: True)
        groups = llrd_groups(model, index, n_groups, params["lr"], params["decay"], params["weight_decay"])
        resolved = {"layer_groups": n_groups, "head_lr": params["lr"],
                    "layer_lrs": [params["lr"] * params["decay"] ** (n_groups - i) for i in range(n_groups)]}
        return finetune(run, model, groups, params, resolved)


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(LayerwiseLRDecay())
