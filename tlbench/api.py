"""The plugin contract: what a source, a target, a strategy and an estimator are.

A plugin registers instances of `Source`, `Target`, `Strategy` and `Estimator`
subclasses from its hooks (see `tlbench.hookspecs`). Registration must stay cheap: import torch, timm or
transformers inside methods, never at module level, so `tlbench list` stays fast.

Data crossing this contract is plain: raw examples (image arrays, PIL images, image
files as `pathlib.Path`, or texts as strings) with integer labels in; logits out.
tlbench, not the strategy, turns logits into the accuracies that reports print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from .run.context import RunContext
    from .params import Param
    from .plugins import PluginRegistry

SPLITS = ("train", "val", "test")


@dataclass
class Env:
    """What a plugin may use while it checks, prepares or builds an item."""

    cache_dir: Path
    """Root of tlbench's on-disk caches (pretrained weights, features)."""
    device: str = "cpu"
    registry: "PluginRegistry | None" = None
    """The loaded plugins, for items built from other items (a source pretrained on a target)."""
    log: Callable[[str], None] = print


class Item:
    """Common fields of every registered item."""

    kind: ClassVar[str] = "item"
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    """Bump when results would change: it is part of every run's identity."""
    description: ClassVar[str] = ""
    """One line for `tlbench list`."""
    params: ClassVar[dict[str, "Param"]] = {}

    def check(self, params: dict, env: Env) -> None:
        """Raise `ResourceUnavailable` if what `params` name cannot be had. Cheap; runs
        before any run starts."""

    def fingerprint(self, params: dict, env: Env) -> str | None:
        """Identity of external content `params` point at (a weights file's hash, a hub
        revision), added to run identities. None when params alone identify it."""
        return None


# --------------------------------------------------------------------------- sources


@dataclass
class SourceModel:
    """A built source: a backbone that maps encoded inputs to feature vectors."""

    backbone: "torch.nn.Module"
    """Maps `encode(examples)` to a (batch, feature_dim) float tensor."""
    feature_dim: int
    modality: str
    """'image' or 'text': which targets it can take."""
    encode: Callable[[Sequence[Any]], Any]
    """Turns a list of raw examples into backbone inputs (a tensor or a dict of tensors)."""
    layer_groups: list[list[str]]
    """Backbone parameter names grouped from the input (stem) to the output (last
    block); every trainable backbone parameter appears in exactly one group."""
    weights_id: str
    """Identity of the weights (hub id and revision, file hash, or 'random:<seed>')."""
    preprocessing_id: str
    """Identity of `encode` (sizes, normalisation, tokenizer): part of feature-cache keys."""
    pretrained: bool = True
    source_head: "torch.nn.Module | None" = None
    """The source's own classifier over the same features, when it has one (LEEP)."""
    meta: dict = field(default_factory=dict)
    """Recorded in each run record: hub id, revision, weights file, data config."""


class Source(Item):
    """A pretrained model family (timm, transformers, a model trained on the spot)."""

    kind: ClassVar[str] = "source"

    def architecture(self, params: dict) -> dict:
        """The parameters that define the architecture, without the weights.

        Sources with equal architectures share one from-scratch baseline.
        """
        return dict(params)

    def prepare(self, params: dict, env: Env) -> None:
        """One-time heavy work before any run (train or convert weights into the cache)."""

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        """Build the backbone; with ``pretrained=False``, the same architecture randomly
        initialised (the from-scratch baseline). The caller has seeded torch."""
        raise NotImplementedError


# --------------------------------------------------------------------------- targets


@dataclass
class Split:
    """The examples of one split and their integer labels (0..num_classes-1).

    Examples are raw. Images: uint8 arrays, PIL images, or image files as
    `pathlib.Path`, which tlbench hashes by their bytes, so an edited image redoes the
    runs that used it. Never give an image file as a `str`: a `str` is text, hashed by
    its characters, so edits to the file would go unnoticed (the conformance kit fails
    an image target that does). Texts: strings.
    """

    examples: Sequence[Any]
    labels: "np.ndarray"

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split

    def items(self):
        return [(name, getattr(self, name)) for name in SPLITS]


class TargetData:
    """A loaded target task. Subclasses implement `splits`."""

    num_classes: int
    modality: str
    class_names: list[str]
    revision: str | None = None
    """Version of the underlying data (a data set revision, a file hash)."""

    def splits(self, seed: int) -> Splits:
        """The train / val / test splits for `seed` (few-shot sampling is seeded)."""
        raise NotImplementedError


class Target(Item):
    """A target task: labelled examples split into train / val / test."""

    kind: ClassVar[str] = "target"

    def load(self, params: dict, env: Env) -> TargetData:
        raise NotImplementedError


# --------------------------------------------------------------------------- strategies


@dataclass
class FitResult:
    """What a strategy returns: logits per split and what it trained."""

    logits: dict[str, "np.ndarray"]
    """(n_examples, num_classes) for each of 'train', 'val', 'test'."""
    trainable_params: int
    total_params: int
    info: dict = field(default_factory=dict)
    """Plain JSON data worth recording (selected epoch, chosen regularisation...)."""
    model: Any = None
    """The trained model, for inspection in tests; never recorded."""


class Strategy(Item):
    """A transfer strategy: given a built source and a target, train and predict."""

    kind: ClassVar[str] = "strategy"
    init: ClassVar[str] = "pretrained"
    """'random' to get the source architecture with random weights (from scratch)."""
    frozen_features_only: ClassVar[bool] = False
    """A declaration: the strategy only reads `run.features(...)` and leaves the backbone's
    parameters and buffers unchanged, so the feature cache may serve it. The conformance
    kit (`tlbench.testing.check_strategy`) fails a strategy that declares it and changes
    the backbone."""
    baseline_recipe: ClassVar[bool] = False
    """True if this recipe is the default from-scratch baseline of a suite (see `tlbench.plan.suite`)."""

    def fit(self, params: dict, run: "RunContext") -> FitResult:
        raise NotImplementedError


# --------------------------------------------------------------------------- estimators


class Estimator(Item):
    """A transferability estimator: scores a source for a target from frozen features of
    the target's training split, before (and next to) any fine-tuning."""

    kind: ClassVar[str] = "estimator"
    needs_source_head: ClassVar[bool] = False
    """True if the score needs the source's own classifier (`SourceModel.source_head`)."""

    def estimate(self, params: dict, run: "RunContext") -> float:
        """The score (higher: expected to transfer better). Read features with
        ``run.features("train")``; labels are ``run.split("train").labels``."""
        raise NotImplementedError


ITEM_KINDS: dict[str, type[Item]] = {"source": Source, "target": Target, "strategy": Strategy,
                                     "estimator": Estimator}
