"""A task whose head reads feature maps instead of pooled vectors plugs in without any
change to tlbench: the kit checks it, every fine-tuning strategy trains it through the
engine (the maps come from the same backbone parameters), and the linear probe, which
fits heads on pooled features, is left out of it."""

from __future__ import annotations

import numpy as np
import pytest

from tlbench.api import MetricSpec, Objective, Task
from tlbench.plugins import Origin, PluginRegistry
from tlbench.testing import TinySource, TinyTarget, check_source, check_strategy, check_task


class MapHead:
    """Average-pools the coarsest feature map, then a linear layer: the smallest dense head."""

    @staticmethod
    def make(source, num_classes):
        import torch

        class Head(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(source.feature_levels[-1].channels, num_classes)

            def forward(self, maps):
                assert isinstance(maps, list) and all(m.dim() == 4 for m in maps)
                return self.linear(maps[-1].mean(dim=(2, 3)))

        return Head()


class BandFromMapsObjective(Objective):
    def __init__(self, num_classes):
        self.num_classes = num_classes

    def head(self, source):
        return MapHead.make(source, self.num_classes)

    def targets(self, labels):
        import torch

        return torch.as_tensor(np.asarray(labels, dtype=np.int64))

    def loss(self, outputs, targets):
        import torch.nn.functional as F

        return F.cross_entropy(outputs.float(), targets)

    def predictions(self, outputs):
        return outputs.float().cpu().numpy()


class BandFromMaps(Task):
    name = "band-from-maps"
    description = "which band is bright, read off the backbone's feature maps"
    metrics = (MetricSpec("accuracy", low=0.0, high=1.0),)
    headline = "accuracy"
    representation = "feature_maps"

    def objective(self, target, train_labels):
        return BandFromMapsObjective(target.num_classes)

    def score(self, predictions, labels, target):
        return {"accuracy": float((np.asarray(predictions).argmax(1) == np.asarray(labels)).mean())}


class MapBands(TinyTarget):
    name = "map-bands"

    def task(self, params):
        return "band-from-maps"

    def load(self, params, env):
        data = super().load(params, env)
        data.task = "band-from-maps"
        return data


@pytest.fixture(scope="module")
def registry():
    registry = PluginRegistry.load()
    registry.add(BandFromMaps(), Origin(plugin="test"))
    registry.add(MapBands(), Origin(plugin="test"))
    return registry


def test_the_kits_source_gives_feature_maps_from_fine_to_coarse():
    model = check_source(TinySource(), {"width": 3})
    assert [level.stride for level in model.feature_levels] == [1, 2]


def test_timm_sources_give_feature_maps_with_their_strides(tmp_path):
    model = check_source("timm", {"model": "test_resnet", "pretrained": False, "input_size": 32},
                         cache_dir=tmp_path)
    assert [level.stride for level in model.feature_levels] == [2, 4, 8, 16, 32]


def test_a_feature_map_task_passes_the_kit(registry, tmp_path):
    scores = check_task("band-from-maps", target="map-bands", registry=registry, cache_dir=tmp_path, epochs=3)
    assert 0.0 <= scores["accuracy"] <= 1.0


@pytest.mark.parametrize("strategy, params", [
    ("full-finetune", {}), ("bitfit", {}),
    # the last layer group (`proj`) is after the maps: training the last two reaches `block`
    ("partial-finetune", {"train_last": 2}),
])
def test_fine_tuning_strategies_train_a_feature_map_head(strategy, params, registry, tmp_path):
    check = check_strategy(strategy, {"epochs": 2, "batch_size": 8, **params}, target="map-bands",
                           registry=registry, cache_dir=tmp_path)
    assert check.record["task"]["name"] == "band-from-maps"
    assert check.changed, "the backbone under a feature-map head did not train"


def test_the_linear_probe_is_left_out_of_a_feature_map_task(registry, tmp_path):
    with pytest.raises(AssertionError, match="linear-probe fits linear heads in closed form; the band-from-maps "
                                             "task of target target has no such head"):
        check_strategy("linear-probe", target="map-bands", registry=registry, cache_dir=tmp_path)
