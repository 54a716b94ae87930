"""The conformance kit (tlbench.testing) passes good items and catches deliberately
broken ones, each with a message that names the item and what is wrong."""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from tlbench.api import FitResult, Split, Splits, Strategy
from tlbench.params import Param
from tlbench.plugins import PluginRegistry
from tlbench.testing import (TinySource, TinyTarget, check_source, check_strategy, check_target,
                             sample_examples)


@pytest.fixture(autouse=True)
def _cache(cache_dir):
    return cache_dir


# ---------------------------------------------------------------------- good items


def test_the_kits_tiny_items_conform():
    model = check_source(TinySource(), {"width": 3})
    assert model.feature_dim == 6
    data = check_target(TinyTarget(), {"classes": 4}, seeds=(0, 1, 2))
    assert data.num_classes == 4


# ---------------------------------------------------------------------- sources


class Variant(TinySource):
    """The tiny source with one thing changed by `alter(model, pretrained)`."""

    name = "broken-source"

    def __init__(self, alter):
        self.alter = alter

    def build(self, params, env, pretrained=True):
        return self.alter(super().build(params, env, pretrained), pretrained)


class BatchCentred(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        features = self.inner(x)
        return features - features.mean(0, keepdim=True)


def _unseeded_init(model, pretrained):
    if not pretrained:
        generator = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
        with torch.no_grad():
            for param in model.backbone.parameters():
                param.copy_(torch.randn(param.shape, generator=generator))
    return model


def _batch_centred(model, pretrained):
    groups = [[f"inner.{name}" for name in group] for group in model.layer_groups]
    return dataclasses.replace(model, backbone=BatchCentred(model.backbone), layer_groups=groups, feature_levels=None)


def _other_twin(model, pretrained):
    """The from-scratch twin has an extra layer (same feature size)."""
    if pretrained:
        return model
    extra = torch.nn.Linear(model.feature_dim, model.feature_dim)
    layers = OrderedDict([*model.backbone.named_children(), ("extra", extra)])
    return dataclasses.replace(model, backbone=torch.nn.Sequential(layers), feature_levels=None,
                               layer_groups=[*model.layer_groups, ["extra.weight", "extra.bias"]])


@pytest.mark.parametrize("alter, message", [
    (lambda m, p: dataclasses.replace(m, feature_dim=m.feature_dim + 1),
     r"features of 4 examples have shape \(4, 8\), expected \(4, 9\)"),
    (lambda m, p: dataclasses.replace(m, layer_groups=m.layer_groups[1:]), r"layer_groups leave out 4 trainable"),
    (lambda m, p: dataclasses.replace(m, layer_groups=[*m.layer_groups, ["head.weight"]]),
     r"layer_groups name parameters the backbone does not have: \['head.weight'\]"),
    (lambda m, p: dataclasses.replace(m, layer_groups=[*m.layer_groups, m.layer_groups[0]]),
     r"layer_groups list parameters more than once"),
    (_batch_centred,
     r"an example's features depend on the other examples in its batch"),
    (_unseeded_init, r"twice under the same torch seed gave different weights"),
    (_other_twin, r"other parameters than the pretrained build"),
    (lambda m, p: dataclasses.replace(m, pretrained=True), r"build\(pretrained=False\) returned a model marked "
                                                           r"pretrained=True"),
    (lambda m, p: dataclasses.replace(m, modality="video"), r"modality must be one of"),
], ids=["feature-size", "group-missing", "group-unknown", "group-twice", "batch-dependent", "unseeded-init",
        "twin-architecture", "twin-pretrained", "modality"])
def test_broken_sources_are_caught(alter, message):
    with pytest.raises(AssertionError, match=message) as caught:
        check_source(Variant(alter), {"width": 4})
    assert str(caught.value).startswith("source 'broken-source'")


def test_source_with_a_default_that_fails_its_own_schema():
    class BadDefault(TinySource):
        name = "bad-default"
        params = {**TinySource.params, "scale": Param(int, 0.5, "a scale")}

    with pytest.raises(AssertionError, match=r"source 'bad-default'.*default does not pass its own schema"):
        check_source(BadDefault())


def test_plugin_module_importing_torch_at_module_level_is_caught(tmp_path, monkeypatch):
    (tmp_path / "heavy_plugin.py").write_text(
        "import torch\nimport tlbench\nfrom tlbench.testing import TinySource\n\n\n"
        "class Heavy(TinySource):\n    name = 'heavy'\n\n\n"
        "@tlbench.hookimpl\ndef tlbench_register_sources(register):\n    register(Heavy())\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = PluginRegistry.load(["heavy_plugin"], use_entry_points=False, strict=True)
    with pytest.raises(AssertionError, match=r"importing heavy_plugin imports torch; import them inside methods"):
        check_source("heavy", registry=registry)


def test_sample_examples_cover_the_raw_forms():
    kinds = {(type(e).__name__, getattr(e, "ndim", None)) for e in sample_examples("image")}
    assert ("ndarray", 2) in kinds and ("ndarray", 3) in kinds and ("Image", None) in kinds


# ---------------------------------------------------------------------- targets


class TargetVariant(TinyTarget):
    name = "broken-target"

    def __init__(self, splits=None, load=None):
        self.make_splits, self.make_load = splits, load

    def load(self, params, env):
        data = self.make_load(params) if self.make_load else super().load(params, env)
        if self.make_splits:
            good = data.splits
            data.splits = lambda seed: self.make_splits(good(seed), data)
        return data


def _overlap(splits, data):
    return Splits(train=splits.train, val=splits.val,
                  test=Split([*splits.test.examples, splits.train.examples[0]],
                             np.append(splits.test.labels, splits.train.labels[0])))


def _unseeded(splits, data):
    rng = np.random.default_rng()
    order = rng.permutation(len(splits.test))
    return Splits(train=splits.train, val=splits.val,
                  test=Split([splits.test.examples[i] for i in order], splits.test.labels[order]))


def _unstable_load(params):
    data = TinyTarget().load(params, None)
    noise = np.random.default_rng().integers(0, 2, size=data.images[0].shape, dtype=np.uint8)
    data.images = [image ^ noise for image in data.images]
    return data


def _more_classes(params):
    data = TinyTarget().load(params, None)
    data.num_classes += 1
    data.class_names = [*data.class_names, "never"]
    return data


@pytest.mark.parametrize("variant, message", [
    (TargetVariant(splits=_overlap), r"splits\(0\) overlap: 1 examples of 'test' are also in 'train'"),
    (TargetVariant(splits=_unseeded), r"splits\(0\) gave other examples or labels on a second call"),
    (TargetVariant(load=_unstable_load), r"splits\(0\) of a second load\(\) gave other examples"),
    (TargetVariant(load=_more_classes), r"splits\(0\) never use classes \[3\] of the declared 4"),
    (TargetVariant(splits=lambda s, d: Splits(s.train, Split([], np.zeros(0, dtype=np.int64)), s.test)),
     r"splits\(0\)\.val is empty"),
    (TargetVariant(splits=lambda s, d: Splits(s.train, s.val, Split(s.test.examples, s.test.labels + 5))),
     r"splits\(0\)\.test: its classification labels are refused: test labels: example 0 has class 5, "
     r"outside 0\.\.2"),
    (TargetVariant(splits=lambda s, d: Splits(s.train, s.val, Split(s.test.examples, s.test.labels[:-1]))),
     r"splits\(0\)\.test has \d+ examples but \d+ labels"),
], ids=["overlap", "unseeded-splits", "unstable-load", "unused-class", "empty-split", "label-range", "lengths"])
def test_broken_targets_are_caught(variant, message):
    with pytest.raises(AssertionError, match=message) as caught:
        check_target(variant)
    assert str(caught.value).startswith("target 'broken-target'")


class ImageFiles(TinyTarget):
    """The tiny target's images as PNG files in `folder` (written when missing), each
    example ``as_example(file)``."""

    name = "image-files"

    def __init__(self, folder, as_example):
        self.folder, self.as_example = folder, as_example

    def load(self, params, env):
        from PIL import Image

        data = super().load(params, env)
        files = []
        for i, image in enumerate(data.images):
            files.append(self.folder / f"{i}.png")
            if not files[-1].exists():
                Image.fromarray(image).save(files[-1])
        data.images = [self.as_example(file) for file in files]
        return data


def test_image_files_given_as_str_are_caught(tmp_path):
    with pytest.raises(AssertionError, match=r"^target 'image-files' .*: splits\(0\)\.train gives an image "
                                             r"example as a str \('.*\.png'\); give image files as "
                                             r"pathlib\.Path") as caught:
        check_target(ImageFiles(tmp_path, str))
    assert "an edited image would never redo its runs" in str(caught.value)
    data = check_target(ImageFiles(tmp_path, Path))
    assert all(isinstance(example, Path) for example in data.splits(0).train.examples)


def test_only_a_path_makes_an_edited_image_change_the_content_hash(tmp_path):
    """Why the kit insists: a str example is hashed as text, a Path by the file's bytes."""
    from PIL import Image

    from tlbench.hashing import splits_content_hash

    def content_hash(as_example) -> str:
        data = ImageFiles(tmp_path, as_example).load({"classes": 3, "per_class": 8}, None)
        return splits_content_hash(data.splits(0))[0]

    by_path, by_text = content_hash(Path), content_hash(str)
    file = tmp_path / "0.png"
    edited = np.asarray(Image.open(file)).copy()
    edited[0, 0] ^= 0xFF
    Image.fromarray(edited).save(file)
    assert content_hash(Path) != by_path
    assert content_hash(str) == by_text


# ---------------------------------------------------------------------- strategies


class NearestMean(Strategy):
    """A correct frozen-feature strategy; the broken ones below change one thing."""

    name = "test-nearest-mean"
    version = "1"
    description = "nearest class mean of frozen features (a test strategy)"
    frozen_features_only = True

    def logits(self, run):
        features = {name: run.features(name) for name in ("train", "val", "test")}
        labels = run.split("train").labels
        means = np.stack([features["train"][labels == k].mean(0) for k in range(run.num_classes)])
        return {name: -((f[:, None] - means[None]) ** 2).sum(-1) for name, f in features.items()}

    def fit(self, params, run):
        backbone = sum(p.numel() for p in run.source.backbone.parameters())
        size = run.num_classes * run.source.feature_dim
        return FitResult(self.logits(run), trainable_params=size, total_params=backbone + size)


class ChangesFrozenWeights(NearestMean):
    name = "changes-frozen-weights"

    def fit(self, params, run):
        result = super().fit(params, run)
        with torch.no_grad():
            next(run.source.backbone.parameters()).mul_(1.5)
        return result


class ChangesFrozenBuffers(NearestMean):
    """Runs the backbone in train mode after reading its features: BatchNorm running
    statistics move. (Reading features after that is refused by the run itself.)"""

    name = "changes-frozen-buffers"

    def fit(self, params, run):
        result = super().fit(params, run)
        run.source.backbone.train()
        with torch.no_grad():
            for inputs, _ in run.batches("train").batches():
                run.source.backbone(inputs)
        return result


class UnderReports(Strategy):
    """Fine-tunes the whole model but reports only the head as trained."""

    name = "under-reports"
    version = "1"
    description = "a full fine-tune that under-reports what it trained"

    def fit(self, params, run):
        from tlbench.training import TaskModel, evaluate, param_groups, train
        from tlbench.run.recipe import ENGINE_PARAMS

        recipe = {key: p.default for key, p in ENGINE_PARAMS.items()} | {"epochs": 2, "batch_size": 4}
        model = TaskModel(run.source.backbone, run.new_head())
        train(run, model, param_groups(model.named_parameters(), 1e-2, 0.0), recipe)
        result = evaluate(run, model, recipe)
        result.trainable_params = sum(p.numel() for p in model.head.parameters())
        return result


class WrongShape(NearestMean):
    name = "wrong-shape"

    def fit(self, params, run):
        result = super().fit(params, run)
        result.logits["test"] = result.logits["test"][:, :-1]
        return result


class NanLogits(NearestMean):
    name = "nan-logits"

    def fit(self, params, run):
        result = super().fit(params, run)
        result.logits["val"] = result.logits["val"] * np.nan
        return result


class NonJsonInfo(NearestMean):
    name = "non-json-info"

    def fit(self, params, run):
        result = super().fit(params, run)
        result.info = {"classes": {0, 1}}  # a set: JSON has none (arrays are recorded as lists)
        return result


class SmallTotal(NearestMean):
    name = "small-total"

    def fit(self, params, run):
        result = super().fit(params, run)
        result.total_params = result.trainable_params
        return result


class FrozenButCountsBackbone(NearestMean):
    name = "counts-backbone"

    def fit(self, params, run):
        result = super().fit(params, run)
        result.trainable_params = result.total_params
        return result


class Raises(NearestMean):
    name = "raises"

    def fit(self, params, run):
        raise RuntimeError("out of ideas")


def test_a_correct_strategy_passes_and_reports_what_it_saw():
    check = check_strategy(NearestMean())
    assert check.record["status"] == "ok" and check.changed == {}
    assert check.record["spec"]["strategy"]["plugin"] == "test-nearest-mean"
    assert check.backbone_params == sum(p.numel() for p in TinySource().build(
        {"width": 4, "input_size": 12}, None).backbone.parameters())


def test_strategy_that_changes_frozen_weights_is_caught():
    frozen = r"declares frozen_features_only but changed the backbone's parameters or buffers"
    with pytest.raises(AssertionError, match=rf"strategy 'changes-frozen-weights'.*{frozen}: \['stem\.0\.weight'\]"):
        check_strategy(ChangesFrozenWeights())


def test_strategy_that_changes_frozen_buffers_is_caught():
    frozen = r"declares frozen_features_only but changed the backbone's parameters or buffers"
    with pytest.raises(AssertionError, match=rf"{frozen}: \['block\.1\.num_batches_tracked', 'block\.1\.running_mean'"):
        check_strategy(ChangesFrozenBuffers())


def test_strategy_that_under_reports_trainable_parameters_is_caught():
    with pytest.raises(AssertionError, match=r"changed \d+ backbone parameters \(\d+ tensors.*but reports only "
                                             r"\d+ trainable"):
        check_strategy(UnderReports())


@pytest.mark.parametrize("strategy, message", [
    (WrongShape(), r"run ended with status 'error': ValueError: strategy 'wrong-shape' returned predictions for "
                   r"split 'test' that the classification task cannot score: expected logits of shape \(\d+, 3\), "
                   r"got \(\d+, 2\)"),
    (NanLogits(), r"predictions for split 'val' contain NaN"),
    (NonJsonInfo(), r"strategy 'non-json-info' FitResult.info is not plain JSON data"),
    (SmallTotal(), r"fewer than the backbone's"),
    (FrozenButCountsBackbone(), r"declares frozen_features_only but counts \d+ trainable parameters"),
    (Raises(), r"run ended with status 'error': RuntimeError: out of ideas"),
], ids=["logits-shape", "nan", "info", "total", "frozen-counts", "raises"])
def test_broken_strategies_are_caught(strategy, message):
    with pytest.raises(AssertionError, match=message) as caught:
        check_strategy(strategy)
    assert str(caught.value).startswith(f"strategy {strategy.name!r}")


def test_strategy_over_its_budget_is_caught():
    class Slow(NearestMean):
        name = "slow"

        def fit(self, params, run):
            for _ in range(3):
                run.check_budget()
                torch.ones(400, 400) @ torch.ones(400, 400)
                import time

                time.sleep(0.05)
            return super().fit(params, run)

    with pytest.raises(AssertionError, match=r"strategy 'slow'.*run ended with status 'timeout'"):
        check_strategy(Slow(), time_budget_s=0.001)
