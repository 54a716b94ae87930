"""What a strategy sees of its run: the built source, the splits, the device, the budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..api import SPLITS, SourceModel, Split, Splits, TargetData
from .batches import SplitBatches
from .budget import Budget
from .features import FeatureCache
from ..hashing import examples_digests


@dataclass
class RunContext:
    source: SourceModel
    target: TargetData
    splits: Splits
    seed: int
    device: torch.device
    budget: Budget
    feature_cache: FeatureCache | None = None
    on_event: Callable[[str, dict], None] = lambda kind, payload: None
    batch_size_hint: int = 64
    last_eval: dict = field(default_factory=dict)
    """Metrics of the last completed evaluation: what a timed-out run still reports."""
    _digests: dict[str, list[bytes]] = field(default_factory=dict)
    _batches: dict[str, SplitBatches] = field(default_factory=dict)
    _features: dict[str, np.ndarray] = field(default_factory=dict)
    _versions: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # in-place changes (optimiser steps, BatchNorm's step counter) bump a tensor's
        # version; moving devices does not
        self._versions = {id(t): t._version for t in self._backbone_state()}

    def _backbone_state(self):
        yield from self.source.backbone.parameters()
        yield from self.source.backbone.buffers()

    def backbone_changed(self) -> bool:
        """Whether the source's parameters or buffers (BatchNorm statistics) were changed
        in place since the run began."""
        return any(t._version != self._versions.get(id(t), t._version) for t in self._backbone_state())

    @property
    def num_classes(self) -> int:
        return self.target.num_classes

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self.splits, name)

    def check_budget(self) -> None:
        """Raise if the run is over its time or memory budget (call at step boundaries)."""
        self.budget.check()

    def note_eval(self, **metrics: Any) -> None:
        """Remember (and report to the executor) a completed evaluation."""
        self.last_eval = dict(metrics)
        self.on_event("eval", self.last_eval)

    def batches(self, name: str, batch_size: int | None = None, num_workers: int = 0) -> SplitBatches:
        """Batches of a split; a split is encoded once per run, whatever the batch size."""
        if name not in self._batches:
            split = self.split(name)
            self._batches[name] = SplitBatches(split.examples, split.labels, self.source.encode, self.device)
        return self._batches[name].resized(batch_size or self.batch_size_hint, num_workers)

    def digests(self, name: str) -> list[bytes]:
        if name not in self._digests:
            self._digests[name] = examples_digests(self.split(name).examples)
        return self._digests[name]

    def features(self, name: str, batch_size: int | None = None) -> np.ndarray:
        """Frozen features of the source on a split (float32, one row per example,
        read-only), from the feature cache when there is one; computed once per run.

        They are the source's features as built: asking for features that must be
        extracted after the backbone was trained is an error, never a stale or a
        poisoned cache entry.
        """
        if name in self._features:
            return self._features[name]
        if self.backbone_changed():  # checked before the cache: a hit would hide it
            raise RuntimeError(f"frozen features of split {name!r} were asked for after the backbone "
                               f"was trained (its parameters or BatchNorm statistics changed); "
                               f"ask for them before training")
        split = self.split(name)

        def extract(indices: list[int]) -> np.ndarray:
            subset = [split.examples[i] for i in indices]
            return self.extract_features(subset, batch_size)

        if self.feature_cache is None:
            features = np.ascontiguousarray(extract(list(range(len(split)))), dtype=np.float32)
        else:
            features = self.feature_cache.features(self.source, split.examples, extract, self.digests(name),
                                                   device=self.device.type)
        features.flags.writeable = False
        self._features[name] = features
        return features

    @torch.no_grad()
    def extract_features(self, examples: list, batch_size: int | None = None) -> np.ndarray:
        """Features of `examples` from the backbone in eval mode, in float32 (no autocast,
        so cached features do not depend on the device's mixed-precision settings)."""
        backbone = self.source.backbone
        was_training = backbone.training
        backbone.eval()
        backbone.to(self.device)
        labels = np.zeros(len(examples), dtype=np.int64)
        batches = SplitBatches(examples, labels, self.source.encode, self.device,
                               batch_size=batch_size or max(self.batch_size_hint, 128), cache_bytes=0)
        out = []
        for inputs, _ in batches.batches():
            self.check_budget()
            out.append(backbone(inputs).float().cpu().numpy())
        backbone.train(was_training)
        if not out:
            return np.zeros((0, self.source.feature_dim), dtype=np.float32)
        return np.concatenate(out)

    def new_head(self) -> torch.nn.Linear:
        """A fresh linear classifier over the source's features (seeded by the run)."""
        return torch.nn.Linear(self.source.feature_dim, self.num_classes)
