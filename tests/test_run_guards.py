"""What a misbehaving strategy cannot do to a run record or to the feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tlbench import testing
from tlbench.api import FitResult, Strategy
from tlbench.run.features import FeatureCache


class _Probe(Strategy):
    """Predicts from the frozen features with a fixed head; `info` is what the test sets."""

    name = "guard-probe"
    description = "test strategy"
    frozen_features_only = True
    info: dict = {}

    def fit(self, params, run):
        logits = {s: np.zeros((len(run.split(s)), run.num_classes), dtype=np.float32) for s in ("train", "val", "test")}
        run.features("train")
        total = sum(p.numel() for p in run.source.backbone.parameters())
        return FitResult(logits=logits, trainable_params=0, total_params=total, info=self.info)


def test_array_info_is_recorded_as_lists(tmp_path):
    strategy = _Probe()
    strategy.info = {"curve": np.arange(3), "loss": torch.tensor([0.5, 0.25])}
    check = testing.check_strategy(strategy, cache_dir=tmp_path)
    assert check.record["details"]["strategy"] == {"curve": [0, 1, 2], "loss": [0.5, 0.25]}


def test_info_json_cannot_hold_is_a_run_error_not_a_crash(tmp_path):
    strategy = _Probe()
    strategy.info = {"model": object()}
    with pytest.raises(AssertionError, match="FitResult.info is not plain JSON data"):
        testing.check_strategy(strategy, cache_dir=tmp_path)


class _TrainModeThenFeatures(Strategy):
    """Runs the frozen backbone in train mode (BatchNorm statistics move), then asks for
    'frozen' features: the cache would otherwise be served or poisoned."""

    name = "guard-train-mode"
    description = "test strategy"

    def fit(self, params, run):
        run.source.backbone.train()
        batch, _ = next(iter(run.batches("train").batches()))
        with torch.no_grad():
            run.source.backbone(batch)
        run.features("train")
        raise AssertionError("features were served after the backbone changed")


def test_features_after_batchnorm_statistics_moved_are_refused(tmp_path):
    with pytest.raises(AssertionError, match="asked for after the backbone was trained"):
        testing.check_strategy(_TrainModeThenFeatures(), cache_dir=tmp_path)


def test_feature_cache_keeps_devices_apart():
    source = testing.TinySource().build({"width": 2, "input_size": 8}, env=None)
    assert FeatureCache.key(source, "cpu") == FeatureCache.key(source, "cpu")
    assert FeatureCache.key(source, "cpu") != FeatureCache.key(source, "mps")
