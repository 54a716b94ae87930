"""Strategy `mcc`: minimum class confusion (Jin et al. 2020), no discriminator.

On each unlabelled batch of B examples, the temperature-scaled predictions
Ŷ = softmax(Z / T) give the class confusion matrix C = Ŷᵀ W Ŷ, where the diagonal W
weights confident examples more: w_i = B (1 + exp(−H(ŷ_i))) / Σ_j (1 + exp(−H(ŷ_j)))
(no gradient through the weights). Each row of C is divided by its sum (the paper's
category normalisation, C̃_jj' = C_jj' / Σ_j'' C_jj''), and the loss is the confusion
between different classes, averaged over the K classes:

    loss = CE(labelled) + trade_off · (Σ_jj' C̃_jj' − Σ_j C̃_jj) / K

Row or column normalisation: TLlib divides C by `C.sum(dim=1)` through a broadcast,
which divides each column j by the sum of row j. Since C = Σ_i w_i ŷ_i ŷ_iᵀ is
symmetric, its row sums are its column sums, and both normalisations give the same
loss — the same value and the same gradient — up to floating-point rounding: the
off-diagonal sum is K − Σ_j C_jj / s_j either way. This module implements the paper's
row normalisation, which also reads as "each class's row is a distribution over the
classes it is confused with". T = 2.5 and trade_off = 1 are TLlib's defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tlbench
from tlbench.params import Param

from .adaptation import ADAPTATION_PARAMS, AdaptationStrategy, Method, requirements

if TYPE_CHECKING:  # pragma: no cover
    import torch


class MCC(AdaptationStrategy):
    name = "mcc"
    version = "1"
    description = "minimum class confusion on the unlabelled domain's predictions (MCC; no discriminator)"
    requires = requirements(("classification",))
    params = {**ADAPTATION_PARAMS,
              "trade_off": Param(float, 1.0, "weight of the class-confusion loss", min=0),
              "temperature": Param(float, 2.5, "temperature T of the predictions the confusion is computed on",
                                   min=1e-6)}

    def method(self, params: dict, run, model) -> Method:
        from .adaptation import Means, unlabelled_forward

        means = Means()

        def hook(step):
            _, outputs = unlabelled_forward(step, params)
            loss = class_confusion_loss(outputs.float(), params["temperature"])
            means.add(confusion_loss=loss)
            return params["trade_off"] * loss

        return Method(loss_hook=hook, epoch_metrics=means.pop,
                      settings={"family": "self-training", "trade_off": params["trade_off"],
                                "temperature": params["temperature"],
                                "normalisation": "rows"})


def class_confusion(logits: "torch.Tensor", temperature: float) -> "torch.Tensor":
    """The row-normalised, entropy-weighted class confusion matrix C̃ (K × K) of a batch."""
    from .adaptation import entropy

    probabilities = (logits / temperature).softmax(dim=1)
    weights = 1.0 + (-entropy(probabilities).detach()).exp()
    weights = len(logits) * weights / weights.sum()
    confusion = (probabilities * weights[:, None]).T @ probabilities
    return confusion / confusion.sum(dim=1, keepdim=True)


def class_confusion_loss(logits: "torch.Tensor", temperature: float) -> "torch.Tensor":
    """(Σ C̃ − tr C̃) / K: the confusion between different classes."""
    confusion = class_confusion(logits, temperature)
    return (confusion.sum() - confusion.trace()) / confusion.shape[0]


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(MCC())
