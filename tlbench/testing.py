"""Conformance checks for plugin authors: does a source, target or strategy keep
tlbench's contract?

Each check raises `AssertionError` with a message naming the item and what is wrong,
so it works from pytest and from a plain script::

    from tlbench.testing import check_source, check_strategy, check_target

    check_source("my-source", {"width": 8})
    check_target("my-target", {"shots": 2})
    check_strategy("my-strategy", {"epochs": 1})

Items are named (looked up among the installed plugins, which also proves the entry
point works and that importing the plugin stays light) or passed as instances.
`check_strategy` runs the strategy through tlbench's own execution path (a `RunSpec`
with its run identity, executed by a `Worker`) on a tiny source and target: the kit's
own `TinySource` and `TinyTarget` unless others are given.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api import SPLITS, Env, FitResult, Source, SourceModel, Split, Splits, Strategy, Target, TargetData
from .params import Param, check_value, resolve_params
from .plugins import Origin, PluginRegistry, Registered

HEAVY_MODULES = ("torch", "timm", "transformers", "datasets", "peft")
"""What a plugin module must not import at module level (``tlbench list`` stays light)."""

MODALITIES = ("image", "text")

ItemRef = Any
"""A registered name, an item instance, or a (name or instance, params) pair."""


def fail(reg: Registered, message: str) -> None:
    raise AssertionError(f"{reg.item.kind} {reg.name!r} ({reg.origin}): {message}")


@functools.lru_cache(maxsize=1)
def installed_plugins() -> PluginRegistry:
    """The installed plugins, loaded once (problems are kept, not raised)."""
    return PluginRegistry.load(strict=False)


def resolve(kind: str, ref: ItemRef, params: dict | None = None,
            registry: PluginRegistry | None = None) -> tuple[Registered, dict]:
    """The registered item `ref` names, and `params` validated against its schema."""
    if isinstance(ref, tuple):
        ref, params = ref
    if isinstance(ref, str):
        reg = (registry or installed_plugins()).get(kind, ref)
    else:  # an instance: not imported through a plugin module, so no import check
        reg = Registered(ref, Origin(plugin=type(ref).__module__))
    check_item(reg)
    where = f"{kind} {reg.name!r} params"
    return reg, resolve_params(reg.item.params, dict(params or {}), where)


def check_item(reg: Registered) -> None:
    """Fields every item needs: a name, a version, one line for `tlbench list`, a schema
    whose defaults pass their own checks."""
    item = reg.item
    if not isinstance(item.version, str) or not item.version.strip():
        fail(reg, "version must be a non-empty string (bump it when results would change)")
    if not isinstance(item.description, str) or not item.description.strip() or "\n" in item.description:
        fail(reg, "description must be one non-empty line (shown by `tlbench list`)")
    for key, param in item.params.items():
        if not isinstance(param, Param):
            fail(reg, f"params[{key!r}] must be a tlbench.params.Param")
        if not param.help.strip():
            fail(reg, f"params[{key!r}] has no help text (shown by `tlbench list --json`)")
        if not param.required:
            try:
                check_value(param, param.default, f"params[{key!r}].default")
            except Exception as exc:
                fail(reg, f"its default does not pass its own schema: {exc}")
    if reg.origin.module:
        heavy = heavy_imports(reg.origin.module.split(":")[0])
        if heavy:
            fail(reg, f"importing {reg.origin.module} imports {', '.join(heavy)}; import them inside "
                      f"methods so `tlbench list` stays light")


@functools.lru_cache(maxsize=None)
def heavy_imports(module: str) -> tuple[str, ...]:
    """The heavy libraries that importing `module` in a fresh interpreter pulls in."""
    code = ("import importlib, json, sys; importlib.import_module(sys.argv[1]); "
            f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, env=env,
                         timeout=300)
    if out.returncode != 0:
        raise AssertionError(f"importing plugin module {module} failed: {out.stderr.strip()[-500:]}")
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def _env(registry: PluginRegistry | None, cache_dir: str | Path | None, device: str = "cpu") -> Env:
    root = cache_dir or os.environ.get("TLBENCH_CACHE_DIR") or tempfile.mkdtemp(prefix="tlbench-testing-")
    return Env(cache_dir=Path(root), device=device, registry=registry or installed_plugins(),
               log=lambda message: None)


# --------------------------------------------------------------------------- sources


def sample_examples(modality: str) -> list:
    """Raw examples of every form a source of `modality` must accept."""
    import numpy as np

    if modality == "text":
        return ["a short sentence", "another, somewhat longer example sentence.", "ünïcödé text"]
    from PIL import Image

    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),  # RGB array
            rng.integers(0, 256, (8, 8), dtype=np.uint8),  # greyscale array, like digits
            rng.integers(0, 256, (20, 28, 3), dtype=np.uint8),  # not square
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))]  # PIL image


def _state(module) -> dict:
    return {name: tensor.detach().cpu().clone() for name, tensor in module.state_dict().items()}


def _differences(before: dict, after: dict) -> list[str]:
    import torch

    changed = sorted(set(before) ^ set(after))
    changed += [name for name in sorted(set(before) & set(after))
                if before[name].shape != after[name].shape or before[name].dtype != after[name].dtype
                or not torch.equal(before[name], after[name])]
    return changed


def check_source(source: ItemRef, params: dict | None = None, *, examples: list | None = None,
                 registry: PluginRegistry | None = None, cache_dir: str | Path | None = None,
                 atol: float = 1e-4) -> SourceModel:
    """Build the source and check its features, layer groups and from-scratch twin.

    Returns the pretrained build. `examples` default to `sample_examples(modality)`.
    """
    from .hashing import canonical_json
    from .run.seeding import seed_everything

    reg, params = resolve("source", source, params, registry)
    item, env = reg.item, _env(registry, cache_dir)
    item.check(params, env)
    fingerprint = item.fingerprint(params, env)
    if fingerprint is not None and not isinstance(fingerprint, str):
        fail(reg, f"fingerprint() must return a string or None, got {type(fingerprint).__name__}")
    if item.fingerprint(params, env) != fingerprint:
        fail(reg, "fingerprint() differs between two calls with the same params")
    architecture = item.architecture(params)
    if not isinstance(architecture, dict) or canonical_json(architecture) != canonical_json(
            item.architecture(params)):
        fail(reg, "architecture() must return the same JSON-able dict every time")
    item.prepare(params, env)
    seed_everything(0)
    model = item.build(params, env, pretrained=True)
    check_source_model(reg, model, examples, atol=atol)
    twins = []
    for _ in range(2):
        seed_everything(0)
        twins.append(item.build(params, env, pretrained=False))
    check_source_model(reg, twins[0], examples, atol=atol)
    if twins[0].pretrained:
        fail(reg, "build(pretrained=False) returned a model marked pretrained=True")
    if twins[0].feature_dim != model.feature_dim or twins[0].modality != model.modality:
        fail(reg, "build(pretrained=False) changed feature_dim or modality: it must be the same architecture")
    shapes = {n: tuple(t.shape) for n, t in model.backbone.state_dict().items()}
    if shapes != {n: tuple(t.shape) for n, t in twins[0].backbone.state_dict().items()}:
        fail(reg, "build(pretrained=False) has other parameters than the pretrained build: from-scratch "
                  "baselines must have the same architecture")
    if _differences(_state(twins[0].backbone), _state(twins[1].backbone)):
        fail(reg, "build(pretrained=False) twice under the same torch seed gave different weights: "
                  "random initialisation must come from torch's seeded generator")
    return model


def check_source_model(reg: Registered, model: SourceModel, examples: list | None = None,
                       atol: float = 1e-4) -> None:
    """A built source: feature size, finite features independent of the batch, layer groups."""
    import numpy as np
    import torch

    if not isinstance(model, SourceModel):
        fail(reg, f"build() must return a tlbench.api.SourceModel, got {type(model).__name__}")
    if not isinstance(model.backbone, torch.nn.Module):
        fail(reg, "SourceModel.backbone must be a torch.nn.Module")
    if model.modality not in MODALITIES:
        fail(reg, f"modality must be one of {MODALITIES}, got {model.modality!r}")
    if not isinstance(model.feature_dim, int) or model.feature_dim < 1:
        fail(reg, f"feature_dim must be a positive int, got {model.feature_dim!r}")
    for key in ("weights_id", "preprocessing_id"):
        if not isinstance(getattr(model, key), str) or not getattr(model, key):
            fail(reg, f"{key} must be a non-empty string (it keys the feature cache)")
    check_layer_groups(reg, model)
    examples = examples if examples is not None else sample_examples(model.modality)
    model.backbone.eval()
    with torch.no_grad():
        batch = _features(model, examples)
        if batch.shape != (len(examples), model.feature_dim):
            fail(reg, f"features of {len(examples)} examples have shape {tuple(batch.shape)}, expected "
                      f"({len(examples)}, {model.feature_dim}) (feature_dim)")
        if not np.isfinite(batch).all():
            fail(reg, "features contain NaN or infinity")
        alone = np.concatenate([_features(model, [example]) for example in examples])
    if not np.allclose(batch, alone, atol=atol, rtol=1e-3):
        worst = float(np.abs(batch - alone).max())
        fail(reg, f"an example's features depend on the other examples in its batch (max difference "
                  f"{worst:.3g}); the feature cache extracts examples in any grouping")


def _features(model: SourceModel, examples: list):
    out = model.backbone(model.encode(list(examples)))
    if not hasattr(out, "detach"):
        raise AssertionError(f"backbone returned {type(out).__name__}, expected a (batch, feature_dim) tensor")
    return out.detach().float().cpu().numpy()


def check_layer_groups(reg: Registered, model: SourceModel) -> None:
    """Groups from input to output that hold every trainable backbone parameter once."""
    groups = model.layer_groups
    if not isinstance(groups, list) or not groups or not all(isinstance(g, list) and g for g in groups):
        fail(reg, "layer_groups must be a non-empty list of non-empty lists of parameter names")
    names = dict(model.backbone.named_parameters())
    listed = [name for group in groups for name in group]
    unknown = sorted(set(listed) - set(names))
    if unknown:
        fail(reg, f"layer_groups name parameters the backbone does not have: {unknown[:5]}")
    twice = sorted({name for name in listed if listed.count(name) > 1})
    if twice:
        fail(reg, f"layer_groups list parameters more than once: {twice[:5]}")
    missing = sorted(n for n, p in names.items() if p.requires_grad and n not in set(listed))
    if missing:
        fail(reg, f"layer_groups leave out {len(missing)} trainable parameters, e.g. {missing[:5]}")


# --------------------------------------------------------------------------- targets


def check_target(target: ItemRef, params: dict | None = None, *, seeds: tuple[int, ...] = (0, 1),
                 registry: PluginRegistry | None = None, cache_dir: str | Path | None = None) -> TargetData:
    """Load the target and check its splits for every seed in `seeds`: non-empty, disjoint,
    labelled 0..num_classes-1, image files given as `pathlib.Path` (not `str`), and the
    same examples (content hash) on every call and load."""
    from .hashing import splits_content_hash

    reg, params = resolve("target", target, params, registry)
    item, env = reg.item, _env(registry, cache_dir)
    item.check(params, env)
    data = item.load(params, env)
    check_target_data(reg, data)
    reloaded = item.load(params, env)
    for seed in seeds:
        splits = data.splits(seed)
        check_splits(reg, data, splits, seed)
        content_hash = splits_content_hash(splits)[0]
        if splits_content_hash(data.splits(seed))[0] != content_hash:
            fail(reg, f"splits({seed}) gave other examples on a second call: splits must depend only on "
                      f"the seed")
        if splits_content_hash(reloaded.splits(seed))[0] != content_hash:
            fail(reg, f"splits({seed}) of a second load() gave other examples: the content hash must be "
                      f"stable, or every run would be redone")
    return data


def check_target_data(reg: Registered, data: TargetData) -> None:
    if not isinstance(data, TargetData):
        fail(reg, f"load() must return a tlbench.api.TargetData, got {type(data).__name__}")
    if not isinstance(data.num_classes, int) or data.num_classes < 2:
        fail(reg, f"num_classes must be an int >= 2, got {getattr(data, 'num_classes', None)!r}")
    if data.modality not in MODALITIES:
        fail(reg, f"modality must be one of {MODALITIES}, got {data.modality!r}")
    if len(data.class_names) != data.num_classes:
        fail(reg, f"class_names has {len(data.class_names)} names for {data.num_classes} classes")
    if data.revision is not None and not isinstance(data.revision, str):
        fail(reg, "revision must be a string or None")


def check_splits(reg: Registered, data: TargetData, splits: Splits, seed: int) -> None:
    import numpy as np

    from .hashing import examples_digests

    if not isinstance(splits, Splits):
        fail(reg, f"splits({seed}) must return tlbench.api.Splits, got {type(splits).__name__}")
    digests: dict[str, set[bytes]] = {}
    seen_labels: set[int] = set()
    for name, split in splits.items():
        where = f"splits({seed}).{name}"
        if not isinstance(split, Split):
            fail(reg, f"{where} must be a tlbench.api.Split")
        labels = np.asarray(split.labels)
        if len(split.examples) != len(labels):
            fail(reg, f"{where} has {len(split.examples)} examples but {len(labels)} labels")
        if data.modality == "image":
            text = next((example for example in split.examples if isinstance(example, str)), None)
            if text is not None:
                fail(reg, f"{where} gives an image example as a str ({text!r}); give image files as "
                          f"pathlib.Path: a str is hashed as text, so an edited image would never redo "
                          f"its runs, while a Path is hashed by the file's bytes")
        if len(labels) == 0:
            fail(reg, f"{where} is empty")
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            fail(reg, f"{where}.labels must be a 1-d integer array, got {labels.dtype} of shape {labels.shape}")
        if labels.min() < 0 or labels.max() >= data.num_classes:
            fail(reg, f"{where} has labels outside 0..{data.num_classes - 1} (num_classes {data.num_classes})")
        seen_labels.update(int(label) for label in np.unique(labels))
        digests[name] = set(examples_digests(split.examples))
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1:]:
            shared = digests[first] & digests[second]
            if shared:
                fail(reg, f"splits({seed}) overlap: {len(shared)} examples of {second!r} are also in "
                          f"{first!r}")
    missing = sorted(set(range(data.num_classes)) - seen_labels)
    if missing:
        fail(reg, f"splits({seed}) never use classes {missing[:10]} of the declared {data.num_classes}")


# --------------------------------------------------------------------------- strategies


@dataclass
class StrategyCheck:
    """What `check_strategy` saw: the run's record, the strategy's result, and which
    backbone parameters its training changed."""

    record: dict
    result: FitResult
    backbone_params: int
    changed: dict[str, int] = field(default_factory=dict)
    """Backbone parameter name -> elements, for every parameter whose values changed."""

    @property
    def changed_params(self) -> int:
        return sum(self.changed.values())


class _WatchedSource(Source):
    """The source under test, remembering each model it builds and its weights then."""

    def __init__(self, inner: Source):
        self.inner = inner
        self.name, self.version, self.params = inner.name, inner.version, inner.params
        self.description = inner.description
        self.built: list[tuple[SourceModel, list, dict]] = []

    def architecture(self, params):
        return self.inner.architecture(params)

    def check(self, params, env):
        self.inner.check(params, env)

    def fingerprint(self, params, env):
        return self.inner.fingerprint(params, env)

    def prepare(self, params, env):
        self.inner.prepare(params, env)

    def build(self, params, env, pretrained=True):
        model = self.inner.build(params, env, pretrained=pretrained)
        named = list(model.backbone.named_parameters())
        values = [(name, param, param.detach().cpu().clone()) for name, param in named]
        self.built.append((model, values, _state(model.backbone)))
        return model


class _WatchedStrategy(Strategy):
    """The strategy under test, keeping the `FitResult` it returns."""

    def __init__(self, inner: Strategy):
        self.inner = inner
        self.name, self.version, self.params = inner.name, inner.version, inner.params
        self.description, self.init = inner.description, inner.init
        self.frozen_features_only = inner.frozen_features_only
        self.results: list[FitResult] = []

    def fit(self, params, run):
        result = self.inner.fit(params, run)
        self.results.append(result)
        return result


def check_strategy(strategy: ItemRef, params: dict | None = None, *, source: ItemRef | None = None,
                   target: ItemRef | None = None, seed: int = 0, time_budget_s: float = 600.0,
                   device: str = "cpu", registry: PluginRegistry | None = None,
                   cache_dir: str | Path | None = None) -> StrategyCheck:
    """Run the strategy once, as `tlbench run` would, and check what it reports.

    Checks: the run ends ok within `time_budget_s`; logits of every split have shape
    (examples, classes) and are finite; 0 <= trainable <= total parameters, the total
    includes the backbone, and every backbone parameter that changed is counted as
    trainable; a ``frozen_features_only`` strategy leaves the backbone's parameters and
    buffers bitwise unchanged; ``info`` is plain JSON.
    """
    import numpy as np
    import torch

    from .run.execute import RunSettings, Worker
    from .hashing import splits_content_hash
    from .plan.matrix import RunSpec, with_identity
    from .results.store import jsonable
    from .plan.suite import Entry

    reg, params = resolve("strategy", strategy, params, registry)
    source_reg, source_params = resolve("source", source if source is not None else TinySource(), None, registry)
    target_reg, target_params = resolve("target", target if target is not None else TinyTarget(), None, registry)
    env = _env(registry, cache_dir, device)
    watched_source, watched = _WatchedSource(source_reg.item), _WatchedStrategy(reg.item)
    private = PluginRegistry()
    private.add(watched_source, source_reg.origin)
    private.add(target_reg.item, target_reg.origin)
    private.add(watched, reg.origin)

    entries = {kind: Entry(kind, kind, r.name, r.version, p) for kind, r, p in (
        ("source", source_reg, source_params), ("target", target_reg, target_params), ("strategy", reg, params))}
    target_reg.item.check(target_params, env)
    watched_source.check(source_params, env)
    data = target_reg.item.load(target_params, env)
    spec = RunSpec(entries["source"], entries["target"], entries["strategy"], seed, init=reg.item.init,
                   architecture=watched_source.architecture(source_params))
    [spec] = with_identity([spec], {("target", seed): splits_content_hash(data.splits(seed))[0]},
                           {"source": watched_source.fingerprint(source_params, env)})
    if spec.init != "random":
        watched_source.prepare(source_params, env)
    settings = RunSettings(device=device, time_budget_s=time_budget_s, cache_dir=str(env.cache_dir))
    record = Worker(settings, registry=private).run(spec)
    if record["status"] != "ok":
        error = record.get("error") or {}
        fail(reg, f"run ended with status {record['status']!r}: {error.get('type')}: {error.get('message')}"
                  f"\n{error.get('traceback') or ''}")
    if record["metrics"]["wall_seconds"] > time_budget_s:
        fail(reg, f"ran {record['metrics']['wall_seconds']:.1f} s, over its {time_budget_s:g} s budget; "
                  f"call run.check_budget() at step boundaries")
    result = watched.results[-1]
    for name in SPLITS:
        if not np.isfinite(np.asarray(result.logits[name], dtype=np.float64)).all():
            fail(reg, f"logits of split {name!r} contain NaN or infinity")
    try:
        json.dumps(jsonable(result.info), allow_nan=False)
    except (TypeError, ValueError) as exc:
        fail(reg, f"FitResult.info must be plain JSON data (it is recorded): {exc}")
    model, values, state = watched_source.built[-1]
    check = StrategyCheck(record=record, result=result, backbone_params=sum(v.numel() for _, _, v in values))
    for name, param, before in values:
        after = param.detach().cpu()
        if not torch.equal(after, before):
            check.changed[name] = before.numel()
    if reg.item.frozen_features_only:
        changed = _differences(state, _state(model.backbone))
        if changed:
            fail(reg, f"declares frozen_features_only but changed the backbone's parameters or buffers: "
                      f"{changed[:5]}; frozen features are served from a cache keyed by the source's weights")
    _check_counts(reg, check)
    return check


def _check_counts(reg: Registered, check: StrategyCheck) -> None:
    trainable, total = check.result.trainable_params, check.result.total_params
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (trainable, total)):
        fail(reg, "trainable_params and total_params must be ints")
    if not 0 <= trainable <= total:
        fail(reg, f"reports {trainable} trainable of {total} parameters: expected 0 <= trainable <= total")
    if total < check.backbone_params:
        fail(reg, f"reports {total} parameters in total, fewer than the backbone's {check.backbone_params}: "
                  f"the total counts the whole model that predicts")
    if check.changed_params > trainable:
        fail(reg, f"changed {check.changed_params} backbone parameters ({len(check.changed)} tensors, e.g. "
                  f"{sorted(check.changed)[:3]}) but reports only {trainable} trainable")
    if reg.item.frozen_features_only and trainable > total - check.backbone_params:
        fail(reg, f"declares frozen_features_only but counts {trainable} trainable parameters, more than the "
                  f"{total - check.backbone_params} outside the backbone")


# --------------------------------------------------------------------------- tiny items


class TinySource(Source):
    """A small convolutional image backbone (`stem` and `block`, conv with batch norm,
    then a linear `proj`): the kit's default source for strategy checks. Never registered."""

    name = "tlbench-testing-tiny-cnn"
    version = "1"
    description = "a tiny CNN for conformance checks (weights from a fixed seed)"
    params = {"width": Param(int, 4, "channels of the first block", min=1),
              "input_size": Param(int, 12, "images are resized to input_size x input_size", min=4)}

    def build(self, params: dict, env: Env, pretrained: bool = True) -> SourceModel:
        from collections import OrderedDict

        import torch
        from torch import nn

        width, size = params["width"], params["input_size"]

        def make() -> nn.Module:
            return nn.Sequential(OrderedDict(
                stem=nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()),
                block=nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width),
                                    nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
                proj=nn.Linear(2 * width, 2 * width)))

        head = None
        if pretrained:  # "pretrained" weights: the same every time, whatever the run's seed
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(1234)
                backbone = make()
                head = nn.Linear(2 * width, 5)  # its "source task" classifier, for estimators like LEEP
        else:  # from torch's generator, which the caller has seeded
            backbone = make()
        groups = [[f"{part}.{name}" for name, _ in module.named_parameters()]
                  for part, module in backbone.named_children()]
        return SourceModel(backbone=backbone, feature_dim=2 * width, modality="image",
                           encode=functools.partial(encode_images, size=size), layer_groups=groups,
                           weights_id=f"tiny-cnn:{width}:{'seed1234' if pretrained else 'random'}",
                           preprocessing_id=f"tiny:{size}", pretrained=pretrained, source_head=head)


def encode_images(examples: list, size: int):
    """Images (uint8 arrays of any size, greyscale or RGB, or PIL images) to a
    (batch, 3, size, size) float tensor, each resized on its own."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    out = []
    for example in examples:
        array = np.array(example.convert("RGB") if hasattr(example, "convert") else example)
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        image = torch.from_numpy(np.ascontiguousarray(array[:, :, :3])).permute(2, 0, 1)[None].float()
        out.append(F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False))
    return (torch.cat(out) / 255.0 - 0.5) / 0.5


class TinyTarget(Target):
    """Synthetic images whose class is which horizontal band is bright, plus noise: the
    kit's default target for strategy checks. Never registered."""

    name = "tlbench-testing-tiny-bands"
    version = "1"
    description = "synthetic bright-band images for conformance checks"
    params = {"classes": Param(int, 3, "number of classes (bands)", min=2, max=8),
              "per_class": Param(int, 8, "images per class, split 1/2 train, 1/4 val, rest test", min=4)}

    def load(self, params: dict, env: Env) -> TargetData:
        return _BandsData(params["classes"], params["per_class"])


class _BandsData(TargetData):
    modality = "image"

    def __init__(self, classes: int, per_class: int):
        import numpy as np

        rng = np.random.default_rng(1234)
        size = 4 * classes
        images, labels = [], []
        for label in range(classes):
            for _ in range(per_class):
                image = rng.integers(0, 96, (size, size, 3), dtype=np.uint8)
                image[4 * label:4 * label + 4] += 128
                images.append(image)
                labels.append(label)
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)
        self.num_classes, self.per_class = classes, per_class
        self.class_names = [f"band{i}" for i in range(classes)]

    def splits(self, seed: int) -> Splits:
        import numpy as np

        rng = np.random.default_rng(seed)
        n_train, n_val = self.per_class // 2, max(1, self.per_class // 4)
        parts: dict[str, list[int]] = {name: [] for name in SPLITS}
        for label in range(self.num_classes):
            members = rng.permutation(np.flatnonzero(self.labels == label)).tolist()
            parts["train"] += members[:n_train]
            parts["val"] += members[n_train:n_train + n_val]
            parts["test"] += members[n_train + n_val:]
        made = {name: Split([self.images[i] for i in sorted(ix)], self.labels[sorted(ix)])
                for name, ix in parts.items()}
        return Splits(**made)


def check_estimator(estimator: ItemRef, params: dict | None = None, *, source: ItemRef | None = None,
                    target: ItemRef | None = None, seed: int = 0, time_budget_s: float = 600.0,
                    device: str = "cpu", registry: PluginRegistry | None = None,
                    cache_dir: str | Path | None = None) -> dict:
    """Score a tiny source for a tiny target through tlbench's execution path, twice.

    Checks: the estimate ends ok with a finite score (or is recorded as not applicable
    when the estimator needs a source classifier the source lacks); the same inputs give
    the same score; the backbone's parameters and buffers are left bitwise unchanged.
    Returns the first estimate record.
    """
    import math

    from .run.execute import RunSettings, Worker
    from .hashing import splits_content_hash
    from .plan.matrix import RunSpec, with_identity
    from .plan.suite import Entry

    reg, params = resolve("estimator", estimator, params, registry)
    source_reg, source_params = resolve("source", source if source is not None else TinySource(), None, registry)
    target_reg, target_params = resolve("target", target if target is not None else TinyTarget(), None, registry)
    env = _env(registry, cache_dir, device)
    watched_source = _WatchedSource(source_reg.item)
    private = PluginRegistry()
    private.add(watched_source, source_reg.origin)
    private.add(target_reg.item, target_reg.origin)
    private.add(reg.item, reg.origin)
    entries = {kind: Entry(kind, kind, r.name, r.version, p) for kind, r, p in (
        ("source", source_reg, source_params), ("target", target_reg, target_params), ("estimator", reg, params))}
    data = target_reg.item.load(target_params, env)
    spec = RunSpec(entries["source"], entries["target"], entries["estimator"], seed,
                   architecture=watched_source.architecture(source_params), kind="estimate")
    [spec] = with_identity([spec], {("target", seed): splits_content_hash(data.splits(seed))[0]},
                           {"source": watched_source.fingerprint(source_params, env)})
    watched_source.prepare(source_params, env)
    worker = Worker(RunSettings(device=device, time_budget_s=time_budget_s, cache_dir=str(env.cache_dir)),
                    registry=private)
    first, second = worker.run(spec), worker.run(spec)
    for record in (first, second):
        if record["status"] != "ok":
            error = record.get("error") or {}
            fail(reg, f"estimate ended with status {record['status']!r}: {error.get('type')}: "
                      f"{error.get('message')}\n{error.get('traceback') or ''}")
    if first["details"].get("not_applicable"):
        if not reg.item.needs_source_head:
            fail(reg, "recorded as not applicable although it does not need a source classifier")
        return first
    score = first["metrics"]["score"]
    if not isinstance(score, float) or not math.isfinite(score):
        fail(reg, f"score must be a finite float, got {score!r}")
    if second["metrics"]["score"] != score:
        fail(reg, f"the same inputs gave two scores: {score!r} and {second['metrics']['score']!r}")
    model, _, state = watched_source.built[-1]
    changed = _differences(state, _state(model.backbone))
    if changed:
        fail(reg, f"changed the backbone's parameters or buffers: {changed[:5]}; estimators read frozen features")
    return first


__all__ = ["check_item", "check_source", "check_source_model", "check_layer_groups", "check_target",
           "check_target_data", "check_splits", "check_strategy", "check_estimator", "StrategyCheck", "TinySource",
           "TinyTarget", "encode_images", "sample_examples", "installed_plugins", "heavy_imports",
           "resolve"]
