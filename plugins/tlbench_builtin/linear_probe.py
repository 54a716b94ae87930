"""Strategy `linear-probe`: a linear classifier on the frozen source's features.

Only the new head trains (L2-regularised multinomial logistic regression, strength
chosen on the validation split); the backbone is never touched, and features come
from the feature cache, so extra seeds and reruns cost little.
"""

from __future__ import annotations

import tlbench
from tlbench.api import FitResult, Strategy
from tlbench.params import Param

DEFAULT_L2 = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)


def probe_head(run, params: dict):
    """Fit the probe on cached features; return the head (nn.Linear) and the fit."""
    import torch

    from .logistic import fit_logistic

    features = {name: run.features(name) for name in ("train", "val")}
    fit = fit_logistic(features["train"], run.split("train").labels, features["val"],
                       run.split("val").labels, run.num_classes, l2_grid=params["l2_grid"],
                       max_iter=params["max_iter"], device=run.device, check=run.check_budget)
    head = run.new_head()
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(fit.weight))
        head.bias.copy_(torch.as_tensor(fit.bias))
    return head, fit


class LinearProbe(Strategy):
    name = "linear-probe"
    version = "1"
    description = "frozen backbone; L2 logistic regression on its features, strength chosen on val"
    frozen_features_only = True
    params = {
        "l2_grid": Param(list, list(DEFAULT_L2), "L2 strengths tried (on standardised features)", items=float),
        "max_iter": Param(int, 200, "L-BFGS iterations per strength", min=1),
    }

    def fit(self, params: dict, run) -> FitResult:
        import numpy as np

        from tlbench.engine import Classifier, count_params

        head, fit = probe_head(run, params)
        for param in run.source.backbone.parameters():
            param.requires_grad_(False)
        logits = {}
        for name in ("train", "val", "test"):
            features = run.features(name)
            logits[name] = features @ fit.weight.T.astype(np.float32) + fit.bias.astype(np.float32)
        model = Classifier(run.source.backbone, head)
        trainable, total = count_params(model)
        info = {"l2": fit.l2, "val_accuracy_by_l2": {str(k): v for k, v in fit.val_accuracy.items()},
                "lbfgs_evaluations": fit.iterations}
        return FitResult(logits=logits, trainable_params=trainable, total_params=total, info=info, model=model)


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(LinearProbe())
