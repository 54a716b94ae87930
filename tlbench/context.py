"""What a strategy sees of its run: the built source, the splits, the device, the budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .api import SPLITS, SourceModel, Split, Splits, TargetData
from .batches import SplitBatches
from .budget import Budget
from .features import FeatureCache
from .hashing import examples_digests


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
        split = self.split(name)
        return SplitBatches(split.examples, split.labels, self.source.encode, self.device,
                            batch_size=batch_size or self.batch_size_hint, num_workers=num_workers)

    def digests(self, name: str) -> list[bytes]:
        if name not in self._digests:
            self._digests[name] = examples_digests(self.split(name).examples)
        return self._digests[name]

    def features(self, name: str, batch_size: int | None = None) -> np.ndarray:
        """Frozen-backbone features of a split, from the feature cache when there is one."""
        split = self.split(name)

        def extract(indices: list[int]) -> np.ndarray:
            subset = [split.examples[i] for i in indices]
            return self.extract_features(subset, batch_size)

        if self.feature_cache is None:
            return extract(list(range(len(split))))
        return self.feature_cache.features(self.source, split.examples, extract, self.digests(name))

    @torch.no_grad()
    def extract_features(self, examples: list, batch_size: int | None = None) -> np.ndarray:
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
