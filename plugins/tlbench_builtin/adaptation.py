"""What the unsupervised domain-adaptation strategies share.

Each adaptation strategy (`erm`, `dann`, `cdan`, `mcc`, `coral`) runs on a suite's
`[[groups]]` with two roles: a `labelled` domain (its training labels train the
head) and an `unlabelled` domain (examples only: tlbench never hands its labels to the
strategy), on whose test split the run is scored. They differ only in the loss term
they add (`Method.loss_hook`), so the rest is here, once:

- the model: the source's backbone with a new head of the labelled domain's task, every
  parameter trained, the backbone at ``lr × backbone_lr_scale`` (the recipe of
  `full-finetune`, so `erm` with its defaults is full fine-tuning on the labelled
  domain); auxiliary modules of a method (a domain discriminator) train at `lr` and are
  not part of the predictor (the record counts them under `auxiliary_params`);
- training through tlbench's engine on the labelled domain, with one batch of the
  unlabelled domain's training split per step (`extra["unlabelled"]`, reshuffled at
  every pass) for the methods that read it; the loss hook adds the method's term;
- checkpoint selection by the `selection` rule (`domain_selection`), which replaces the
  engine's `select` knob;
- predictions for every split of the unlabelled domain with the labelled domain's head
  (the worker scores them; the test labels never reach the strategy), and for the
  labelled domain's test split (`role_predictions`), so every record carries the
  source-domain test accuracy under ``details.by_role.labelled`` (ERM's gives the
  domain gap);
- the record: `details.selection` (rule, metric, direction, what it read, the selected
  epoch) and `details.strategy` (the method's settings, per-epoch losses and, for the
  adversarial ones, the discriminator's accuracy).

The unlabelled batch runs through the model in a second forward pass (train mode), so
BatchNorm layers normalise each domain's batch by its own statistics while training and
keep running statistics that mix both domains' batches (TLlib instead concatenates the
two batches into one forward pass).

Importing this module stays light (schemas only); torch is imported inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

from tlbench.api import SPLITS, FitResult, Requirements, Role, Strategy
from tlbench.params import Param
from tlbench.training import ENGINE_PARAMS

from . import domain_selection
from .finetuning import BACKBONE_LR_SCALE

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

ROLES = (Role("labelled", scored=False), Role("unlabelled", labelled=False, scored=True))
"""A labelled domain that trains the head, and an unlabelled one the run is scored on."""

POOLED_TASKS = ("classification", "multilabel", "regression")
"""Task types whose head reads pooled features (what a feature-level loss can take)."""

ADAPTATION_PARAMS: dict[str, Param] = {
    **{name: param for name, param in ENGINE_PARAMS.items() if name != "select"},
    **BACKBONE_LR_SCALE,
    "unlabelled_batch_size": Param(int, None, "unlabelled-domain examples per step (default: batch_size)", min=1),
    **domain_selection.SELECTION_PARAMS,
}
"""The engine's knobs (but `select`, which `selection` replaces), the backbone's learning-rate
scale, the unlabelled batch size and the selection rule: every adaptation strategy takes these."""

ADVERSARIAL_PARAMS: dict[str, Param] = {
    "trade_off": Param(float, 1.0, "weight of the domain-adversarial loss", min=0),
    "gamma": Param(float, 10.0, "steepness of the schedule lambda = 2 / (1 + exp(-gamma p)) - 1 of the reversed "
                                "gradient over training progress p", min=0),
    "discriminator_hidden": Param(int, 1024, "width of the domain discriminator's two hidden layers", min=1),
}
"""What DANN and CDAN share: the loss weight, the gradient-reversal schedule, the discriminator."""


def requirements(tasks: tuple[str, ...] | None) -> Requirements:
    return Requirements(tasks=tasks, roles=ROLES)


@dataclass
class Method:
    """What a method adds to the shared recipe."""

    loss_hook: Callable[[Any], "torch.Tensor"] | None = None
    """The term added to every step's loss (see `tlbench.training.Step`)."""
    modules: dict[str, "nn.Module"] = field(default_factory=dict)
    """Trainable auxiliary modules (a discriminator), trained at `lr`, not part of the predictor."""
    reads_unlabelled: bool = True
    """Whether every step gets a batch of the unlabelled domain's training split."""
    settings: dict = field(default_factory=dict)
    """The method's resolved settings, for the record."""
    epoch_metrics: Callable[[], dict] | None = None
    """Per-epoch entries for the training history (means over the epoch's steps)."""


class Means:
    """Running means of scalar tensors over an epoch, read (and reset) by `epoch_metrics`."""

    def __init__(self):
        self.sums: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add(self, **values) -> None:
        for name, value in values.items():
            value = value.detach().float() if hasattr(value, "detach") else float(value)
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1

    def pop(self) -> dict:
        out = {name: float(total) / self.counts[name] for name, total in self.sums.items()}
        self.sums, self.counts = {}, {}
        return out


class AdaptationStrategy(Strategy):
    """The shared recipe; a method implements `method(params, run, model)`. Every method
    is compared with ERM, run for run: the negative transfer of the adaptation itself."""

    requires = requirements(None)
    params = ADAPTATION_PARAMS
    compared_with = "erm"

    def reveals(self, params: dict) -> tuple[str, ...]:
        return domain_selection.reveals(params)

    def check(self, params: dict, env) -> None:
        domain_selection.check(params)

    def method(self, params: dict, run, model) -> Method:
        raise NotImplementedError

    def fit(self, params: dict, run) -> FitResult:
        from tlbench.training import TaskModel, count_params, param_groups, predict, train

        from .finetuning import backbone_and_head_groups, learning_rates, trainable_by_part

        labelled, unlabelled = run.role("labelled"), run.role("unlabelled")
        same_classes(labelled.target, unlabelled.target)
        objective = labelled.objective
        model = TaskModel(run.source.backbone, objective.head(run.source), labelled.task.representation)
        for param in model.parameters():
            param.requires_grad_(True)
        method = self.method(params, run, model)
        groups = backbone_and_head_groups(model, params)
        auxiliary = 0
        for name, module in method.modules.items():
            module.to(run.device)
            groups += param_groups(module.named_parameters(), params["lr"], params["weight_decay"], name)
            auxiliary += sum(p.numel() for p in module.parameters())
        knobs = {**params, "select": "last" if params["selection"] == "last" else "best_val"}
        selection = domain_selection.selection_rule(knobs, labelled, unlabelled, objective)
        if selection is None:  # the engine would fall back to its own rule: make "none" explicit
            selection = no_selection()
        extra = None
        if method.reads_unlabelled:
            extra = {"unlabelled": unlabelled.batches("train", params["unlabelled_batch_size"] or params["batch_size"])}
        outcome = train(labelled, model, groups, knobs, loss_hook=skipping_single_examples(method.loss_hook),
                        extra=extra, epoch_metrics=method.epoch_metrics, selection=selection)
        info = {"method": method.settings, "resolved": learning_rates(params), "trainable": trainable_by_part(model),
                "auxiliary_params": auxiliary, "training": outcome.to_json()}
        # the unlabelled domain's splits are predicted with the labelled domain's head
        predictions = {split: domain_selection.predict_split(unlabelled, model, split, knobs, objective)
                       for split in SPLITS}
        trainable, total = count_params(model)
        return FitResult(predictions=predictions, trainable_params=trainable, total_params=total, info=info,
                         model=model, selection=selection_record(outcome, params),
                         role_predictions={"labelled": {"test": predict(labelled, model, "test", knobs)}})


def skipping_single_examples(hook):
    """`hook`, but no term for a step whose unlabelled batch holds a single example (the
    last of a pass can): BatchNorm cannot normalise one example in train mode, and a
    covariance or a confusion matrix of one example means nothing."""
    if hook is None:
        return None

    def guarded(step):
        import torch

        batch = step.extra.get("unlabelled")
        if batch is not None and _batch_size(batch[0]) < 2:
            return torch.zeros((), device=step.outputs.device if hasattr(step.outputs, "device") else None)
        return hook(step)

    return guarded


def _batch_size(inputs) -> int:
    if isinstance(inputs, dict):
        return len(next(iter(inputs.values())))
    return len(inputs)


def no_selection():
    """A `Selection` that scores nothing and reads nothing: the last epoch is kept."""
    from tlbench.training import Selection

    return Selection(rule="last", metric="none", higher_is_better=True, score=lambda model: None, reads=())


def selection_record(outcome, params: dict) -> dict:
    """What the record says about the choice: the rule, its metric and direction, what it
    read, its settings, the epoch it kept and that epoch's score."""
    record = dict(outcome.selection or {"rule": "last", "reads": []})
    if record["rule"] == "last":
        record = {"rule": "last", "reads": []}
        if params["selection"] != "last":
            record["requested"] = params["selection"]
            record["reason"] = "the labelled domain has no validation split"
    record.update(settings=domain_selection.settings(params), selected_epoch=outcome.selected_epoch,
                  epochs_run=outcome.epochs_run, score=outcome.best_val if record["rule"] != "last" else None)
    return record


def same_classes(labelled, unlabelled) -> None:
    """Both domains must share one label space (the head trained on one predicts the other)."""
    if labelled.task != unlabelled.task or labelled.num_classes != unlabelled.num_classes or \
            (labelled.task != "regression" and labelled.class_names != unlabelled.class_names):
        raise ValueError(f"the labelled and unlabelled domains must share their task and classes: "
                         f"{labelled.task} with {labelled.num_classes} classes {list(labelled.class_names)[:5]} "
                         f"vs {unlabelled.task} with {unlabelled.num_classes} {list(unlabelled.class_names)[:5]}")


# --------------------------------------------------------------------------- pieces of the methods


def unlabelled_forward(step, params: dict) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(features, head outputs) of the step's unlabelled batch, in train mode, under the
    engine's precision settings (bf16 autocast on CUDA when `amp`; channels-last inputs)."""
    import torch

    inputs, _ = step.extra["unlabelled"]
    model = step.model
    device = next(model.parameters()).device
    if device.type == "cuda" and params.get("channels_last", True) and isinstance(inputs, torch.Tensor) \
            and inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    with domain_selection.precision(device, params):
        features = model.features(inputs)
        outputs = model.head(features)
    return features, outputs


def pooled(features, method: str) -> "torch.Tensor":
    """Features as a float32 (batch, dim) tensor; a method reading features needs pooled ones."""
    import torch

    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        raise ValueError(f"{method} aligns pooled feature vectors; this task's head reads another representation")
    return features.float()


@lru_cache(maxsize=None)
def _reversal() -> type:
    """The autograd function of `reverse_gradient` (made on first use: torch loads late)."""
    import torch

    class GradientReversal(torch.autograd.Function):
        @staticmethod
        def forward(ctx, inputs, coeff):
            ctx.coeff = float(coeff)
            return inputs.view_as(inputs)

        @staticmethod
        def backward(ctx, grad):
            return -ctx.coeff * grad, None

    return GradientReversal


def reverse_gradient(inputs: "torch.Tensor", coeff: float) -> "torch.Tensor":
    """`inputs` unchanged, with gradient −coeff × the incoming one (Ganin & Lempitsky 2015)."""
    return _reversal().apply(inputs, coeff)


def reversal_schedule(progress: float, gamma: float) -> float:
    """λ_p = 2 / (1 + exp(−γ p)) − 1: 0 at the start, towards 1 at the end (DANN, γ = 10)."""
    import math

    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def domain_discriminator(in_features: int, hidden: int) -> "nn.Module":
    """Features to one domain logit: two hidden layers with BatchNorm and ReLU (the
    discriminator of DANN and CDAN as TLlib builds it for ResNets)."""
    from torch import nn

    return nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, 1))


def domain_loss(logits_s: "torch.Tensor", logits_t: "torch.Tensor", weights_s: "torch.Tensor | None" = None,
                weights_t: "torch.Tensor | None" = None) -> "torch.Tensor":
    """Binary cross-entropy of the discriminator, the labelled domain as 1 and the
    unlabelled as 0, averaged within each domain (weighted when weights are given) and
    then over the two domains, so both count alike whatever their batch sizes."""
    import torch
    import torch.nn.functional as F

    def mean(logits, label, weights):
        losses = F.binary_cross_entropy_with_logits(logits.float().view(-1), torch.full_like(
            logits.float().view(-1), label), reduction="none")
        if weights is None:
            return losses.mean()
        return (weights * losses).sum() / weights.sum()

    return 0.5 * (mean(logits_s, 1.0, weights_s) + mean(logits_t, 0.0, weights_t))


def domain_accuracy(logits_s: "torch.Tensor", logits_t: "torch.Tensor") -> "torch.Tensor":
    import torch

    right = torch.cat([(logits_s.view(-1) > 0), (logits_t.view(-1) <= 0)]).float()
    return right.mean()


def entropy(probabilities: "torch.Tensor") -> "torch.Tensor":
    """Shannon entropy (nats) of each row of `probabilities`."""
    return -(probabilities * probabilities.clamp_min(1e-12).log()).sum(dim=1)
