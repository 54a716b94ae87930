"""What a strategy sees of its run: the built source, its targets by role, the seed,
the device and the budget.

Every split reaches a strategy through a `RunTarget`, and the labels it must not see
never enter one: a test split arrives with its examples only (tlbench keeps its labels
to score the predictions), and so do all splits of a role that is unlabelled by
definition (the target domain of an adaptation). Scoring is offered on the splits
whose labels the strategy holds anyway, so no selection can reach the test labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..api import SPLITS, Objective, SourceModel, Split, Splits, TargetInfo, Task
from .batches import SplitBatches
from .budget import Budget
from .features import FeatureCache
from ..hashing import examples_digests


def encoder_for(source: SourceModel, task: Task) -> Callable:
    """How `source` encodes the examples of `task`: whole images for a dense task (labels
    in image coordinates: never a crop), word lists for a word-level task (one position
    per word), else `SourceModel.encode`. A source that cannot encode words is refused in
    one line (the planner leaves out those it knows cannot)."""
    if task.words:
        if source.encode_words is None:
            why = source.meta.get("encode_words")
            raise ValueError(f"the {task.name} task's examples are word lists, which this {source.modality} source "
                             f"cannot encode (SourceModel.encode_words is None{': ' + why if why else ''})")
        return source.encode_words
    if task.dense:
        return source.encode_whole or source.encode
    return source.encode


def visible(splits: Splits, labelled: bool, revealed: tuple[str, ...] = ()) -> Splits:
    """The splits as a strategy may see them: never the test labels; for an unlabelled
    role no labels, but those of the splits the strategy asked for openly (`revealed`,
    e.g. 'val' for an oracle selection, which its record then says it read)."""
    def part(name: str) -> Split:
        split = getattr(splits, name)
        keep = name != "test" and (labelled or name in revealed)
        return Split(split.examples, split.labels if keep else None)

    return Splits(train=part("train"), val=part("val"), test=part("test"))


class RunTarget:
    """One target of a run: its examples, the labels the strategy may hold, its task and
    the task's objective for this run (made from the training labels alone)."""

    def __init__(self, host: "RunContext | LocalHost", role: str, target: TargetInfo, task: Task, splits: Splits,
                 encode: Callable, labelled: bool = True, digests: dict[str, list[bytes]] | None = None,
                 revealed: tuple[str, ...] = ()):
        self.host, self.role, self.target, self.task, self.encode = host, role, target, task, encode
        self.splits = visible(splits, labelled, revealed)
        self.labelled = labelled
        self.objective: Objective | None = task.objective(target, self.splits.train.labels) if labelled else None
        self._digests = dict(digests or {})
        self._batches: dict[str, SplitBatches] = {}

    # the run's own state, for code that trains on this target
    @property
    def device(self) -> torch.device:
        return self.host.device

    @property
    def seed(self) -> int:
        return self.host.seed

    def check_budget(self) -> None:
        self.host.check_budget()

    def note_eval(self, **metrics: Any) -> None:
        self.host.note_eval(**metrics)

    # the data
    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self.splits, name)

    def batches(self, name: str, batch_size: int | None = None, num_workers: int = 0) -> SplitBatches:
        """Batches of a split; a split is encoded once per run, whatever the batch size."""
        if name not in self._batches:
            split = self.split(name)
            targets = self.objective.targets if self.objective is not None and split.labels is not None else None
            # labels revealed to a role without an objective (an oracle's target-domain val labels)
            # are read through `split`, never batched: there is no loss to batch them for
            labels = split.labels if targets is not None else None
            self._batches[name] = SplitBatches(split.examples, labels, self.encode, self.host.device,
                                               targets=targets)
        return self._batches[name].resized(batch_size or self.host.batch_size_hint, num_workers)

    def digests(self, name: str) -> list[bytes]:
        if name not in self._digests:
            self._digests[name] = examples_digests(self.split(name).examples)
        return self._digests[name]

    def features(self, name: str, batch_size: int | None = None) -> np.ndarray:
        """Frozen pooled features of the source on a split (see `RunContext.frozen_features`)."""
        return self.host.frozen_features(self, name, batch_size)

    def layer_features(self, name: str, batch_size: int | None = None) -> np.ndarray:
        """Frozen per-layer features of a source that mixes its layers: (examples,
        mixed_layers, feature_dim), from the feature cache when there is one."""
        return self.host.frozen_features(self, name, batch_size, view="layers")

    # scoring where the strategy holds the labels
    def score(self, split: str, predictions: Any) -> dict[str, float | None]:
        """The task's metrics of `predictions` on 'train' or 'val'."""
        labels = self.split(split).labels
        if labels is None:
            raise PermissionError(f"the labels of {self.role} {split!r} are not given to strategies, so "
                                  f"predictions on it cannot be scored here")
        self.task.check_predictions(predictions, len(labels), self.target)
        return self.task.score(predictions, labels, self.target)

    def headline(self, split: str, predictions: Any) -> float | None:
        """The task's headline metric of `predictions` on 'train' or 'val'."""
        return self.score(split, predictions)[self.task.headline]


@dataclass
class LocalHost:
    """The run state a `RunTarget` needs, for training outside a suite's runs (a source
    pretrained on the spot): a device, a seed and optionally a budget."""

    device: torch.device
    seed: int
    budget: Budget | None = None
    batch_size_hint: int = 64

    def check_budget(self) -> None:
        if self.budget is not None:
            self.budget.check()

    def note_eval(self, **metrics: Any) -> None:
        pass

    def frozen_features(self, target: RunTarget, name: str, batch_size: int | None = None,
                        view: str = "pooled") -> np.ndarray:
        raise RuntimeError("frozen features come from a run's source; this target is trained outside a run")


@dataclass
class RunContext:
    """A run as its strategy sees it. The methods of `RunTarget` act on the scored target."""

    source: SourceModel
    seed: int
    device: torch.device
    budget: Budget
    feature_cache: FeatureCache | None = None
    on_event: Callable[[str, dict], None] = lambda kind, payload: None
    batch_size_hint: int = 64
    last_eval: dict = field(default_factory=dict)
    """Metrics of the last completed evaluation: what a timed-out run still reports."""
    targets: dict[str, RunTarget] = field(default_factory=dict)
    scored_role: str = "target"
    revealed: tuple[str, ...] = ()
    """'role:split' labels the strategy asked for openly (`Strategy.reveals`) and was given."""
    sampling: str | None = None
    """For a multi-task run: how its group's batches are drawn (`tlbench.api.SAMPLINGS`)."""
    references: dict = field(default_factory=dict)
    """For a multi-task run: its members' single-task validation metrics (role → {"run_id", "val"})."""
    _features: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)
    _versions: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # in-place changes (optimiser steps, BatchNorm's step counter) bump a tensor's
        # version; moving devices does not
        self._versions = {id(t): t._version for t in self._backbone_state()}

    def add_target(self, role: str, target: TargetInfo, task: Task, splits: Splits, *, labelled: bool = True,
                   scored: bool = False, digests: dict[str, list[bytes]] | None = None,
                   revealed: tuple[str, ...] = ()) -> RunTarget:
        encode = encoder_for(self.source, task)
        self.targets[role] = RunTarget(self, role, target, task, splits, encode, labelled, digests, revealed)
        if scored:
            self.scored_role = role
        return self.targets[role]

    # ------------------------------------------------------------------ targets by role

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.targets)

    def role(self, name: str) -> RunTarget:
        try:
            return self.targets[name]
        except KeyError:
            raise KeyError(f"this run has no target role {name!r}; its roles: {', '.join(self.targets)}") from None

    @property
    def scored(self) -> RunTarget:
        return self.targets[self.scored_role]

    @property
    def target(self) -> TargetInfo:
        return self.scored.target

    @property
    def task(self) -> Task:
        return self.scored.task

    @property
    def objective(self) -> Objective | None:
        return self.scored.objective

    @property
    def num_classes(self) -> int:
        return self.scored.target.num_classes

    def split(self, name: str) -> Split:
        return self.scored.split(name)

    def batches(self, name: str, batch_size: int | None = None, num_workers: int = 0) -> SplitBatches:
        return self.scored.batches(name, batch_size, num_workers)

    def digests(self, name: str) -> list[bytes]:
        return self.scored.digests(name)

    def features(self, name: str, batch_size: int | None = None) -> np.ndarray:
        return self.scored.features(name, batch_size)

    def layer_features(self, name: str, batch_size: int | None = None) -> np.ndarray:
        return self.scored.layer_features(name, batch_size)

    def score(self, split: str, predictions: Any) -> dict[str, float | None]:
        return self.scored.score(split, predictions)

    def headline(self, split: str, predictions: Any) -> float | None:
        return self.scored.headline(split, predictions)

    def new_head(self) -> torch.nn.Module:
        """A fresh head for the scored target's task (seeded by the run)."""
        return self.scored.objective.head(self.source)

    # ------------------------------------------------------------------ the run

    def check_budget(self) -> None:
        """Raise if the run is over its time or memory budget (call at step boundaries)."""
        self.budget.check()

    def note_eval(self, **metrics: Any) -> None:
        """Remember (and report to the executor) a completed evaluation."""
        self.last_eval = dict(metrics)
        self.on_event("eval", self.last_eval)

    def _backbone_state(self):
        yield from self.source.backbone.parameters()
        yield from self.source.backbone.buffers()

    def backbone_changed(self) -> bool:
        """Whether the source's parameters or buffers (BatchNorm statistics) were changed
        in place since the run began."""
        return any(t._version != self._versions.get(id(t), t._version) for t in self._backbone_state())

    def frozen_features(self, target: RunTarget, name: str, batch_size: int | None = None,
                        view: str = "pooled") -> np.ndarray:
        """Frozen features of the source on a split of `target` (float32, one row per
        example, read-only), from the feature cache when there is one; computed once per run.
        `view` 'layers': the per-layer features of a source that mixes its layers,
        (examples, mixed_layers, feature_dim).

        They are the source's features as built: asking for features that must be
        extracted after the backbone was trained is an error, never a stale or a
        poisoned cache entry.
        """
        layers = self.source.mixed_layers
        if view == "layers" and not layers:
            raise ValueError("per-layer features: this source does not mix its layers (SourceModel.mixed_layers)")
        key = (target.role, name, view)
        if key in self._features:
            return self._features[key]
        if self.backbone_changed():  # checked before the cache: a hit would hide it
            raise RuntimeError(f"frozen features of split {name!r} were asked for after the backbone "
                               f"was trained (its parameters or BatchNorm statistics changed); "
                               f"ask for them before training")
        split = target.split(name)

        def extract(indices: list[int]) -> np.ndarray:
            subset = [split.examples[i] for i in indices]
            return self.extract_features(subset, batch_size, view)

        if self.feature_cache is None:
            features = np.ascontiguousarray(extract(list(range(len(split)))), dtype=np.float32)
        else:
            features = self.feature_cache.features(self.source, split.examples, extract, target.digests(name),
                                                   device=self.device.type, view=view)
        if view == "layers":
            features = features.reshape(len(features), layers, self.source.feature_dim)
        features.flags.writeable = False
        self._features[key] = features
        return features

    @torch.no_grad()
    def extract_features(self, examples: list, batch_size: int | None = None, view: str = "pooled") -> np.ndarray:
        """Features of `examples` from the backbone in eval mode, in float32 (no autocast,
        so cached features do not depend on the device's mixed-precision settings); `view`
        'layers': every mixed layer's, flattened to one row per example."""
        backbone = self.source.backbone
        was_training = backbone.training
        backbone.eval()
        backbone.to(self.device)
        batches = SplitBatches(examples, None, self.source.encode, self.device,
                               batch_size=batch_size or max(self.batch_size_hint, 128), cache_bytes=0)
        out = []
        for inputs, _ in batches.batches():
            self.check_budget()
            features = backbone(inputs) if view == "pooled" else backbone.forward_layers(inputs).flatten(1)
            out.append(features.float().cpu().numpy())
        backbone.train(was_training)
        if not out:
            width = self.source.feature_dim * (self.source.mixed_layers if view == "layers" else 1)
            return np.zeros((0, width), dtype=np.float32)
        return np.concatenate(out)


def supervised_target(splits: Splits, target, task: Task, encode: Callable, device: str | torch.device,
                      seed: int, budget: Budget | None = None) -> RunTarget:
    """A labelled target to train a model on outside a suite's runs (a source pretrained
    on the spot), with the same engine, batching and selection as a run: `target` is the
    loaded `TargetData` (or its `TargetInfo`), `task` its task item."""
    info = target.info() if hasattr(target, "info") else target
    host = LocalHost(device=torch.device(device), seed=seed, budget=budget)
    return RunTarget(host, "target", info, task, splits, encode)
