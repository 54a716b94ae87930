"""The one training engine every strategy uses, so strategies differ only in what they train.

It owns the optimiser (AdamW or SGD), the warm-up + cosine schedule (applied as a factor
to each parameter group's own learning rate, so layer-wise scales survive), weight decay
that skips norms and biases, label smoothing, gradient clipping, evaluation on the
validation split with checkpoint selection and early stopping, budget checks at every
step, and on CUDA bf16 autocast and channels-last images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from .api import SPLITS, FitResult
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


def is_no_decay(name: str, param: torch.Tensor) -> bool:
    """Biases and normalisation weights (1-d tensors) get no weight decay."""
    return param.ndim <= 1 or name.endswith(".bias")


def param_groups(named: Iterable[tuple[str, torch.Tensor]], lr: float, weight_decay: float,
                 label: str = "params") -> list[dict]:
    """Optimiser groups for `named` parameters: one with weight decay, one without."""
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


def cosine_factor(step: int, total: int, warmup: int) -> float:
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


@dataclass
class TrainResult:
    epochs_run: int = 0
    steps: int = 0
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"epochs_run": self.epochs_run, "steps": self.steps, "best_epoch": self.best_epoch,
                "best_val_accuracy": self.best_val_accuracy, "stopped_early": self.stopped_early,
                "history": self.history}


def _autocast(device: torch.device, params: dict):
    enabled = device.type == "cuda" and params.get("amp", True) and torch.cuda.is_bf16_supported()
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=enabled) if enabled \
        else torch.autocast(device_type="cpu", enabled=False)


def _prepare(model: nn.Module, run: RunContext, params: dict) -> bool:
    model.to(run.device)
    channels_last = (run.device.type == "cuda" and params.get("channels_last", True)
                     and run.source.modality == "image")
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
    """Logits of `model` on a split, in eval mode."""
    channels_last = _prepare(model, run, params)
    model.eval()
    out = []
    for inputs, _ in run.batches(split, max(params.get("batch_size", 64), 128), params.get("num_workers", 0)).batches():
        with _autocast(run.device, params):
            out.append(model(_format(inputs, channels_last)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, run.num_classes), dtype=np.float32)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float | None:
    return float((logits.argmax(1) == labels).mean()) if len(labels) else None


def train(run: RunContext, model: nn.Module, groups: list[dict], params: dict, *,
          extra_loss: Callable[[], torch.Tensor] | None = None,
          set_train_mode: Callable[[nn.Module], None] | None = None) -> TrainResult:
    """Train `model` (inputs -> logits) on the train split; select on the val split.

    `extra_loss()` adds a regulariser (L2-SP); `set_train_mode(model)` replaces
    ``model.train()`` (to keep frozen BatchNorm statistics fixed).
    """
    channels_last = _prepare(model, run, params)
    optimizer = make_optimizer(groups, params)
    train_batches = run.batches("train", params["batch_size"], params.get("num_workers", 0))
    n_train = len(train_batches)
    drop_last = n_train > params["batch_size"] and n_train % params["batch_size"] == 1
    steps_per_epoch = max(1, (n_train - (1 if drop_last else 0) + params["batch_size"] - 1) // params["batch_size"])
    total = params["epochs"] * steps_per_epoch
    warmup = int(round(params["warmup_epochs"] * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_factor(step, total, warmup))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=params["label_smoothing"])
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    generator = torch.Generator().manual_seed(run.seed)
    val_labels = run.split("val").labels
    result, best_state, stale = TrainResult(), None, 0
    for epoch in range(1, params["epochs"] + 1):
        (set_train_mode or (lambda m: m.train()))(model)
        epoch_loss, seen = 0.0, 0
        for inputs, labels in train_batches.batches(shuffle=True, generator=generator, drop_last=drop_last):
            run.check_budget()
            with _autocast(run.device, params):
                logits = model(_format(inputs, channels_last))
            loss = loss_fn(logits.float(), labels)
            if extra_loss is not None:
                loss = loss + extra_loss()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if params.get("clip_grad_norm"):
                torch.nn.utils.clip_grad_norm_(trainable, params["clip_grad_norm"])
            optimizer.step()
            scheduler.step()
            result.steps += 1
            epoch_loss += float(loss.detach()) * len(labels)
            seen += len(labels)
        result.epochs_run = epoch
        entry = {"epoch": epoch, "train_loss": epoch_loss / max(1, seen)}
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
    if best_state is not None and result.best_epoch != result.epochs_run:
        model.load_state_dict(best_state, strict=False)
    return result


def evaluate(run: RunContext, model: nn.Module, params: dict, info: dict | None = None) -> FitResult:
    """Logits on every split and parameter counts: the end of most strategies."""
    logits = {split: predict(run, model, split, params) for split in SPLITS}
    trainable, total = count_params(model)
    return FitResult(logits=logits, trainable_params=trainable, total_params=total,
                     info=info or {}, model=model)
