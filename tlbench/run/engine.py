"""The one training engine every strategy uses, so strategies differ only in what they train.

A strategy builds a model (inputs -> the task head's outputs) and optimiser parameter
groups (which parameters train, at which learning rate) and hands both to `train`. The
target's task supplies the loss and turns outputs into predictions (`Objective`). The
engine owns everything else: the optimiser (AdamW or SGD), the per-step warm-up +
cosine schedule (a factor on each group's own learning rate, so layer-wise scales
survive), weight decay that skips norms and biases, gradient clipping, evaluation on
the validation split after every epoch with checkpoint selection on the task's headline
metric (in its direction) and early stopping, budget checks at every step, and on CUDA
bf16 autocast and channels-last convolutions.

A strategy adds to the loss with a `loss_hook`, which receives each step's batch, the
model's outputs on it, and one batch from each extra data source the strategy passed
(unlabelled target batches, other tasks' batches): regularisers, domain-adaptation and
multi-task losses ride on the same loop, budgets, evaluation and selection. A strategy
whose objective gives several losses (one per task of a group) replaces the backward
pass with a `backward` of its own, which weights them or aggregates their gradients.

Parameters in no group are frozen (``requires_grad=False``) by `train`, so the counts a
record reports are the parameters the optimiser could change.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from ..api import SPLITS, FitResult, Objective
from .batches import Inputs, SplitBatches, Targets
from .context import RunTarget

REPRESENTATION_METHODS = {"feature_maps": "forward_feature_maps", "tokens": "forward_tokens"}


class TaskModel(nn.Module):
    """A backbone followed by a task's head: encoded inputs to the head's outputs. The head
    reads the representation its task asks for (pooled vectors, feature maps or tokens),
    all computed by the same backbone parameters."""

    def __init__(self, backbone: nn.Module, head: nn.Module, representation: str = "pooled"):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.representation = representation

    def features(self, inputs: Inputs) -> Any:
        if self.representation == "pooled":
            return self.backbone(inputs)
        method = getattr(self.backbone, REPRESENTATION_METHODS[self.representation], None)
        if method is None:
            raise TypeError(f"the source's backbone gives no {self.representation.replace('_', ' ')} "
                            f"({REPRESENTATION_METHODS[self.representation]} is missing)")
        return method(inputs)

    def forward(self, inputs: Inputs) -> Any:
        return self.head(self.features(inputs))


@dataclass
class Step:
    """One optimisation step, as a `loss_hook` sees it."""

    inputs: Inputs
    targets: Targets
    outputs: Any
    """The model's outputs on `inputs` (under autocast on CUDA)."""
    model: nn.Module
    extra: dict[str, tuple[Inputs, Targets]]
    """One batch from each extra data source: (inputs, targets or None when unlabelled)."""
    epoch: int
    step: int
    """Steps taken before this one."""
    progress: float
    """Share of the planned steps done before this one, in [0, 1) (for schedules like DANN's)."""
    features: Any = None
    """What the head read to give `outputs` (a `TaskModel`'s representation; None for other
    models), so a loss on features (a domain discriminator, an alignment) costs no second
    forward pass."""


@dataclass(frozen=True)
class Selection:
    """How `train` compares checkpoints, evaluated after every epoch: a score of the
    model (None when it cannot be scored) and which way is better. Records name the
    `rule` and what data it reads, so a reader can tell which labels chose the model."""

    rule: str
    """'val' (the default: the target's headline on its validation split), or a
    strategy's own ('importance-weighted', 'snd', 'oracle'...)."""
    metric: str
    """The history entry the score is logged under (e.g. 'val_accuracy')."""
    higher_is_better: bool
    score: Callable[[nn.Module], float | None]
    reads: tuple[str, ...] = ()
    """What the score reads, as 'role:split:labels' or 'role:split' (examples only), e.g.
    ('target:val:labels',): never a test split's labels."""

    def to_json(self) -> dict:
        return {"rule": self.rule, "metric": self.metric, "higher_is_better": self.higher_is_better,
                "reads": list(self.reads)}


def validation_selection(run: RunTarget, params: dict, objective: Objective | None = None) -> Selection | None:
    """The default: the target's headline metric on its validation split (None when the
    split is empty or its labels are withheld)."""
    split = run.split("val")
    if not len(split) or split.labels is None:
        return None
    headline = run.task.metric(run.task.headline)
    return Selection(rule="val", metric=f"val_{headline.name}", higher_is_better=headline.higher_is_better,
                     score=lambda model: run.headline("val", predict(run, model, "val", params, objective)),
                     reads=(f"{_role(run)}:val:labels",))


def _role(run) -> str:
    """The role of the target `run` trains on: a `RunTarget`'s, or a run's scored one."""
    role = getattr(run, "role", None)
    return role if isinstance(role, str) else getattr(run, "scored_role", "target")


def _forward(model: nn.Module, inputs: Inputs) -> tuple[Any, Any]:
    """(the representation the head read, the outputs): a `TaskModel` in two steps, so the
    features can be handed to a loss hook; any other model in one (features None)."""
    if isinstance(model, TaskModel):
        features = model.features(inputs)
        return features, model.head(features)
    return None, model(inputs)


# --------------------------------------------------------------------------- parameters


def is_no_decay(name: str, param: torch.Tensor) -> bool:
    """Biases and normalisation weights (1-d tensors) get no weight decay."""
    return param.ndim <= 1 or name.endswith(".bias")


def param_groups(named: Iterable[tuple[str, torch.Tensor]], lr: float, weight_decay: float,
                 label: str = "params") -> list[dict]:
    """Optimiser groups for the trainable ones of `named`: one with weight decay, one
    without (norms and biases). Each group carries its parameter names and a label."""
    decay, no_decay = [], []
    for name, param in named:
        if param.requires_grad:
            (no_decay if is_no_decay(name, param) else decay).append((name, param))
    groups = []
    for suffix, members, wd in (("", decay, weight_decay), ("/no_decay", no_decay, 0.0)):
        if members:
            groups.append({"params": [p for _, p in members], "names": [n for n, _ in members],
                           "lr": lr, "weight_decay": wd, "label": label + suffix})
    return groups


def count_params(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, shared tensors counted once."""
    seen, trainable, total = set(), 0, 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return trainable, total


def freeze_outside(model: nn.Module, groups: list[dict]) -> None:
    """Freeze every parameter of `model` that is in none of `groups`."""
    members: set[int] = set()
    for group in groups:
        for param in group["params"]:
            if id(param) in members:
                raise ValueError(f"a parameter appears in more than one optimiser group "
                                 f"(group {group.get('label', '?')!r})")
            members.add(id(param))
    for param in model.parameters():
        if id(param) not in members:
            param.requires_grad_(False)


def _has_running_stats(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats


def stat_layers(model: nn.Module) -> list[nn.Module]:
    """Normalisation layers that keep running statistics (BatchNorm and the like)."""
    return [module for module in model.modules() if _has_running_stats(module)]


def frozen_stat_layers(model: nn.Module) -> list[nn.Module]:
    """Normalisation layers with running statistics whose parameters are all frozen;
    a layer without affine parameters goes with the module that contains it."""
    modules = dict(model.named_modules())
    frozen = []
    for name, module in modules.items():
        if not _has_running_stats(module):
            continue
        owner = module
        if not any(True for _ in module.parameters()):
            owner = modules[name.rpartition(".")[0]]
        if not any(p.requires_grad for p in owner.parameters()):
            frozen.append(module)
    return frozen


def train_mode_keeping_stats(layers: list[nn.Module]) -> Callable[[nn.Module], None]:
    """A `set_train_mode` for `train`: everything trains except `layers`, which stay in
    eval mode, so their running statistics neither update nor change how they normalise."""

    def set_train_mode(model: nn.Module) -> None:
        model.train()
        for layer in layers:
            layer.eval()

    return set_train_mode


# --------------------------------------------------------------------------- the recipe


def cosine_factor(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor at `step` (0-based): linear warm-up to 1, then cosine to 0."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(groups: list[dict], params: dict) -> torch.optim.Optimizer:
    clean = [{k: v for k, v in g.items() if k not in ("names", "label")} for g in groups]
    if params["optimizer"] == "sgd":
        return torch.optim.SGD(clean, lr=params["lr"], momentum=params["momentum"],
                               nesterov=params["momentum"] > 0)
    return torch.optim.AdamW(clean, lr=params["lr"])


def eval_batch_size(params: dict) -> int:
    return max(params.get("batch_size", 64), 128)


def autocast(device: torch.device, params: dict):
    """bf16 autocast on CUDA when asked for and supported; nothing elsewhere."""
    if device.type == "cuda" and params.get("amp", True) and torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _on_device(model: nn.Module, device: torch.device) -> bool:
    """Whether every parameter and buffer is on `device` already: checking is a fraction
    of what ``model.to`` costs when there is nothing to move (it walks every module)."""
    def placed(tensor: torch.Tensor) -> bool:
        return tensor.device.type == device.type and (device.index is None or tensor.device.index == device.index)

    return all(placed(p) for p in model.parameters()) and all(placed(b) for b in model.buffers())


def _prepare(model: nn.Module, run: RunTarget, params: dict) -> bool:
    """Move `model` to the run's device; channels-last where it helps (convolutions on CUDA)."""
    if not _on_device(model, run.device):
        model.to(run.device)
    channels_last = (run.device.type == "cuda" and params.get("channels_last", True)
                     and any(isinstance(m, nn.Conv2d) for m in model.modules()))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return channels_last


def _format(inputs: Inputs, channels_last: bool) -> Inputs:
    if channels_last and isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        return inputs.contiguous(memory_format=torch.channels_last)
    if channels_last and isinstance(inputs, dict):  # a text batch's tensors, or a task group's batches by member
        return type(inputs)({key: _format(value, channels_last) for key, value in inputs.items()})
    return inputs


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state that training can change: trainable parameters and all buffers."""
    state = {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters() if p.requires_grad}
    state.update({name: b.detach().to("cpu", copy=True) for name, b in model.named_buffers()})
    return state


def concat_predictions(parts: list[Any]) -> Any:
    """Batches of predictions (arrays with a row per example, or lists) as one split's."""
    if not parts:
        return []
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return [item for part in parts for item in part]


@torch.no_grad()
def predict(run: RunTarget, model: nn.Module, split: str, params: dict, objective: Objective | None = None) -> Any:
    """Predictions of `model` on a split of `run`, in eval mode (the model is left in eval
    mode): its outputs as `objective` (by default the target's own) turns them into
    predictions. An unlabelled target has no objective of its own: pass the one the
    model's head was trained with (a labelled domain's)."""
    channels_last = _prepare(model, run, params)
    model.eval()
    objective = objective or run.objective
    out = []
    for inputs, _ in run.batches(split, eval_batch_size(params), params.get("num_workers", 0)).batches():
        run.check_budget()
        with autocast(run.device, params):
            out.append(objective.predictions(model(_format(inputs, channels_last))))
    return concat_predictions(out)


@dataclass
class TrainResult:
    epochs_run: int = 0
    steps: int = 0
    selection: dict | None = None
    """How checkpoints were compared (`Selection.to_json`); None when nothing could be scored."""
    best_epoch: int | None = None
    best_val: float | None = None
    """The best selection score seen."""
    selected_epoch: int | None = None
    """The epoch whose weights the model holds after training."""
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    """Per optimiser group: label, parameter count, base and peak learning rate, weight decay."""

    def to_json(self) -> dict:
        return {"epochs_run": self.epochs_run, "steps": self.steps, "selection": self.selection,
                "best_epoch": self.best_epoch,
                "best_val": self.best_val, "selected_epoch": self.selected_epoch,
                "stopped_early": self.stopped_early, "groups": self.groups, "history": self.history}


def _endless(batches: SplitBatches, generator: torch.Generator, name: str,
             channels_last: bool) -> Iterator[tuple[Inputs, Targets]]:
    """Batches of an extra data source, reshuffled at every pass, for as long as asked; a
    last batch of one example is dropped, as for the training split (BatchNorm)."""
    n = len(batches)
    drop_last = n > batches.batch_size and n % batches.batch_size == 1
    while True:
        empty = True
        for inputs, targets in batches.batches(shuffle=True, generator=generator, drop_last=drop_last):
            empty = False
            yield _format(inputs, channels_last), targets
        if empty:
            raise ValueError(f"extra data source {name!r} has no examples")


def _improved(value: float | None, best: float | None, higher_is_better: bool) -> bool:
    if value is None:
        return False
    return best is None or (value > best if higher_is_better else value < best)


def batch_length(targets: Targets) -> int:
    """Examples in a batch, from its targets (a tensor or list per example, or, for a task
    group, a dict of those by role: the most of any member)."""
    if isinstance(targets, dict):
        return max((batch_length(value) for value in targets.values()), default=0)
    return len(targets)


def train(run: RunTarget, model: nn.Module, groups: list[dict], params: dict, *,
          loss_hook: Callable[[Step], torch.Tensor] | None = None,
          extra: dict[str, SplitBatches] | None = None,
          set_train_mode: Callable[[nn.Module], None] | None = None,
          epoch_metrics: Callable[[], dict] | None = None,
          selection: Selection | None = None,
          backward: Callable[[Step, Any], torch.Tensor] | None = None) -> TrainResult:
    """Train `model` (inputs -> the task head's outputs) on the train split of `run` (a run,
    or one of its targets); select by `selection` after every epoch, by default the
    task's headline metric on the val split of `run` (`validation_selection`).

    `groups` are optimiser parameter groups (see `param_groups`); parameters in none of
    them are frozen. `loss_hook(step)` returns a term added to every step's loss (a
    regulariser, an adaptation or a multi-task loss; see `Step`), computed under the same
    autocast as the model's forward pass; `extra` names data sources (e.g.
    ``run.role("unlabelled").batches("train", 32)``) of which each step gets one batch
    (in the model's memory format), cycling through each source reshuffled; `set_train_mode(model)`
    replaces ``model.train()`` at the start of every epoch (to keep frozen BatchNorm
    statistics fixed); `epoch_metrics()` adds entries to each epoch's history;
    `backward(step, loss)` replaces ``loss.backward()`` (after the gradients are zeroed and
    before they are clipped) and returns the scalar loss to log: for an objective whose
    loss is several (a task group's, one per task), which it weights or whose gradients
    it aggregates.
    """
    freeze_outside(model, groups)
    channels_last = _prepare(model, run, params)
    optimizer = make_optimizer(groups, params)
    objective = run.objective.configure(params)
    selection = selection or validation_selection(run, params)
    batch_size = params["batch_size"]
    train_batches = run.batches("train", batch_size, params.get("num_workers", 0))
    n_train = len(train_batches)
    if n_train == 0:
        raise ValueError("the training split is empty")
    # a last batch of one example breaks BatchNorm in train mode: drop it
    drop_last = n_train > batch_size and n_train % batch_size == 1
    steps_per_epoch = n_train // batch_size if drop_last else math.ceil(n_train / batch_size)
    total = params["epochs"] * steps_per_epoch
    warmup = int(round(params["warmup_epochs"] * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_factor(step, total, warmup))
    peak_lr = [0.0] * len(optimizer.param_groups)
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    generator = torch.Generator().manual_seed(run.seed)
    extras = {name: _endless(batches, torch.Generator().manual_seed(run.seed + 1 + i), name, channels_last)
              for i, (name, batches) in enumerate(sorted((extra or {}).items()))}
    result = TrainResult(selection=selection.to_json() if selection else None)
    best_state, stale = None, 0
    for epoch in range(1, params["epochs"] + 1):
        (set_train_mode or (lambda m: m.train()))(model)
        epoch_loss, seen = torch.zeros((), device=run.device), 0
        for inputs, targets in train_batches.batches(shuffle=True, generator=generator, drop_last=drop_last):
            run.check_budget()
            with autocast(run.device, params):
                features, outputs = _forward(model, _format(inputs, channels_last))
            loss = objective.loss(outputs, targets)
            step = None
            if loss_hook is not None or backward is not None:
                step = Step(inputs, targets, outputs, model, {name: next(it) for name, it in extras.items()},
                            epoch, result.steps, result.steps / max(1, total), features)
            if loss_hook is not None:
                with autocast(run.device, params):  # the hook's own forward passes run as the model's did
                    loss = loss + loss_hook(step)
            optimizer.zero_grad(set_to_none=True)
            if backward is None:
                loss.backward()
            else:
                loss = backward(step, loss)
            if params.get("clip_grad_norm"):
                torch.nn.utils.clip_grad_norm_(trainable, params["clip_grad_norm"])
            for i, group in enumerate(optimizer.param_groups):
                peak_lr[i] = max(peak_lr[i], group["lr"])
            optimizer.step()
            scheduler.step()
            result.steps += 1
            size = batch_length(targets)
            epoch_loss += loss.detach() * size
            seen += size
        result.epochs_run = epoch
        entry = {"epoch": epoch, "train_loss": float(epoch_loss) / max(1, seen)}
        if epoch_metrics is not None:
            entry.update(epoch_metrics())
        if selection is not None:
            value = selection.score(model)
            entry[selection.metric] = value
            run.note_eval(epoch=epoch, **{selection.metric: value})
            if _improved(value, result.best_val, selection.higher_is_better):
                result.best_val, result.best_epoch, stale = value, epoch, 0
                if params["select"] == "best_val":
                    best_state = _snapshot(model)
            else:
                stale += 1
        result.history.append(entry)
        if params.get("patience") and stale >= params["patience"]:
            result.stopped_early = True
            break
    result.selected_epoch = result.epochs_run
    if best_state is not None:
        result.selected_epoch = result.best_epoch
        if result.best_epoch != result.epochs_run:
            model.load_state_dict(best_state, strict=False)
    result.groups = [{"label": group.get("label", f"group{i}"),
                      "params": sum(p.numel() for p in group["params"]),
                      "lr": group["lr"], "weight_decay": group["weight_decay"], "peak_lr": peak_lr[i]}
                     for i, group in enumerate(groups)]
    return result


def evaluate(run: RunTarget, model: nn.Module, params: dict, info: dict | None = None,
             objective: Objective | None = None) -> FitResult:
    """Predictions on every split and parameter counts: the end of most strategies."""
    predictions = {split: predict(run, model, split, params, objective) for split in SPLITS}
    trainable, total = count_params(model)
    return FitResult(predictions=predictions, trainable_params=trainable, total_params=total,
                     info=info or {}, model=model)
