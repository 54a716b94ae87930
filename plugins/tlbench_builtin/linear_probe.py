"""Strategy `linear-probe`: a linear classifier on the frozen source's features.

Only a new head trains: L2-regularised multinomial logistic regression on the frozen
features (scikit-learn's objective on standardised features), its strength chosen on
the validation split, solved on the run's device. The backbone is never touched and
its features come from the feature cache, so extra seeds, strategies and reruns of a
suite do not extract them again.
"""

from __future__ import annotations

import math

import tlbench
from tlbench.api import FitResult, Strategy
from tlbench.errors import ParamError
from tlbench.params import Param

DEFAULT_L2 = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)

PROBE_PARAMS = {
    "l2_grid": Param(list, list(DEFAULT_L2), "L2 strengths tried, strongest first; the best on val wins "
                                             "(l2 = 1 / (C · n_train) in scikit-learn's terms)", items=float),
    "max_iter": Param(int, 200, "L-BFGS iterations per strength", min=1),
    "tol": Param(float, 1e-4, "stop when the largest gradient component is below this (> 0)", min=0),
}


def _positive(value) -> bool:
    return math.isfinite(value) and value > 0


def check_probe(params: dict, prefix: str = "") -> None:
    """Reject what the schema lets through but the solver cannot use: an empty L2 grid,
    strengths or a tolerance that are not positive and finite. `prefix` is how a
    strategy that embeds the probe names its parameters (lp-ft: ``probe_``)."""
    grid, tol = params[f"{prefix}l2_grid"], params[f"{prefix}tol"]
    if not grid:
        raise ParamError(f"{prefix}l2_grid: expected a non-empty list of positive numbers, got []")
    for i, l2 in enumerate(grid):
        if not _positive(l2):
            raise ParamError(f"{prefix}l2_grid[{i}]: expected a positive number (an L2 strength), got {l2!r}")
    if not _positive(tol):
        raise ParamError(f"{prefix}tol: expected a positive number, got {tol!r}")


def probe_head(run, params: dict):
    """Fit the probe on the frozen features; return the head (an nn.Linear) and the fit."""
    import torch

    from .logistic import fit_logistic

    fit = fit_logistic(run.features("train"), run.split("train").labels, run.features("val"),
                       run.split("val").labels, run.num_classes, l2_grid=params["l2_grid"],
                       max_iter=params["max_iter"], tol=params["tol"], device=run.device,
                       check=run.check_budget)
    head = run.new_head()
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(fit.weight))
        head.bias.copy_(torch.as_tensor(fit.bias))
    return head, fit


class LinearProbe(Strategy):
    name = "linear-probe"
    version = "2"
    description = "frozen backbone; L2 logistic regression on its features, strength chosen on val"
    frozen_features_only = True
    params = dict(PROBE_PARAMS)

    def check(self, params: dict, env) -> None:
        check_probe(params)

    def fit(self, params: dict, run) -> FitResult:
        import numpy as np

        from tlbench.run.engine import Classifier, count_params

        self.check(params, None)
        for param in run.source.backbone.parameters():
            param.requires_grad_(False)
        head, fit = probe_head(run, params)
        weight, bias = fit.weight.T.astype(np.float32), fit.bias.astype(np.float32)
        logits = {name: run.features(name) @ weight + bias for name in ("train", "val", "test")}
        model = Classifier(run.source.backbone, head)
        trainable, total = count_params(model)
        info = {"resolved": {"l2": fit.l2}, "trainable": {"backbone": 0, "head": trainable},
                "probe": fit.to_json()}
        return FitResult(logits=logits, trainable_params=trainable, total_params=total, info=info, model=model)


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(LinearProbe())
