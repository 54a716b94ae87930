"""The one training engine every strategy uses, so strategies differ only in what they train.

A strategy builds a model (inputs -> logits) and optimiser parameter groups (which
parameters train, at which learning rate) and hands both to `train`. The engine owns
everything else: the optimiser (AdamW or SGD), the per-step warm-up + cosine schedule
(a factor on each group's own learning rate, so layer-wise scales survive), weight decay
that skips norms and biases, label smoothing, gradient clipping, evaluation on the
validation split after every epoch with checkpoint selection and early stopping, budget
checks at every step, and on CUDA bf16 autocast and channels-last convolutions.

Parameters in no group are frozen (``requires_grad=False``) by `train`, so the counts a
record reports are the parameters the optimiser could change.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..api import SPLITS, FitResult
from .batches import Inputs
from .context import RunContext


class Classifier(nn.Module):
    """A backbone followed by a linear head: encoded inputs to logits."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, inputs: Inputs) -> torch.Tensor:
        return self.head(self.backbone(inputs))


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


def _prepare(model: nn.Module, run: RunContext, params: dict) -> bool:
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
    return inputs


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state that training can change: trainable parameters and all buffers."""
    state = {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters() if p.requires_grad}
    state.update({name: b.detach().to("cpu", copy=True) for name, b in model.named_buffers()})
    return state


@torch.no_grad()
def predict(run: RunContext, model: nn.Module, split: str, params: dict) -> np.ndarray:
    """Logits of `model` on a split, in eval mode (the model is left in eval mode)."""
    channels_last = _prepare(model, run, params)
    model.eval()
    out = []
    for inputs, _ in run.batches(split, eval_batch_size(params), params.get("num_workers", 0)).batches():
        run.check_budget()
        with autocast(run.device, params):
            out.append(model(_format(inputs, channels_last)).float())
    if not out:
        return np.zeros((0, run.num_classes), dtype=np.float32)
    return torch.cat(out).cpu().numpy()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float | None:
    return float((logits.argmax(1) == labels).mean()) if len(labels) else None


@dataclass
class TrainResult:
    epochs_run: int = 0
    steps: int = 0
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    selected_epoch: int | None = None
    """The epoch whose weights the model holds after training."""
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    """Per optimiser group: label, parameter count, base and peak learning rate, weight decay."""

    def to_json(self) -> dict:
        return {"epochs_run": self.epochs_run, "steps": self.steps, "best_epoch": self.best_epoch,
                "best_val_accuracy": self.best_val_accuracy, "selected_epoch": self.selected_epoch,
                "stopped_early": self.stopped_early, "groups": self.groups, "history": self.history}


def train(run: RunContext, model: nn.Module, groups: list[dict], params: dict, *,
          extra_loss: Callable[[], torch.Tensor] | None = None,
          set_train_mode: Callable[[nn.Module], None] | None = None,
          epoch_metrics: Callable[[], dict] | None = None) -> TrainResult:
    """Train `model` (inputs -> logits) on the train split; select on the val split.

    `groups` are optimiser parameter groups (see `param_groups`); parameters in none of
    them are frozen. `extra_loss()` adds a regulariser to every step's loss (L2-SP);
    `set_train_mode(model)` replaces ``model.train()`` at the start of every epoch (to
    keep frozen BatchNorm statistics fixed); `epoch_metrics()` adds entries to each
    epoch's history.
    """
    freeze_outside(model, groups)
    channels_last = _prepare(model, run, params)
    optimizer = make_optimizer(groups, params)
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
    loss_fn = nn.CrossEntropyLoss(label_smoothing=params["label_smoothing"])
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    generator = torch.Generator().manual_seed(run.seed)
    val_labels = run.split("val").labels
    result, best_state, stale = TrainResult(), None, 0
    for epoch in range(1, params["epochs"] + 1):
        (set_train_mode or (lambda m: m.train()))(model)
        epoch_loss, seen = torch.zeros((), device=run.device), 0
        for inputs, labels in train_batches.batches(shuffle=True, generator=generator, drop_last=drop_last):
            run.check_budget()
            with autocast(run.device, params):
                logits = model(_format(inputs, channels_last))
            loss = loss_fn(logits.float(), labels)
            if extra_loss is not None:
                loss = loss + extra_loss()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if params.get("clip_grad_norm"):
                torch.nn.utils.clip_grad_norm_(trainable, params["clip_grad_norm"])
            for i, group in enumerate(optimizer.param_groups):
                peak_lr[i] = max(peak_lr[i], group["lr"])
            optimizer.step()
            scheduler.step()
            result.steps += 1
            epoch_loss += loss.detach() * len(labels)
            seen += len(labels)
        result.epochs_run = epoch
        entry = {"epoch": epoch, "train_loss": float(epoch_loss) / max(1, seen)}
        if epoch_metrics is not None:
            entry.update(epoch_metrics())
        if len(val_labels):
            val_acc = accuracy(predict(run, model, "val", params), val_labels)
            entry["val_accuracy"] = val_acc
            run.note_eval(epoch=epoch, val_accuracy=val_acc)
            if result.best_val_accuracy is None or val_acc > result.best_val_accuracy:
                result.best_val_accuracy, result.best_epoch, stale = val_acc, epoch, 0
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


def evaluate(run: RunContext, model: nn.Module, params: dict, info: dict | None = None) -> FitResult:
    """Logits on every split and parameter counts: the end of most strategies."""
    logits = {split: predict(run, model, split, params) for split in SPLITS}
    trainable, total = count_params(model)
    return FitResult(logits=logits, trainable_params=trainable, total_params=total,
                     info=info or {}, model=model)
