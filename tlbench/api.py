"""The plugin contract: what a source, a target, a task, a strategy and an estimator are.

A plugin registers instances of `Source`, `Target`, `Task`, `Strategy` and `Estimator`
subclasses from its hooks (see `tlbench.hookspecs`). Registration must stay cheap:
import torch, timm or transformers inside methods, never at module level, so
`tlbench list` stays fast.

Data crossing this contract is plain. A target gives raw examples (image arrays, PIL
images, image files as `pathlib.Path`, texts as strings, or audio as `Waveform`s or
audio files) with labels whose form its
*task type* defines: class ids, multi-hot rows, float values, boxes, masks, tag
sequences. The task type owns everything that depends on that form: it validates and
hashes labels, puts a head on the source's features, gives the loss, and turns
predictions into metrics, one of which is the headline. A strategy returns predictions;
tlbench, not the strategy, scores them. A strategy is never handed the test split's
labels, so nothing it trains or selects can have seen them.

This module is a leaf: it imports nothing of tlbench at run time. What a strategy sees
of its run (`RunContext`) and of the loaded plugins (`Registry`) are Protocols, which
tlbench's own classes satisfy.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from .params import Param

SPLITS = ("train", "val", "test")
MODALITIES = ("image", "text", "audio")
REPRESENTATIONS = ("pooled", "feature_maps", "tokens")
"""What a source's backbone can give a head: one vector per example; feature maps
(batch, channels, height, width) at several strides; token sequences (batch, tokens,
dim) with their attention mask."""

SAMPLINGS = ("shared", "round-robin", "proportional")
"""How a task group's training batches are drawn. 'shared': the members have the same
examples (boxes, masks and labels of the same images), so each step is one batch of
examples with every member's labels, and the backbone runs once for all heads.
'round-robin': the members' examples differ; each step takes one batch from every member
in turn (a round), so every step has every task's loss, and an epoch is as many rounds as
the largest member has batches (smaller members cycle, reshuffled at each pass).
'proportional': each step takes one batch from one member, drawn with probability
proportional to its training split's size (seeded by the run), and an epoch is as many
steps as all members have batches together."""


# --------------------------------------------------------------------------- plumbing


class Registered(Protocol):
    """A registered item and the plugin that registered it."""

    item: "Item"

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


class Registry(Protocol):
    """The loaded plugins: items by kind ('source', 'target', 'task', ...) and name."""

    def get(self, kind: str, name: str) -> Registered: ...

    def items(self, kind: str) -> list[Registered]: ...


@dataclass
class Env:
    """What a plugin may use while it checks, prepares or builds an item."""

    cache_dir: Path
    """Root of tlbench's on-disk caches (pretrained weights, features)."""
    device: str = "cpu"
    registry: Registry | None = None
    """The loaded plugins, for items built from other items (a source pretrained on a target)."""
    log: Callable[[str], None] = print
    seed: int | None = None
    """The run's seed while a source is prepared or built for a run; None at plan time and
    when a source whose weights do not depend on it (`Source.seeded`) is prepared."""


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
        """Raise `ResourceUnavailable` if what `params` name cannot be had, or `ParamError`
        for parameters that contradict each other. Cheap; runs before any run starts."""

    def fingerprint(self, params: dict, env: Env) -> str | None:
        """Identity of external content `params` point at (a weights file's hash, a hub
        revision), added to run identities. None when params alone identify it."""
        return None


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class MetricSpec:
    """One metric a task reports: its name, which way is better, and its range."""

    name: str
    """Column name in results and reports ('accuracy', 'r2', 'mAP'): letters, digits, '_'."""
    higher_is_better: bool = True
    low: float | None = None
    """The smallest value the metric can take (None: unbounded); intervals are cut to the range."""
    high: float | None = None
    description: str = ""
    """What the metric is and which implementation computes it, for reports."""

    def to_json(self) -> dict:
        return {"name": self.name, "higher_is_better": self.higher_is_better, "low": self.low,
                "high": self.high, "description": self.description}

    @classmethod
    def from_json(cls, data: dict) -> "MetricSpec":
        return cls(name=data["name"], higher_is_better=bool(data.get("higher_is_better", True)),
                   low=data.get("low"), high=data.get("high"), description=data.get("description", ""))


# --------------------------------------------------------------------------- audio


@dataclass(frozen=True, eq=False)
class Waveform:
    """One raw audio example: samples and their sampling rate.

    `samples` is a float array in [-1, 1], (frames,) for mono or (channels, frames).
    Targets may give audio files as `pathlib.Path` instead (WAV, FLAC, OGG: what
    libsndfile reads), which tlbench hashes by their bytes."""

    samples: "np.ndarray"
    rate: int


@dataclass(frozen=True)
class AudioInput:
    """The audio a source takes: tlbench turns every audio example into this before the
    source's `encode` sees it (resampled with soxr, mixed down to mono by averaging the
    channels, cropped or zero-padded), and records what it did in the run's record
    (``details.source.audio``)."""

    rate: int
    """Samples per second the model expects (16,000 for wav2vec 2.0, HuBERT, WavLM and Whisper)."""
    seconds: float | None = None
    """Crop or pad every example to this length (Whisper: 30 s); None keeps each example's
    own length (the source pads a batch itself)."""
    crop: str = "start"
    """Which part a crop keeps: 'start' or 'center'."""

    def to_json(self) -> dict:
        return {"rate": self.rate, "seconds": self.seconds, "crop": self.crop}


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class FeatureLevel:
    """One level of a backbone's feature maps."""

    channels: int
    stride: int
    """Input pixels per feature-map pixel (4, 8, 16, 32 ...)."""


@dataclass
class SourceModel:
    """A built source: a backbone that maps encoded inputs to features.

    Every backbone gives pooled vectors: ``backbone(inputs)`` is a (batch, feature_dim)
    tensor. A backbone may also give the other `REPRESENTATIONS`, declared here and
    computed by methods of the backbone module, so that a head trained on them trains
    the very parameters the pooled path uses:

    - feature maps: ``backbone.forward_feature_maps(inputs)`` returns a list of
      (batch, channels, height, width) tensors, one per entry of `feature_levels`;
    - token sequences: ``backbone.forward_tokens(inputs)`` returns ``(hidden, mask)``,
      hidden (batch, tokens, token_dim) and mask (batch, tokens) with 1 for real tokens;
    - words: on inputs from `encode_words` (examples that are lists of words), the same
      ``forward_tokens`` gives ONE position per word instead, the vector of the word's
      first sub-token (gathered inside the backbone from word positions the encoder put
      into the inputs): hidden (batch, words, token_dim) and mask (batch, words) with 1
      for a word that has a vector, 0 after the example's last word, and -1 for a word
      that has none (cut off by the model's maximum length, or given no sub-token by the
      tokenizer), whose hidden row is zeros. So ``mask != 0`` counts an example's words
      (one prediction each) and ``mask == 1`` marks those a head can train on.

    A backbone whose pooled vector is a learnable mix of its layers (SUPERB's weighted
    sum of hidden states) declares how many it mixes (`mixed_layers`) and gives them
    unmixed, ``backbone.forward_layers(inputs)``: (batch, mixed_layers, feature_dim), and
    takes a mix, ``backbone.set_layer_mix(weights)`` (one weight per layer, summing to
    one), held in its parameter ``backbone.layer_weights``: so a strategy that keeps the
    backbone frozen can still learn the mix, from cached per-layer features
    (`RunTarget.layer_features`), and leave it in the model (the only backbone state a
    ``frozen_features_only`` strategy may change).
    """

    backbone: "torch.nn.Module"
    """Maps `encode(examples)` to a (batch, feature_dim) float tensor."""
    feature_dim: int
    modality: str
    """'image', 'text' or 'audio': which targets it can take."""
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
    """The source's own classifier over the pooled features, when it has one (LEEP)."""
    meta: dict = field(default_factory=dict)
    """Recorded in each run record: hub id, revision, weights file, data config."""
    feature_levels: list[FeatureLevel] | None = None
    """The levels of ``backbone.forward_feature_maps``; None when it gives none."""
    token_dim: int | None = None
    """The width of ``backbone.forward_tokens``'s hidden states; None when it gives none."""
    audio: AudioInput | None = None
    """For an audio source: the rate and length it takes. tlbench conditions the target's
    audio to it, so `encode` receives `Waveform`s of one rate, mono, (frames,)."""
    mixed_layers: int | None = None
    """How many layers the pooled vector mixes with learnable weights (see above); None
    when it mixes none."""
    encode_whole: Callable[[Sequence[Any]], Any] | None = None
    """For images: `encode` without cropping, the whole image resized to the input size,
    which dense tasks (`Task.dense`) use, so that a prediction maps back onto its image
    by resizing. None when the source has no such encoding (or `encode` never crops)."""
    encode_words: Callable[[Sequence[Sequence[str]]], Any] | None = None
    """For text: pre-tokenised examples (each a list of words) to backbone inputs on
    which ``backbone.forward_tokens`` gives one position per word (see above), which
    word-level tasks (`Task.words`) use, so that their heads and losses need no
    tokenizer. None when the source cannot map its sub-tokens back to words."""
    task_heads: dict[str, Callable[[int], "torch.nn.Module"]] = field(default_factory=dict)
    """Heads a source brings for task types, by task name: given the number of classes,
    the source's own neck and head (a COCO detector's feature pyramid and box head, a
    segmentation model's decoder) with a fresh class-specific predictor, pretrained
    when the source is and random otherwise, in the form that task's objective reads
    (the task's docstring says which). An objective takes it over a head of its own, so
    transfer keeps everything but the predictor."""

    @property
    def representations(self) -> tuple[str, ...]:
        return tuple(name for name, has in (("pooled", True), ("feature_maps", bool(self.feature_levels)),
                                            ("tokens", self.token_dim is not None)) if has)


@dataclass(frozen=True)
class SourceCapabilities:
    """What a source will offer once built, as far as its parameters tell without
    building it: the planner leaves out combinations that cannot work. None: unknown
    until built (then a mismatch is found by the run)."""

    modality: str | None = None
    representations: tuple[str, ...] = ("pooled",)
    source_head: bool | None = None
    """Whether the built source has its own classifier (`SourceModel.source_head`)."""
    words: bool | None = False
    """Whether the built source will encode word lists (`SourceModel.encode_words`), which
    word-level tasks (`Task.words`) need."""


class Source(Item):
    """A pretrained model family (timm, transformers, a model trained on the spot)."""

    kind: ClassVar[str] = "source"
    network: ClassVar[str | None] = None
    """A namespace in which `architecture` dicts are compared across plugins, e.g. "timm"
    for networks `timm.create_model` builds from the dict's values. Sources of any
    plugins whose namespaces and architectures are equal build the same network from a
    random initialisation, so a suite gives them one from-scratch baseline per target and
    seed. Declare one only when your `build(pretrained=False)` gives exactly the network
    others in that namespace build from an equal dict; None (the default) keeps your
    architectures to your plugin, even where another plugin's dicts look alike."""

    def architecture(self, params: dict) -> dict:
        """The parameters that define the architecture, without the weights, as plain
        JSON: what a random initialisation of this source trains (its from-scratch
        baseline). No local paths: a model folder is identified by its config's content.

        Sources of one plugin with equal architectures share one from-scratch baseline
        (across plugins too, with a `network` namespace).
        """
        return dict(params)

    def capabilities(self, params: dict) -> SourceCapabilities:
        """What the built source will offer (cheap: no weights are read)."""
        return SourceCapabilities()

    def seeded(self, params: dict) -> bool:
        """Whether these params give weights that depend on the run's seed (a source
        pretrained here once per seed). Such a source is prepared once per seed, with
        `Env.seed` set, and built with the run's seed, so the spread over seeds includes
        the pretraining's own randomness; its `fingerprint` names the recipe, not one
        seed's weights (the run's seed is in the run's identity already)."""
        return False

    def prepare(self, params: dict, env: Env) -> None:
        """One-time heavy work before any run (train or convert weights into the cache);
        once per seed, with `env.seed`, for a `seeded` source."""

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        """Build the backbone; with ``pretrained=False``, the same architecture randomly
        initialised (the from-scratch baseline). The caller has seeded torch."""
        raise NotImplementedError


# --------------------------------------------------------------------------- targets


@dataclass
class Split:
    """The examples of one split and their labels, whose form the target's task defines.

    Examples are raw. Images: uint8 arrays, PIL images, or image files as
    `pathlib.Path`, which tlbench hashes by their bytes, so an edited image redoes the
    runs that used it. Never give an image file as a `str`: a `str` is text, hashed by
    its characters, so edits to the file would go unnoticed (the conformance kit fails
    an image target that does). Texts: strings (for a word-level task, `Task.words`: lists
    of words). Audio: `Waveform`s, or audio files as
    `pathlib.Path` (hashed by their bytes, as images).

    Labels are one per example (an array with one row per example, or a list). They are
    None where the strategy must not see them: the test split (tlbench keeps its labels
    for scoring) and unlabelled data.
    """

    examples: Sequence[Any]
    labels: Any = None

    def __len__(self) -> int:
        return len(self.examples)


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split

    def items(self):
        return [(name, getattr(self, name)) for name in SPLITS]


@dataclass(frozen=True)
class TargetInfo:
    """What a strategy may know about its target besides the examples and labels it is
    given: no way to reach the test labels."""

    task: str
    num_classes: int
    class_names: tuple[str, ...]
    modality: str
    revision: str | None = None
    class_ids: tuple[int, ...] | None = None
    """The data's own id of each class where it is not its index (COCO category ids)."""


class TargetData:
    """A loaded target task. Subclasses implement `splits`."""

    task: str = "classification"
    """The task type of the labels (a registered `Task`): 'classification', 'multilabel',
    'regression', or one a plugin adds."""
    num_classes: int
    """The size of the label space: classes (classification, multi-label and the dense
    tasks) or predicted values (regression)."""
    class_names: list[str]
    """One name per class (per predicted value for regression)."""
    modality: str
    revision: str | None = None
    """Version of the underlying data (a data set revision, a file hash). For a target
    with path parameters (`Param.path`), which stay out of run identities, it stands in
    for where the data lie: make it identify the data wherever they are (a hash of the
    file, a digest of a folder's listing relative to its root), never their path."""
    class_ids: list[int] | None = None
    """The data's own id of each class, where it is not the class's index: a COCO file's
    category ids, which need not start at 0 nor be contiguous. Recorded with each run, and
    saved predictions use them, so they can be scored against the data's own files."""

    def splits(self, seed: int) -> Splits:
        """The train / val / test splits for `seed` (few-shot sampling is seeded)."""
        raise NotImplementedError

    def info(self) -> TargetInfo:
        return TargetInfo(task=self.task, num_classes=int(self.num_classes),
                          class_names=tuple(str(name) for name in self.class_names),
                          modality=self.modality, revision=self.revision,
                          class_ids=None if self.class_ids is None else tuple(int(i) for i in self.class_ids))


class Target(Item):
    """A target task: labelled examples split into train / val / test."""

    kind: ClassVar[str] = "target"

    def task(self, params: dict) -> str:
        """The task type of the labels `load(params)` gives (cheap: no data is read); the
        loaded `TargetData.task` must agree."""
        return "classification"

    def modality(self, params: dict) -> str | None:
        """The modality of the examples `load(params)` gives, or None when only the data tells."""
        return None

    def load(self, params: dict, env: Env) -> TargetData:
        raise NotImplementedError

    def load_offline(self, params: dict, env: Env) -> TargetData | None:
        """The target loaded from what this machine already has, for `tlbench run
        --dry-run`, which checks the parameters against the data (classes, sizes, the
        image files the splits draw) and never downloads: None when loading would need
        the network (a hub data set not in the cache yet); the real run checks it then.
        By default `load`, for targets that never download."""
        return self.load(params, env)


# --------------------------------------------------------------------------- tasks


class Objective:
    """What training on one target optimises: a head, a loss and how outputs become
    predictions. A task makes one per run, from the training labels only (a regression
    task standardises targets with the training split's mean and standard deviation)."""

    def head(self, source: SourceModel) -> "torch.nn.Module":
        """A fresh head over the source representation the task reads (seeded by the run)."""
        raise NotImplementedError

    def targets(self, labels: Sequence[Any]) -> Any:
        """The labels of some examples as the loss takes them: a tensor with one row per
        example, or a list. Row-wise, so batches can be cut from a whole split's."""
        raise NotImplementedError

    def loss(self, outputs: Any, targets: Any) -> "torch.Tensor":
        """The mean loss of a batch: the head's `outputs` against `targets(labels)`."""
        raise NotImplementedError

    def predictions(self, outputs: Any) -> Any:
        """A batch's outputs as predictions the task scores: a numpy array with one row per
        example, or a list with one item per example (on the CPU)."""
        raise NotImplementedError

    def configure(self, knobs: dict) -> "Objective":
        """The objective under the training engine's knobs (see `tlbench.training`), e.g.
        a classification loss with the knob `label_smoothing`; by default unchanged."""
        return self

    def info(self) -> dict:
        """Plain JSON worth recording (the standardisation a regression used)."""
        return {}


class Task(Item):
    """A task type: what a target's labels are, what a model predicts for them, and how
    predictions are scored. Targets name it (`TargetData.task`); every strategy that
    trains through tlbench's engine gets its head, loss and predictions from it."""

    kind: ClassVar[str] = "task"
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    """Every metric `score` returns, described."""
    headline: ClassVar[str] = ""
    """The metric that selects checkpoints and ranks entries; its gap and negative-transfer
    scores are reported. One of `metrics`."""
    representation: ClassVar[str] = "pooled"
    """What the head reads (one of `REPRESENTATIONS`); sources that cannot give it are
    left out of the matrix."""
    dense: ClassVar[bool] = False
    """Labels in the image's own coordinates (a mask per pixel, boxes): the task's inputs
    are encoded whole (`SourceModel.encode_whole`), never cropped, so outputs map back
    onto each image by resizing."""
    words: ClassVar[bool] = False
    """Examples are lists of words (pre-tokenised text) and labels one per word: the task's
    inputs are encoded with `SourceModel.encode_words`, and its head reads one position
    per word from ``forward_tokens`` (`representation` 'tokens'); sources that cannot
    encode words are left out of the matrix."""
    linear_loss: ClassVar[str | None] = None
    """When the head is one linear layer on pooled features trained with a standard loss:
    'softmax' (cross-entropy over classes), 'sigmoid' (binary cross-entropy per class) or
    'squared' (squared error on `Objective.targets`); solvers that fit such heads in
    closed form (a linear probe) serve the task then. None otherwise."""

    def check_labels(self, labels: Any, target: TargetInfo, split: str) -> None:
        """Raise ValueError with one line naming the first label of `split` that cannot be
        valid for this task (wrong shape, out of range, not finite)."""

    def label_bytes(self, label: Any) -> bytes:
        """Bytes that identify one label in content hashes, losslessly. The default encodes
        integers as 64-bit, floats as IEEE doubles, numpy arrays by dtype, shape and bytes,
        and strings, lists, tuples and dicts of these; override it for other labels."""
        return canonical_label_bytes(label)

    def objective(self, target: TargetInfo, train_labels: Any) -> Objective:
        raise NotImplementedError

    def check_predictions(self, predictions: Any, n: int, target: TargetInfo) -> None:
        """Raise ValueError when `predictions` cannot be scored (wrong count or shape)."""

    def score(self, predictions: Any, labels: Any, target: TargetInfo) -> dict[str, float | None]:
        """Every metric in `metrics` for one split, from maintained implementations."""
        raise NotImplementedError

    def saved_predictions(self, predictions: Any, labels: Any, target: TargetInfo) -> Any:
        """A split's predictions as `save_predictions` keeps them: in the format other tools
        read for this task (COCO results for boxes), which may need what the labels say of
        each example (its size, the data's own id). By default the predictions as they are."""
        return predictions

    def metric(self, name: str) -> MetricSpec:
        for spec in self.metrics:
            if spec.name == name:
                return spec
        raise KeyError(f"task {self.name!r} has no metric {name!r}")


def canonical_label_bytes(label: Any) -> bytes:
    """The default label encoding of `Task.label_bytes` (see there).

    A class id keeps the 8-byte form tlbench has always hashed, so classification
    content hashes (and run ids) stay what they were; every other form is tagged and
    digested, so a float never collides with an int or a list with an array.
    """
    if _is_integer(label):
        return int(label).to_bytes(8, "little", signed=True)
    digest = hashlib.blake2b(digest_size=16)
    _feed(digest, label)
    return b"\x00" + digest.digest()


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return hasattr(value, "dtype") and getattr(value, "shape", None) == () and value.dtype.kind in "iu"


def _feed(digest, value: Any) -> None:
    if value is None:
        digest.update(b"n")
    elif isinstance(value, bool) or (hasattr(value, "dtype") and getattr(value, "shape", None) == ()
                                     and value.dtype.kind == "b"):
        digest.update(b"?1" if bool(value) else b"?0")
    elif _is_integer(value):
        digest.update(b"i" + int(value).to_bytes(8, "little", signed=True))
    elif isinstance(value, float) or (hasattr(value, "dtype") and getattr(value, "shape", None) == ()
                                      and value.dtype.kind == "f"):
        digest.update(b"f" + struct.pack("<d", float(value)))
    elif isinstance(value, str):
        encoded = value.encode("utf-8")
        digest.update(b"s" + len(encoded).to_bytes(8, "little") + encoded)
    elif hasattr(value, "tobytes") and hasattr(value, "dtype") and hasattr(value, "shape"):
        head = f"a{value.dtype.str}{tuple(value.shape)}".encode()
        digest.update(len(head).to_bytes(8, "little") + head)
        digest.update(value.tobytes(order="C"))
    elif isinstance(value, (list, tuple)):
        digest.update(b"l" + len(value).to_bytes(8, "little"))
        for item in value:
            _feed(digest, item)
    elif isinstance(value, dict):
        digest.update(b"d" + len(value).to_bytes(8, "little"))
        for key in sorted(value, key=str):
            _feed(digest, str(key))
            _feed(digest, value[key])
    else:
        encoded = json.dumps(value, sort_keys=True, default=str).encode("utf-8")
        digest.update(b"j" + len(encoded).to_bytes(8, "little") + encoded)


# --------------------------------------------------------------------------- what strategies need


@dataclass(frozen=True)
class Role:
    """A target a strategy trains on or is scored on. A plain strategy has one, 'target',
    labelled and scored; domain adaptation has a labelled one and an unlabelled, scored
    one; multi-task learning several."""

    name: str = "target"
    labelled: bool = True
    """Whether the strategy gets this target's training labels (False: unlabelled data)."""
    scored: bool = True
    """Whether the run is scored on this target's test split."""


@dataclass(frozen=True)
class Requirements:
    """What a strategy or estimator needs; the planner leaves out every combination of
    source, target and recipe that cannot meet it, and the dry run says why."""

    tasks: tuple[str, ...] | None = ("classification",)
    """Task types it supports; None: any task (it trains through the task's objective)."""
    linear_head: bool = False
    """The task must declare a `Task.linear_loss` (it fits linear heads in closed form)."""
    modalities: tuple[str, ...] | None = None
    """Input modalities it supports; None: any."""
    roles: tuple[Role, ...] = (Role(),)
    """The targets a run takes, by role: one plain target unless it says otherwise."""
    source_head: bool = False
    """It needs the source's own classifier (`SourceModel.source_head`)."""
    multitask: bool = False
    """It trains one model on a task group (a suite's ``[[groups]]`` with ``tasks``): two or
    more labelled targets, each scored, each in the role named by its target id (`roles`
    is not read then). Its runs are of the kind 'multitask', compared member by member
    with the single-task runs of `Strategy.compared_with` on the same source and seed."""
    samplings: tuple[str, ...] = SAMPLINGS
    """For a multi-task strategy: the group samplings it supports (`SAMPLINGS`)."""


# --------------------------------------------------------------------------- strategies


class FitResult:
    """What a strategy returns: predictions per split and what it trained."""

    def __init__(self, predictions: dict[str, Any] | None = None, trainable_params: int = 0,
                 total_params: int = 0, info: dict | None = None, model: Any = None, *,
                 logits: dict[str, Any] | None = None, selection: dict | None = None,
                 role_predictions: dict[str, dict[str, Any]] | None = None):
        self.predictions: dict[str, Any] = dict(predictions if predictions is not None else logits or {})
        """For each of 'train', 'val' and 'test', in the form the task scores
        (classification: (n_examples, num_classes) logits). `logits=` is accepted too."""
        self.trainable_params = trainable_params
        self.total_params = total_params
        self.info: dict = info or {}
        """Plain JSON data worth recording (selected epoch, chosen regularisation...)."""
        self.model = model
        """The trained model, for inspection in tests; never recorded."""
        self.role_predictions: dict[str, dict[str, Any]] = dict(role_predictions or {})
        """Predictions for the splits of targets other than the scored one, by role, when the
        strategy has them (a source domain's test split, for the domain gap): tlbench scores
        them too, into the record's `by_role`."""
        self.selection = selection
        """How the strategy chose what it returns, when it chose (recorded as the run's
        `selection`): the rule, the metric, its direction, and what it read as
        'role:split:labels' or 'role:split', e.g. {"rule": "val", "metric": "val_accuracy",
        "higher_is_better": true, "reads": ["target:val:labels"]}."""

    @property
    def logits(self) -> dict[str, Any]:
        """The predictions under the name classification gives them."""
        return self.predictions


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
    requires: ClassVar[Requirements] = Requirements()
    compared_with: ClassVar[str | None] = None
    """The plugin of the recipe this strategy's runs are compared with, run for run (same
    source, targets and seed): for a domain-adaptation method, training on the labelled
    domain alone (ERM). tlbench plans that recipe when the suite has no entry of it (with
    the knobs of the first entry that asks for it), records each run's difference to it
    (`nt_vs_<plugin>`), and trains it from a random initialisation as the from-scratch
    baseline of the runs on those targets."""

    def reveals(self, params: dict) -> tuple[str, ...]:
        """Labels an unlabelled role withholds that these `params` openly ask for, as
        'role:split' ('unlabelled:val' for a selection on the target domain's validation
        labels, an oracle); never a test split. The record's selection says it read them."""
        return ()

    def fit(self, params: dict, run: "RunContext") -> FitResult:
        raise NotImplementedError


# --------------------------------------------------------------------------- estimators


class Estimator(Item):
    """A transferability estimator: scores a source for a target from frozen features of
    the target's training split, before (and next to) any fine-tuning."""

    kind: ClassVar[str] = "estimator"
    requires: ClassVar[Requirements] = Requirements()

    def estimate(self, params: dict, run: "RunContext") -> float:
        """The score (higher: expected to transfer better). Read features with
        ``run.features("train")``; labels are ``run.split("train").labels``."""
        raise NotImplementedError


# --------------------------------------------------------------------------- what a run offers


class TargetView(Protocol):
    """One target of a run, as a strategy sees it (`RunContext.role`)."""

    target: TargetInfo
    task: Task
    objective: Objective
    """The task's objective for this run, made from the training labels (None without them)."""

    def split(self, name: str) -> Split:
        """A split's examples, and its labels unless the strategy must not see them."""

    def batches(self, name: str, batch_size: int | None = None, num_workers: int = 0) -> Any:
        """The split as device batches of (inputs, loss targets or None)."""

    def features(self, name: str, batch_size: int | None = None) -> "np.ndarray":
        """Frozen pooled features of the source on a split (from the feature cache)."""

    def score(self, split: str, predictions: Any) -> dict[str, float | None]:
        """The task's metrics of predictions on 'train' or 'val' (never 'test')."""


class RunContext(TargetView, Protocol):
    """What a strategy sees of its run: the built source, its targets by role (the
    methods of `TargetView` act on the scored one), the seed, the device and the budget."""

    source: SourceModel
    seed: int
    device: "torch.device"
    roles: tuple[str, ...]

    @property
    def num_classes(self) -> int: ...

    def role(self, name: str) -> TargetView: ...

    @property
    def sampling(self) -> str | None:
        """For a multi-task run: how its group's batches are drawn (`SAMPLINGS`); else None."""

    @property
    def references(self) -> dict[str, dict]:
        """For a multi-task run: by member role, the validation metrics of the single-task
        run it is compared with (same recipe, source and seed), ``{"run_id": ..., "val":
        {metric: value}}``, which its checkpoint selection normalises by; empty otherwise
        (and for a member whose single-task run did not finish)."""

    def new_head(self) -> "torch.nn.Module":
        """A fresh head for the scored target's task (seeded by the run)."""

    def check_budget(self) -> None:
        """Raise if the run is over its time or memory budget (call at step boundaries)."""

    def note_eval(self, **metrics: Any) -> None:
        """Remember (and report to the executor) a completed evaluation."""


ITEM_KINDS: dict[str, type[Item]] = {"source": Source, "target": Target, "task": Task, "strategy": Strategy,
                                     "estimator": Estimator}
