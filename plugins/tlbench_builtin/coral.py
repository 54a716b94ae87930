"""Strategy `coral`: Deep CORAL (Sun & Saenko 2016), the non-adversarial alignment baseline.

Aligns the second-order statistics of the two domains' pooled features: on each step,
the covariance matrices of the labelled batch's features (C_s) and of the unlabelled
batch's (C_t), each C = (XᵀX − (1ᵀX)ᵀ(1ᵀX) / n) / (n − 1) for a batch X of n rows and d
features, are pulled together:

    loss = CE(labelled) + trade_off · ‖C_s − C_t‖²_F / (4 d²)

(the paper's loss: covariances only, no mean term — TLlib's CORAL adds the squared
difference of the means and averages instead of dividing by 4d²).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tlbench
from tlbench.params import Param

from .adaptation import ADAPTATION_PARAMS, POOLED_TASKS, AdaptationStrategy, Method, requirements

if TYPE_CHECKING:  # pragma: no cover
    import torch


class CORAL(AdaptationStrategy):
    name = "coral"
    version = "1"
    description = "Deep CORAL: align the covariances of the two domains' features (non-adversarial baseline)"
    requires = requirements(POOLED_TASKS)
    params = {**ADAPTATION_PARAMS,
              "trade_off": Param(float, 1.0, "weight of the CORAL loss", min=0)}

    def method(self, params: dict, run, model) -> Method:
        from .adaptation import Means, pooled, unlabelled_forward

        means = Means()

        def hook(step):
            target = pooled(unlabelled_forward(step, params)[0], "coral")
            loss = coral_loss(pooled(step.features, "coral"), target)
            means.add(coral_loss=loss)
            return params["trade_off"] * loss

        return Method(loss_hook=hook, epoch_metrics=means.pop,
                      settings={"family": "alignment", "trade_off": params["trade_off"]})


def covariance(features: "torch.Tensor") -> "torch.Tensor":
    """The unbiased covariance (d × d) of a batch of feature rows."""
    n = len(features)
    total = features.sum(dim=0, keepdim=True)
    return (features.T @ features - total.T @ total / n) / (n - 1)


def coral_loss(source: "torch.Tensor", target: "torch.Tensor") -> "torch.Tensor":
    """‖C_s − C_t‖²_F / (4 d²)."""
    d = source.shape[1]
    if len(source) < 2 or len(target) < 2:  # no covariance from one example
        return source.sum() * 0.0
    difference = covariance(source) - covariance(target)
    return (difference * difference).sum() / (4 * d * d)


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(CORAL())
