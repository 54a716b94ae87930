"""The example plugin keeps tlbench's contract (checked with tlbench.testing), and its
nearest-mean strategy predicts what an independent nearest-centroid classifier does."""

from __future__ import annotations

import numpy as np
import pytest

from tlbench.api import Env
from tlbench.testing import check_source, check_strategy, check_target, installed_plugins

SOURCE = ("random-conv", {"width": 8, "depth": 2, "input_size": 16})
TARGET = ("stripes", {"classes": 3, "per_class": 12, "shots": 4, "val_shots": 2, "image_size": 12})


def test_registered_through_this_distribution():
    registry = installed_plugins()
    for kind, name in (("source", "random-conv"), ("target", "stripes"), ("strategy", "nearest-mean")):
        origin = registry.get(kind, name).origin
        assert (origin.distribution, origin.dist_version) == ("tlbench-example-plugin", "0.1.0")


def test_source_conforms(tmp_path):
    model = check_source(*SOURCE, cache_dir=tmp_path)
    assert model.feature_dim == 8 and len(model.layer_groups) == 2


def test_target_conforms(tmp_path):
    data = check_target(*TARGET, seeds=(0, 1, 2), cache_dir=tmp_path)
    assert data.num_classes == 3


@pytest.mark.parametrize("features", ["cl2n", "raw"])
def test_strategy_conforms_on_example_items(tmp_path, features):
    check = check_strategy("nearest-mean", {"features": features}, source=SOURCE, target=TARGET,
                           cache_dir=tmp_path)
    assert check.changed_params == 0
    assert check.result.trainable_params == 3 * 8  # one mean per class


def test_strategy_conforms_on_the_kits_tiny_items(tmp_path):
    check_strategy("nearest-mean", cache_dir=tmp_path)


def test_pretrained_random_weights_do_not_depend_on_the_run_seed(tmp_path):
    import torch

    source = installed_plugins().get("source", "random-conv").item
    params = {"width": 4, "depth": 1, "input_size": 8, "weights_seed": 3}
    states = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        states.append(source.build(params, Env(cache_dir=tmp_path)).backbone.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_nearest_mean_predicts_like_sklearn_nearest_centroid(tmp_path):
    import torch
    from sklearn.neighbors import NearestCentroid

    check = check_strategy("nearest-mean", {"features": "raw"}, source=SOURCE, target=TARGET, cache_dir=tmp_path)
    registry = installed_plugins()
    data = registry.get("target", TARGET[0]).item.load(_defaults("target", TARGET), Env(cache_dir=tmp_path))
    splits = data.splits(0)
    source = registry.get("source", SOURCE[0]).item.build(_defaults("source", SOURCE), Env(cache_dir=tmp_path))
    with torch.no_grad():
        features = {name: source.backbone(source.encode(split.examples)).numpy() for name, split in splits.items()}
    reference = NearestCentroid().fit(features["train"], splits.train.labels)
    for name in ("train", "val", "test"):
        predicted = np.asarray(check.result.logits[name]).argmax(1)
        assert (predicted == reference.predict(features[name])).all(), name


def _defaults(kind: str, ref: tuple) -> dict:
    from tlbench.params import resolve_params

    return resolve_params(installed_plugins().get(kind, ref[0]).item.params, ref[1], kind)
