"""The feature cache: keyed by weights, preprocessing and example content; shared across
seeds, strategies, processes and suite reruns; and it returns what a fresh extraction would."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tlbench.api import SourceModel
from tlbench.testing import run_context
from tlbench.run.features import FeatureCache
from tlbench.params import resolve_params


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def encode(examples) -> torch.Tensor:
    return torch.as_tensor(np.stack(examples), dtype=torch.float32).flatten(1) / 255.0


def mlp_source(weights_seed: int = 0, preprocessing: str = "flatten/255") -> SourceModel:
    torch.manual_seed(weights_seed)
    backbone = nn.Sequential(nn.Linear(64, 8), nn.Tanh())
    return SourceModel(backbone=backbone, feature_dim=8, modality="image", encode=encode,
                       layer_groups=[["0.weight", "0.bias"]], weights_id=f"mlp:{weights_seed}",
                       preprocessing_id=preprocessing)


class Extractor:
    """Counts what the cache asks to extract, and extracts it for real."""

    def __init__(self, source: SourceModel, examples):
        self.source, self.examples, self.calls = source, examples, []

    def __call__(self, indices):
        self.calls.append(list(indices))
        with torch.no_grad():
            return self.source.backbone(encode([self.examples[i] for i in indices])).numpy()


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(n)]


def test_extracts_only_missing_examples_once_and_serves_them_in_order(tmp_path):
    cache, source = FeatureCache(tmp_path), mlp_source()
    pool = images(6)
    first = [pool[0], pool[1], pool[2], pool[1]]  # a duplicate is extracted once
    extract = Extractor(source, first)
    out = cache.features(source, first, extract)
    assert extract.calls == [[0, 1, 2]]
    assert (cache.stats.hits, cache.stats.misses) == (0, 4)
    np.testing.assert_array_equal(out[3], out[1])

    second = [pool[3], pool[2], pool[0]]  # another split, another order, one new example
    extract = Extractor(source, second)
    again = cache.features(source, second, extract)
    assert extract.calls == [[0]]
    assert (cache.stats.hits, cache.stats.misses) == (2, 5)
    np.testing.assert_array_equal(again[1], out[2])
    np.testing.assert_array_equal(again[2], out[0])


def test_the_key_is_weights_preprocessing_and_content(tmp_path):
    cache, pool = FeatureCache(tmp_path), images(3)
    cache.features(mlp_source(), pool, Extractor(mlp_source(), pool))
    for other in (mlp_source(weights_seed=1), mlp_source(preprocessing="flatten/255 resized")):
        extract = Extractor(other, pool)
        cache.features(other, pool, extract)
        assert extract.calls == [[0, 1, 2]]
    edited = [pool[0].copy(), pool[1], pool[2]]
    edited[0][0, 0] ^= 1  # one pixel of one example
    extract = Extractor(mlp_source(), edited)
    cache.features(mlp_source(), edited, extract)
    assert extract.calls == [[0]]


def test_a_new_process_reads_what_another_wrote(tmp_path):
    source, pool = mlp_source(), images(5)
    written = FeatureCache(tmp_path).features(source, pool, Extractor(source, pool))
    other = FeatureCache(tmp_path)  # as a fresh worker process would open it
    extract = Extractor(source, pool)
    read = other.features(source, pool, extract)
    assert extract.calls == [] and other.stats.hits == 5
    np.testing.assert_array_equal(read, written)
    assert read.dtype == np.float32 and read.flags.writeable


# ---------------------------------------------------------------------- through real runs


SUITE = """
[suite]
name = "feature-cache"
seeds = [0, 1]

[[sources]]
id = "resnet"
plugin = "timm"
model = "test_resnet"
file = "{file}"
input_size = 32

[[targets]]
id = "digits01"
plugin = "digits"
classes = [0, 1]
shots = 3
val_shots = 2

[[strategies]]
id = "lp"
plugin = "linear-probe"

[baseline]
enabled = false
"""


def test_second_seed_hits_the_cache_and_features_equal_fresh_ones(registry, write_suite, resnet_file, cache_dir):
    from tlbench.api import Env
    from tlbench.run.execute import RunSettings, Worker
    from tlbench.plan.planner import plan
    from tlbench.plan.suite import load_suite

    suite = load_suite(write_suite(SUITE.format(file=resnet_file)), registry)
    specs = sorted(plan(suite, registry, log=lambda message: None).specs, key=lambda spec: spec.seed)
    worker = Worker(RunSettings(device="cpu", cache_dir=str(cache_dir), threads=1), registry=registry)
    first, second = (worker.run(spec) for spec in specs)
    assert first["status"] == second["status"] == "ok"
    examples = sum(first["metrics"][f"n_{split}"] for split in ("train", "val", "test"))
    assert first["details"]["feature_cache"] == {"hits": 0, "misses": examples}
    assert second["details"]["feature_cache"] == {"hits": examples, "misses": 0}
    # the record says what trained and the strategy's resolved parameters
    head = (96 + 1) * 2  # test_resnet's 96 features, 2 classes
    assert second["metrics"]["trainable_params"] == second["details"]["strategy"]["trainable"]["head"] == head
    strategy = registry.get("strategy", "linear-probe").item
    assert second["spec"]["strategy"]["params"] == resolve_params(strategy.params, {}, "lp")

    # a fresh process, seed 1: every split from the cache, equal to a fresh extraction
    item = registry.get("source", "timm").item
    source = item.build(specs[1].source.params, Env(cache_dir=cache_dir, registry=registry))
    target = registry.get("target", "digits").item.load(specs[1].target.params, Env(cache_dir=cache_dir))
    splits = target.splits(1)

    def run(cache):
        return run_context(source, target, 1, splits=splits, feature_cache=cache)

    cache = FeatureCache(cache_dir / "features")
    cached, fresh = run(cache), run(None)
    for split in ("train", "val", "test"):
        np.testing.assert_allclose(cached.features(split), fresh.features(split), rtol=1e-5, atol=1e-6)
    assert cache.stats.misses == 0 and cache.stats.hits == examples


def test_features_are_never_extracted_from_a_trained_backbone(tmp_path):
    from tlbench_builtin.digits import DigitsData

    data = DigitsData(classes=[0, 1], shots=3, val_shots=2)
    source = mlp_source()
    cache = FeatureCache(tmp_path)
    run = run_context(source, data, 0, feature_cache=cache)
    train = run.features("train").copy()
    with torch.no_grad():
        source.backbone[0].weight.add_(1.0)  # as an optimiser step would
    np.testing.assert_array_equal(run.features("train"), train)  # read before: still served
    with pytest.raises(RuntimeError, match="after the backbone was trained"):
        run.features("test")
    assert len(list(cache.root.rglob("*.digests.npy"))) == 1  # the train split's chunk, nothing else
