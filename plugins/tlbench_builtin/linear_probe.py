"""Strategy `linear-probe`: a linear head on the frozen source's features.

Only a new head trains, fitted directly to the frozen features by the solver of the
task's loss (`linear_solvers`): L2-regularised multinomial logistic regression for
classification (scikit-learn's objective on standardised features), independent binary
logistic regressions for multi-label tasks, ridge regression of the standardised
targets for regression. The strength is chosen on the validation split by the task's
headline metric. The backbone is never touched and its features come from the feature
cache, so extra seeds, strategies and reruns of a suite do not extract them again.
Tasks without a closed-form linear head (`Task.linear_loss` None) are left out of the
matrix.
"""

from __future__ import annotations

import math

import tlbench
from tlbench.api import FitResult, Requirements, Strategy
from tlbench.errors import ParamError
from tlbench.params import Param

DEFAULT_L2 = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
DEFAULT_RIDGE_L2 = (1e3, 3e2, 1e2, 3e1, 1e1, 3.0, 1.0, 3e-1, 1e-1, 3e-2, 1e-2)
"""Ridge needs far stronger strengths than logistic heads: with standardised features the
covariance's non-zero eigenvalues average d / n when features outnumber examples, so
strengths below 1 leave a few-shot ridge unregularised (an interpolator)."""

PROBE_PARAMS = {
    "l2_grid": Param(list, list(DEFAULT_L2), "L2 strengths tried for logistic heads (classification, "
                                             "multi-label), strongest first; the best on val wins "
                                             "(l2 = 1 / (C · n_train) in scikit-learn's terms)", items=float),
    "ridge_l2_grid": Param(list, list(DEFAULT_RIDGE_L2), "L2 strengths tried for squared-error heads "
                                                         "(regression), strongest first (l2 = alpha / n_train "
                                                         "in terms of scikit-learn's Ridge)", items=float,
                           omit_default=True),
    "max_iter": Param(int, 200, "L-BFGS iterations per strength", min=1),
    "tol": Param(float, 1e-4, "stop when the largest gradient component is below this (> 0)", min=0),
}


def _positive(value) -> bool:
    return math.isfinite(value) and value > 0


def check_probe(params: dict, prefix: str = "") -> None:
    """Reject what the schema lets through but the solver cannot use: an empty L2 grid,
    strengths or a tolerance that are not positive and finite. `prefix` is how a
    strategy that embeds the probe names its parameters (lp-ft: ``probe_``)."""
    for key in ("l2_grid", "ridge_l2_grid"):
        grid = params[f"{prefix}{key}"]
        if not grid:
            raise ParamError(f"{prefix}{key}: expected a non-empty list of positive numbers, got []")
        for i, l2 in enumerate(grid):
            if not _positive(l2):
                raise ParamError(f"{prefix}{key}[{i}]: expected a positive number (an L2 strength), got {l2!r}")
    tol = params[f"{prefix}tol"]
    if not _positive(tol):
        raise ParamError(f"{prefix}tol: expected a positive number, got {tol!r}")


def probe_head(run, params: dict, features=None):
    """Fit the probe on the frozen features (`features(split)`, by default the source's
    pooled ones); return the head (a linear layer) and the fit."""
    import numpy as np
    import torch

    from .linear_solvers import fit_probe

    features = features or run.features
    loss = run.task.linear_loss
    objective = run.objective
    fit = fit_probe(features("train"), objective.targets(run.split("train").labels).numpy(),
                    features("val"), _val_score(run, loss), loss=loss,
                    l2_grid=params["ridge_l2_grid" if loss == "squared" else "l2_grid"],
                    num_classes=run.num_classes, max_iter=params["max_iter"], tol=params["tol"],
                    device=run.device, check=run.check_budget)
    head = run.new_head()
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(fit.weight, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(np.reshape(fit.bias, -1), dtype=head.bias.dtype))
    return head, fit


def _val_score(run, loss: str):
    """The headline metric of validation predictions from the probe's raw linear outputs,
    signed so that higher is better. Class scores are scored as they are (float64), so a
    near-tie between two logits is decided at the solver's precision."""
    import numpy as np
    import torch

    if run.split("val").labels is None or not len(run.split("val")):
        return None
    sign = 1.0 if run.task.metric(run.task.headline).higher_is_better else -1.0

    def score(outputs: np.ndarray) -> float | None:
        if loss == "softmax":
            predictions = outputs
        elif loss == "sigmoid":
            predictions = 1.0 / (1.0 + np.exp(-outputs))
        else:
            predictions = run.objective.predictions(torch.from_numpy(outputs))
        value = run.headline("val", predictions)
        return None if value is None else sign * value

    return score


def probe_selection(run) -> dict:
    """What chose the probe's strength: the headline on the validation split (or, without
    one, nothing: the strongest strength is kept)."""
    headline = run.task.metric(run.task.headline)
    if run.split("val").labels is None or not len(run.split("val")):
        return {"rule": "strongest", "reads": []}
    return {"rule": "val", "metric": f"val_{headline.name}", "higher_is_better": headline.higher_is_better,
            "reads": ["target:val:labels"], "chooses": "l2"}


class LinearProbe(Strategy):
    name = "linear-probe"
    version = "4"  # 4: learns the layer mix of a source that mixes its layers; 3: numpy/OpenBLAS solver
    description = ("frozen backbone; a linear head fitted in closed form (logistic or ridge), strength chosen on "
                   "val; on a source that mixes its layers, the mix learnt first (SUPERB)")
    frozen_features_only = True
    requires = Requirements(tasks=None, linear_head=True)
    params = dict(PROBE_PARAMS)

    def check(self, params: dict, env) -> None:
        check_probe(params)

    def fit(self, params: dict, run) -> FitResult:
        import numpy as np
        import torch

        from tlbench.training import TaskModel, count_params

        self.check(params, None)
        for param in run.source.backbone.parameters():
            param.requires_grad_(False)
        features, mix_info = run.features, None
        if run.source.mixed_layers:  # SUPERB's weighted sum: learn the mix first, backbone frozen
            from .layer_mix import learn_layer_mix, mixed

            grid = params["ridge_l2_grid" if run.task.linear_loss == "squared" else "l2_grid"]
            mix, mix_info = learn_layer_mix(run, min(grid))
            features = lambda name: mixed(run.layer_features(name), mix)  # noqa: E731
        head, fit = probe_head(run, params, features)
        weight, bias = fit.weight.T.astype(np.float32), fit.bias.astype(np.float32)
        predictions = {name: run.objective.predictions(torch.from_numpy(features(name) @ weight + bias))
                       for name in ("train", "val", "test")}
        if mix_info is not None:  # the model pools with the mix it learnt; eval mode records it
            run.source.backbone.set_layer_mix(mix)
            run.source.backbone.eval()
        model = TaskModel(run.source.backbone, head, run.task.representation)
        trainable, total = count_params(model)
        if mix_info is not None:
            trainable += run.source.mixed_layers  # the mix was trained
        info = {"resolved": {"l2": fit.l2}, "trainable": {"backbone": 0, "head": trainable},
                "probe": fit.to_json()}
        if mix_info is not None:
            info["layer_mix"] = {"weights": [round(w, 6) for w in mix], **mix_info}
        return FitResult(predictions=predictions, trainable_params=trainable, total_params=total, info=info,
                         model=model, selection=probe_selection(run))


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(LinearProbe())
