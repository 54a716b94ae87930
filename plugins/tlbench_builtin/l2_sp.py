"""Strategy `l2-sp` (Li, Grandvalet and Davoine 2018): fine-tune everything, pulled
towards the pretrained weights instead of towards zero.

The loss adds ``α/2 ‖w − w₀‖²`` over the backbone's parameters (w₀: their pretrained
values) and ``β/2 ‖w‖²`` over the new head's. The penalty replaces weight decay, so
this strategy's `weight_decay` defaults to 0.
"""

from __future__ import annotations

import tlbench
from tlbench.api import FitResult, Strategy
from tlbench.params import Param
from tlbench.training import engine_params

from .finetuning import ANY_TASK


class L2SPPenalty:
    """``α/2 Σ‖w − w₀‖²`` over the anchored parameters plus ``β/2 Σ‖w‖²`` over the head's.

    w₀ is copied when the penalty is made: make it before training, on the device the
    parameters train on.
    """

    def __init__(self, anchored, head, alpha: float, beta: float):
        import torch

        self.anchors = [(p, p.detach().clone()) for p in anchored]
        self.head = list(head)
        self.alpha, self.beta = alpha, beta
        self._zero = torch.zeros((), device=self.anchors[0][0].device if self.anchors else "cpu")

    def distance(self):
        """Σ‖w − w₀‖² over the anchored parameters (differentiable)."""
        return sum((((p - p0) ** 2).sum() for p, p0 in self.anchors), self._zero)

    def head_norm(self):
        """Σ‖w‖² over the head's parameters (differentiable)."""
        return sum(((p ** 2).sum() for p in self.head), self._zero)

    def __call__(self):
        return 0.5 * self.alpha * self.distance() + 0.5 * self.beta * self.head_norm()

    def terms(self) -> dict:
        """The two terms' current values, for the training log."""
        import torch

        with torch.no_grad():
            return {"sp_penalty": float(0.5 * self.alpha * self.distance()),
                    "head_penalty": float(0.5 * self.beta * self.head_norm())}


class L2SP(Strategy):
    name = "l2-sp"
    version = "1"
    description = "fine-tune everything with an L2 penalty towards the pretrained weights"
    requires = ANY_TASK
    params = {
        **engine_params(weight_decay=0.0),
        "alpha": Param(float, 0.1, "α: strength of α/2‖w − w₀‖² on the backbone's pretrained weights", min=0),
        "beta": Param(float, 0.01, "β: strength of β/2‖w‖² on the new head", min=0),
    }

    def fit(self, params: dict, run) -> FitResult:
        from .finetuning import backbone_and_head_groups, finetune, new_model, set_trainable

        model = new_model(run)
        set_trainable(model, lambda name, param: True)
        model.to(run.device)
        penalty = L2SPPenalty(model.backbone.parameters(), model.head.parameters(), params["alpha"], params["beta"])
        start = penalty.terms()
        groups = backbone_and_head_groups(model, params)
        resolved = {"alpha": params["alpha"], "beta": params["beta"], "anchored_tensors": len(penalty.anchors)}
        fit = finetune(run, model, groups, params, resolved, loss_hook=lambda step: penalty(),
                       epoch_metrics=penalty.terms)
        fit.info["penalty"] = {"start": start, "end": penalty.terms()}
        return fit


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(L2SP())
