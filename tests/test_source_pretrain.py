"""The `pretrain` source: its fingerprint follows the data it is pretrained on (so runs on
it are redone when that data changes, as its weights are retrained) and the machine it
is pretrained on, it pretrains once per run seed unless its seed is fixed, and what the
pretraining reached is read from the weights file itself."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from tlbench.api import Env
from tlbench.errors import PluginError
from tlbench.params import resolve_params
from tlbench.plan.planner import plan
from tlbench_builtin.classification import Classification
from tlbench.plugins import Origin, PluginRegistry
from tlbench.plan.suite import load_suite
from tlbench_builtin.imagefolder import ImageFolder
from tlbench_builtin.pretrain_source import Pretrain


def write_images(root, seed: int = 0) -> list:
    """root/<class>/<i>.png: 2 classes x 6 small random images."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    files = []
    for label in range(2):
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        for i in range(6):
            files.append(root / f"c{label}" / f"{i}.png")
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(files[-1])
    return files


def edit(path) -> None:
    """New pixels, same size and name: only the content changes."""
    from PIL import Image

    image = np.asarray(Image.open(path)).copy()
    image[0, 0] ^= 0xFF
    Image.fromarray(image).save(path)


def pretrain_params(target: str, target_params: dict, **given) -> dict:
    return resolve_params(Pretrain.params, {"model": "test_resnet", "input_size": 8, "target": target,
                                            "target_params": target_params, **given}, "pretrain")


@pytest.fixture
def images(tmp_path):
    return write_images(tmp_path / "images")


def test_fingerprint_follows_the_content_of_the_pretraining_data(registry, cache_dir, images):
    env = Env(cache_dir=cache_dir, registry=registry)
    params = pretrain_params("imagefolder", {"path": str(images[0].parent.parent), "test_fraction": 0.25})
    source = registry.get("source", "pretrain").item
    first = source.fingerprint(params, env)
    assert first.startswith("pretrain:") and source.fingerprint(params, env) == first
    original = images[3].read_bytes()
    edit(images[3])
    edited = source.fingerprint(params, env)
    assert edited != first
    images[3].write_bytes(original)  # the same bytes again: the same weights would be trained
    assert source.fingerprint(params, env) == first


def test_fingerprint_follows_the_version_of_the_pretraining_target(cache_dir, images):
    """A target bumps its version when its examples would change: the weights are retrained."""

    def fingerprint(version: str) -> str:
        target = type("Folder", (ImageFolder,), {"name": "folder", "version": version})()
        registry = PluginRegistry()
        registry.add(target, Origin(plugin="test"))
        registry.add(Classification(), Origin(plugin="test"))
        params = pretrain_params("folder", {"path": str(images[0].parent.parent)})
        return Pretrain().fingerprint(params, Env(cache_dir=cache_dir, registry=registry))

    assert fingerprint("1") != fingerprint("2")
    assert fingerprint("1") == fingerprint("1")


SUITE = """
[suite]
name = "pretrained-here"
seeds = [0, 1]

[[sources]]
id = "pre"
plugin = "pretrain"
model = "test_resnet"
input_size = 8
target = "imagefolder"
target_params = {{ path = "{path}", test_fraction = 0.25 }}

[[targets]]
id = "d"
plugin = "digits"
classes = [0, 1]
shots = 2

[[strategies]]
id = "lp"
plugin = "linear-probe"
"""


def test_runs_are_redone_when_the_pretraining_data_changes(registry, write_suite, cache_dir, images):
    path = write_suite(SUITE.format(path=images[0].parent.parent))

    def run_ids() -> dict[str, str]:
        specs = plan(load_suite(path, registry), registry, log=lambda message: None).specs
        return {("baseline" if spec.baseline else "transfer") + f"/{spec.seed}": spec.run_id for spec in specs}

    before = run_ids()
    assert run_ids() == before  # nothing changed: every run would be skipped as done
    edit(images[7])
    after = run_ids()
    assert set(after) == set(before) == {"baseline/0", "baseline/1", "transfer/0", "transfer/1"}
    for key in ("transfer/0", "transfer/1"):
        assert after[key] != before[key]
    for key in ("baseline/0", "baseline/1"):  # random initialisation: no pretraining data involved
        assert after[key] == before[key]


def test_pretraining_results_travel_inside_the_weights_file(registry, cache_dir):
    from safetensors import safe_open

    env = Env(cache_dir=cache_dir, registry=registry, log=lambda message: None, seed=3)
    digits = {"classes": [0, 1], "shots": 5, "val_shots": 2}
    params = pretrain_params("digits", digits, epochs=1, batch_size=128)
    source = registry.get("source", "pretrain").item
    source.prepare(params, env)
    [weights] = (cache_dir / "pretrain").glob("*.safetensors")
    assert not list((cache_dir / "pretrain").glob("*.json"))  # no side file to be read half-written
    with safe_open(str(weights), framework="pt") as handle:
        stored = json.loads(handle.metadata()["tlbench"])

    torch.manual_seed(0)
    built = source.build(params, env)
    shown = built.meta["pretraining"]
    assert shown == {"seed": 3, "device": "cpu", "train_accuracy": stored["train_accuracy"],
                     "val_accuracy": stored["val_accuracy"], "epochs": 1}
    # the recorded training accuracy is the source's own classifier's on its training data
    # (the target's train and test parts of the split drawn with the run's seed)
    target = registry.get("target", "digits").item
    splits = target.load(resolve_params(target.params, digits, "digits"), env).splits(3)
    examples = [*splits.train.examples, *splits.test.examples]
    labels = np.concatenate([splits.train.labels, splits.test.labels])
    built.backbone.eval()
    with torch.no_grad():
        predicted = built.source_head(built.backbone(built.encode(examples))).argmax(1).numpy()
    assert shown["train_accuracy"] == pytest.approx(float((predicted == labels).mean()))
    assert 0.0 <= shown["val_accuracy"] <= 1.0


def _states(source, params, env) -> dict:
    torch.manual_seed(0)
    return {name: tensor.clone() for name, tensor in source.build(params, env).backbone.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_one_pretraining_per_run_seed_unless_the_seed_is_fixed(registry, cache_dir):
    """Unset, the seed is the run's: each seed's runs transfer from their own pretraining,
    under one fingerprint (the run's seed is in the run's identity). Fixed, one
    pretraining serves every seed."""
    source = registry.get("source", "pretrain").item
    digits = {"classes": [0, 1], "shots": 5, "val_shots": 2}
    per_seed = pretrain_params("digits", digits, epochs=1, batch_size=128)
    env = Env(cache_dir=cache_dir, registry=registry, log=lambda message: None)
    assert source.seeded(per_seed)
    assert (source.fingerprint(per_seed, env) == source.fingerprint(per_seed, replace(env, seed=0))
            == source.fingerprint(per_seed, replace(env, seed=1)))
    with pytest.raises(PluginError, match="once per run seed"):
        source.prepare(per_seed, env)
    seed0, seed1 = _states(source, per_seed, replace(env, seed=0)), _states(source, per_seed, replace(env, seed=1))
    assert not _same(seed0, seed1)
    assert _same(seed0, _states(source, per_seed, replace(env, seed=0)))  # from the cache: the same file

    fixed = pretrain_params("digits", digits, epochs=1, batch_size=128, seed=0)
    assert not source.seeded(fixed)
    assert source.fingerprint(fixed, env) != source.fingerprint(per_seed, env)
    assert _same(_states(source, fixed, replace(env, seed=0)), _states(source, fixed, replace(env, seed=4)))
    assert _same(_states(source, fixed, env), seed0)  # seed 0 fixed is the seed-0 pretraining
    assert len(list((cache_dir / "pretrain").glob("*.safetensors"))) == 3


def test_weights_pretrained_on_another_kind_of_cpu_are_another_source(registry, cache_dir, monkeypatch):
    """Other kernels give other weights after a few hundred steps: the fingerprint (and
    the cache key) names the device's kind and model, so merged results keep them apart."""
    import tlbench.provenance

    source = registry.get("source", "pretrain").item
    params = pretrain_params("digits", {"classes": [0, 1], "shots": 5, "val_shots": 2})
    env = Env(cache_dir=cache_dir, registry=registry, device="cpu")
    here = source.fingerprint(params, env)
    monkeypatch.setattr(tlbench.provenance, "cpu_name", lambda: "AMD EPYC 7B13")
    assert source.fingerprint(params, env) != here
