"""How the domain-adaptation strategies choose their checkpoint: the `selection` rules.

An unsupervised adaptation has no labelled validation data from the domain it is scored
on, so which epoch to keep is itself a method, and its choice can decide a comparison.
Every rule is evaluated after every epoch by the engine; the record's `selection` says
which rule chose, by which score, and what it read ('role:split:labels' when it read
labels, 'role:split' for examples alone):

- `source-val` (the default): the task's headline on the labelled domain's val split,
  in its direction; reads labelled:val:labels.
- `dev`: the importance-weighted validation risk of You et al. 2019 (lower is better);
  reads labelled:train, unlabelled:train, labelled:val:labels.
- `snd`: the soft neighbourhood density of Saito et al. 2021 of the unlabelled training
  predictions (higher is better); reads unlabelled:train.
- `last`: no score, the last epoch is kept; reads nothing.
- `oracle`: the headline on the unlabelled domain's val split, in its direction; reads
  unlabelled:val:labels.

`oracle` reads labels an unsupervised adaptation does not have: the strategy asks for
them openly (`Strategy.reveals`), the worker hands over that one split's labels (never
a test split's), and the record says so. It is an upper bound on what selection can
give, never a result of the method; reports keep it apart.

DEV. A domain classifier (L2-regularised logistic regression on standardised
features of the model being scored) separates the labelled domain's training examples
from the unlabelled domain's; its odds give density ratios w(x) = p_t(x) / p_s(x) =
(n_s / n_t) · P(t | x) / P(s | x) for the labelled validation examples, whose
per-example losses ℓ then estimate the target-domain risk. The control-variate form
of the paper: L_i = w_i ℓ_i, η = −Cov(L, w) / Var(w), DEV = mean(L) + η · mean(w) − η
(the weights' mean is 1 in expectation, so the control variate removes the variance
their sampling error adds).

SND. The unlabelled training examples' softmax predictions, L2-normalised, give cosine
similarities; each row, without the example itself, divided by the temperature
(0.05, the paper's) and soft-maxed, is a distribution over neighbours; SND is the mean
entropy of those distributions. High density (many close neighbours, a clustered
prediction space) is better.

Importing this module stays light; torch and numpy are imported inside the functions.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tlbench.errors import ParamError
from tlbench.params import Param

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

RULES = ("source-val", "dev", "snd", "last", "oracle")

SELECTION_PARAMS = {
    "selection": Param(str, "source-val", "checkpoint selection: source-val (labelled domain's val labels), dev "
                                          "(importance-weighted validation), snd (soft neighbourhood density), "
                                          "last, or oracle (the unlabelled domain's val labels: an upper bound)",
                       choices=RULES),
    "dev_l2": Param(float, 1e-2, "selection dev: L2 strength of its domain classifier (logistic regression on "
                                 "standardised features; mean cross-entropy + l2/2 |w|^2)", min=1e-8),
    "snd_temperature": Param(float, 0.05, "selection snd: temperature of the neighbour softmax", min=1e-6),
}
"""The parameters every adaptation strategy takes for its selection."""


def reveals(params: dict) -> tuple[str, ...]:
    """The withheld labels a rule asks for: the unlabelled domain's val labels for `oracle`."""
    return ("unlabelled:val",) if params["selection"] == "oracle" else ()


def check(params: dict) -> None:
    if params["selection"] == "last" and params.get("patience"):
        raise ParamError("patience: selection 'last' scores no epoch, so there is nothing to be patient about; "
                         "leave patience unset")


def selection_rule(params: dict, labelled, unlabelled, objective):
    """The engine's `Selection` for `params["selection"]` (None when the rule has no score
    to give: `last`, or `source-val` without a labelled val split). `objective` is the
    labelled domain's, whose head the model carries."""
    from tlbench.training import Selection, validation_selection

    rule = params["selection"]
    headline = labelled.task.metric(labelled.task.headline)
    if rule == "source-val":
        default = validation_selection(labelled, params)
        return None if default is None else replace(default, rule="source-val",
                                                    metric=f"source_val_{headline.name}")
    if rule == "oracle":
        if unlabelled.split("val").labels is None or not len(unlabelled.split("val")):
            raise ValueError("selection 'oracle' needs the unlabelled domain's val labels, which this run was not "
                             "given (or its val split is empty)")
        batches = example_batches(unlabelled, "val", params)
        return Selection(rule="oracle", metric=f"target_val_{headline.name}",
                         higher_is_better=headline.higher_is_better,
                         score=lambda model: unlabelled.headline(
                             "val", predict_split(unlabelled, model, "val", params, objective, batches)),
                         reads=("unlabelled:val:labels",))
    if rule == "dev":
        if not len(labelled.split("val")):
            return None
        return Selection(rule="dev", metric="dev_risk", higher_is_better=False,
                         score=lambda model: dev_score(model, labelled, unlabelled, objective, params),
                         reads=("labelled:train", "unlabelled:train", "labelled:val:labels"))
    if rule == "snd":
        if labelled.task.name != "classification":
            raise ValueError(f"selection 'snd' reads class probabilities; the {labelled.task.name} task has none")
        return Selection(rule="snd", metric="snd", higher_is_better=True,
                         score=lambda model: snd_score(model, unlabelled, params),
                         reads=("unlabelled:train",))
    if rule == "last":
        return None
    raise ValueError(f"unknown selection rule {rule!r}")


def settings(params: dict) -> dict:
    """The rule's own settings, for the record."""
    rule = params["selection"]
    if rule == "dev":
        return {"l2": params["dev_l2"], "classifier": "logistic regression on standardised features"}
    if rule == "snd":
        return {"temperature": params["snd_temperature"]}
    return {}


# --------------------------------------------------------------------------- forward passes


def example_batches(target, split: str, params: dict):
    """Batches of a split for a forward pass. A role that holds no objective (the
    unlabelled domain) but was given a split's labels openly (the oracle's val labels)
    cannot batch them, so its examples are batched alone; predictions are scored with
    the labels it holds (`target.score`)."""
    from tlbench.training import SplitBatches

    size = max(params["batch_size"], 128)
    if target.objective is not None or target.split(split).labels is None:
        return target.batches(split, size)
    return SplitBatches(target.split(split).examples, None, target.encode, target.device, batch_size=size)


def forward_split(target, model, split: str, params: dict, outputs: bool = False, batches=None):
    """(features, outputs or None, loss targets or None) of a split, in eval mode, as float32 CPU tensors."""
    import torch

    model.eval()
    features, logits, targets = [], [], []
    with torch.no_grad():
        for inputs, batch_targets in (batches or target.batches(split, max(params["batch_size"], 128))).batches():
            target.check_budget()
            with precision(target.device, params):
                f = model.features(inputs)
                if outputs:
                    logits.append(model.head(f).float().cpu())
            features.append(f.float().cpu())
            if batch_targets is not None:
                targets.append(batch_targets)
    cat = (lambda parts: torch.cat(parts) if parts else None)
    joined_targets = None
    if targets:
        joined_targets = torch.cat([t.cpu() for t in targets]) if isinstance(targets[0], torch.Tensor) else \
            [row for part in targets for row in part]
    return cat(features), cat(logits) if outputs else None, joined_targets


def precision(device, params: dict):
    """The engine's precision for a forward pass: bf16 autocast on CUDA when `amp` is on."""
    import contextlib

    import torch

    if device.type == "cuda" and params.get("amp", True) and torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predict_split(target, model, split: str, params: dict, objective, batches=None):
    """The model's predictions on a split of `target` (eval mode, no gradient), as
    `objective` (the labelled domain's) turns outputs into predictions."""
    import numpy as np
    import torch

    model.eval()
    parts = []
    with torch.no_grad():
        for inputs, _ in (batches or example_batches(target, split, params)).batches():
            target.check_budget()
            with precision(target.device, params):
                parts.append(objective.predictions(model(inputs)))
    if not parts:
        return []
    return np.concatenate(parts) if isinstance(parts[0], np.ndarray) else [p for part in parts for p in part]


# --------------------------------------------------------------------------- DEV


def density_ratios(source, target, query, l2: float) -> "np.ndarray":
    """p_t(x) / p_s(x) at each `query` row, from a logistic regression that tells `source`
    rows (0) from `target` rows (1): (n_s / n_t) · P(1 | x) / P(0 | x).

    The regression is fitted on standardised features (the mean and standard deviation
    of both domains' rows), minimising mean binary cross-entropy + l2/2 ‖w‖² (the bias
    unpenalised) with scipy's L-BFGS-B in float64."""
    import numpy as np
    from scipy.optimize import minimize

    source, target, query = (np.asarray(a, dtype=np.float64) for a in (source, target, query))
    x = np.concatenate([source, target])
    mean, std = x.mean(0), np.maximum(x.std(0), 1e-6)
    x = np.concatenate([(x - mean) / std, np.ones((len(x), 1))], axis=1)
    y = np.concatenate([np.zeros(len(source)), np.ones(len(target))])
    mask = np.ones(x.shape[1])
    mask[-1] = 0.0

    def objective(theta):
        z = x @ theta
        loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * np.sum((mask * theta) ** 2)
        grad = x.T @ (0.5 * (1.0 + np.tanh(0.5 * z)) - y) / len(x) + l2 * mask * theta
        return loss, grad

    fit = minimize(objective, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B",
                   options={"maxiter": 500, "gtol": 1e-6})
    q = np.concatenate([(query - mean) / std, np.ones((len(query), 1))], axis=1)
    log_odds = np.clip(q @ fit.x, -30.0, 30.0)
    return (len(source) / len(target)) * np.exp(log_odds)


def dev_risk(losses, weights) -> float:
    """The DEV risk of per-example validation losses under density ratios `weights`:
    mean(L) + η mean(w) − η with L = w ℓ and η = −Cov(L, w) / Var(w) (sample moments)."""
    import numpy as np

    losses, weights = np.asarray(losses, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    weighted = weights * losses
    if len(weights) < 2:
        return float(weighted.mean())
    variance = weights.var(ddof=1)
    eta = 0.0 if variance <= 0 else -float(np.cov(weighted, weights, ddof=1)[0, 1]) / variance
    return float(weighted.mean() + eta * weights.mean() - eta)


def per_example_losses(objective, outputs: "torch.Tensor", targets: Any) -> "np.ndarray":
    """The objective's loss of each example on its own."""
    import numpy as np

    return np.array([float(objective.loss(outputs[i:i + 1], targets[i:i + 1])) for i in range(len(outputs))])


def dev_score(model, labelled, unlabelled, objective, params: dict) -> float:
    source, _, _ = forward_split(labelled, model, "train", params)
    target, _, _ = forward_split(unlabelled, model, "train", params)
    features, outputs, targets = forward_split(labelled, model, "val", params, outputs=True)
    labelled.check_budget()
    weights = density_ratios(source.numpy(), target.numpy(), features.numpy(), params["dev_l2"])
    return dev_risk(per_example_losses(objective, outputs, targets), weights)


# --------------------------------------------------------------------------- SND


def soft_neighbourhood_density(probabilities: "torch.Tensor", temperature: float) -> float:
    """Mean entropy of each example's softmax over its cosine similarities to the others
    (the example itself excluded), the similarities those of L2-normalised `probabilities`."""
    import torch

    p = torch.nn.functional.normalize(probabilities.double(), dim=1)
    similarity = p @ p.T / temperature
    similarity.fill_diagonal_(float("-inf"))
    neighbours = similarity.softmax(dim=1)
    entropy = -(neighbours * torch.log(neighbours.clamp_min(1e-300))).sum(dim=1)
    return float(entropy.mean())


def snd_score(model, unlabelled, params: dict) -> float | None:
    _, logits, _ = forward_split(unlabelled, model, "train", params, outputs=True)
    if logits is None or len(logits) < 2:
        return None
    return soft_neighbourhood_density(logits.softmax(dim=1), params["snd_temperature"])
