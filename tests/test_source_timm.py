"""The `timm` source: local weight files, the hub cache offline, preprocessing, layer groups."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from tlbench.api import Env
from tlbench.errors import ResourceUnavailable
from tlbench.params import resolve_params

SHA = "0123456789abcdef0123456789abcdef01234567"


class Payload:
    """Something a weights file should never make tlbench unpickle."""


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    """An empty Hugging Face home with the hub switched off."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture
def env(cache_dir):
    return Env(cache_dir=cache_dir)


def source():
    from tlbench_builtin.timm_source import TimmSource

    return TimmSource()


def params(**given):
    return resolve_params(source().params, given, "test")


def reference_model(num_classes: int = 7, name: str = "test_resnet"):
    import timm

    torch.manual_seed(0)
    return timm.create_model(name, num_classes=num_classes).eval()


def pre_logits(model, x):
    with torch.no_grad():
        return model.forward_head(model.forward_features(x), pre_logits=True)


def built_features(src, x):
    src.backbone.eval()
    with torch.no_grad():
        return src.backbone(x)


def test_safetensors_file_loads_back_with_identical_outputs(tmp_path, env, hf_offline):
    from safetensors.torch import save_file

    from tlbench.hashing import file_sha256

    model = reference_model(num_classes=7)
    file = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(file))
    p = params(model="test_resnet", file=str(file))
    item = source()
    item.check(p, env)
    item.prepare(p, env)
    assert item.fingerprint(p, env) == "sha256:" + file_sha256(file)
    built = item.build(p, env)
    x = torch.randn(3, 3, 64, 64)
    assert torch.equal(built_features(built, x), pre_logits(model, x))
    # the checkpoint's own 7-class classifier is kept as the source head (for LEEP)
    assert built.source_head.out_features == 7
    with torch.no_grad():
        assert torch.equal(built.source_head(built_features(built, x)), model(x))
    assert built.pretrained and built.feature_dim == model.num_features
    assert built.meta["weights"] == str(file)


def test_pth_file_loads_with_weights_only(tmp_path, env, hf_offline):
    model = reference_model(num_classes=0)  # a headless checkpoint
    file = tmp_path / "weights.pth"
    torch.save(model.state_dict(), file)
    p = params(model="test_resnet", file=str(file))
    source().prepare(p, env)
    built = source().build(p, env)
    x = torch.randn(2, 3, 48, 48)
    assert torch.equal(built_features(built, x), pre_logits(model, x))
    assert built.source_head is None


def test_pickle_that_is_not_plain_weights_is_refused(tmp_path, env, hf_offline):
    model = reference_model()
    file = tmp_path / "weights.bin"
    torch.save({**model.state_dict(), "extra": Payload()}, file)
    with pytest.raises(ResourceUnavailable, match="weights_only=True") as caught:
        source().prepare(params(model="test_resnet", file=str(file)), env)
    assert "\n" not in str(caught.value)


def test_missing_weights_file_is_one_line(tmp_path, env, hf_offline):
    with pytest.raises(ResourceUnavailable, match="does not exist"):
        source().check(params(model="test_resnet", file=str(tmp_path / "nope.safetensors")), env)


def test_unknown_architecture_is_named(env, hf_offline):
    with pytest.raises(ResourceUnavailable, match="no architecture 'resnet5000'"):
        source().check(params(model="resnet5000"), env)


def _fake_hub_cache(home, repo: str, files: dict[str, bytes]):
    folder = home / "hub" / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(SHA)
    snapshot = folder / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
    return snapshot


def test_hub_weights_come_from_the_hf_home_cache_offline(env, hf_offline):
    from safetensors.torch import save

    model = reference_model(num_classes=1000)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    _fake_hub_cache(hf_offline, "timm/test_resnet.r160_in1k", {"model.safetensors": save(state)})
    p = params(model="test_resnet.r160_in1k")
    item = source()
    item.check(p, env)
    item.prepare(p, env)  # cached already: nothing to download
    assert item.fingerprint(p, env) == f"hf:timm/test_resnet.r160_in1k@{SHA}"
    built = item.build(p, env)
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(built_features(built, x), pre_logits(model, x))
    assert built.meta["hub"] == {"repo": "timm/test_resnet.r160_in1k", "revision": SHA}
    # the from-scratch twin needs no weights and differs from them
    scratch = item.build(p, env, pretrained=False)
    assert not scratch.pretrained and scratch.weights_id != built.weights_id
    assert [n for n, _ in scratch.backbone.named_parameters()] == [n for n, _ in built.backbone.named_parameters()]


def test_hub_model_missing_offline_says_how_to_provide_it(env, hf_offline):
    with pytest.raises(ResourceUnavailable) as caught:
        source().check(params(model="resnet50.a1_in1k"), env)
    message = str(caught.value)
    assert "'timm/resnet50.a1_in1k'" in message and "HF_HUB_OFFLINE" in message
    assert "hf download timm/resnet50.a1_in1k" in message and "file =" in message
    assert str(hf_offline / "hub") in message and "\n" not in message
    # a random architecture needs nothing from the hub
    source().check(params(model="resnet50.a1_in1k", pretrained=False), env)


def test_unreachable_hub_counts_as_offline(env, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ResourceUnavailable, match=r"the hub \(http://127.0.0.1:9\) cannot be reached"):
        source().check(params(model="convnext_tiny.fb_in1k"), env)


def test_cli_offline_suite_ends_before_any_run_with_one_line(cli, write_suite, tmp_path, hf_offline):
    suite = write_suite("""
        [suite]
        name = "offline"
        device = "cpu"
        [[sources]]
        id = "r50"
        plugin = "timm"
        model = "resnet50.a1_in1k"
        [[targets]]
        plugin = "digits"
        classes = [0, 1]
        shots = 2
        val_shots = 1
        [[strategies]]
        plugin = "linear-probe"
    """)
    env = {"HF_HOME": str(hf_offline), "HF_HUB_OFFLINE": "1"}
    for dry_run in (("--dry-run",), ()):  # the dry run finds it too: the hub cache is checked offline
        done = cli("run", str(suite), *dry_run, "--out", str(tmp_path / "out"), env=env)
        assert done.returncode == 2
        lines = [line for line in done.stderr.splitlines()
                 if line.strip() and not line.startswith("tlbench: warning:")]  # plugin warnings aside
        assert len(lines) == 1 and lines[0].startswith("tlbench: error:"), done.stderr
        assert "Traceback" not in done.stderr
        assert "sources[0] (r50)" in lines[0] and "timm/resnet50.a1_in1k" in lines[0]
        assert not (tmp_path / "out").exists()


def test_preprocessing_follows_the_models_data_config(tmp_path, env, hf_offline):
    from safetensors.torch import save_file

    model = reference_model()
    file = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(file))
    built = source().build(params(model="test_resnet", file=str(file)), env)
    white = np.full((50, 70, 3), 255, dtype=np.uint8)
    encoded = built.encode([white, white[:, :, 0]])
    # test_resnet's config: 160 px, mean = std = 0.5, so white is exactly 1.0
    assert encoded.shape == (2, 3, 160, 160)
    assert torch.allclose(encoded, torch.ones_like(encoded))
    assert built.meta["data_config"]["input_size"] == [3, 160, 160]
    small = source().build(params(model="test_resnet", file=str(file), input_size=32), env)
    assert small.encode([white]).shape == (1, 3, 32, 32)
    assert small.preprocessing_id != built.preprocessing_id


@pytest.mark.parametrize("name, stem, last", [("test_resnet", "conv1", "layer4"),
                                              ("test_vit", "patch_embed", "blocks"),
                                              ("test_convnext", "stem", "head.norm")])
def test_layer_groups_run_from_stem_to_last_block(name, stem, last, env, hf_offline):
    built = source().build(params(model=name, pretrained=False), env)
    names = [n for n, _ in built.backbone.named_parameters()]
    flat = [n for group in built.layer_groups for n in group]
    assert sorted(flat) == sorted(names) and len(flat) == len(set(flat))
    assert len(built.layer_groups) >= 3
    assert any(n.startswith(f"model.{stem}") for n in built.layer_groups[0])
    assert any(n.startswith(f"model.{last}") for n in built.layer_groups[-1])


def test_encoder_is_picklable_and_works_in_dataloader_workers(env, hf_offline):
    from tlbench.run.batches import SplitBatches

    built = source().build(params(model="test_resnet", pretrained=False, input_size=32), env)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8) for i in range(6)]
    direct = built.encode(images)
    assert torch.equal(pickle.loads(pickle.dumps(built.encode))(images), direct)
    batches = SplitBatches(images, None, built.encode, torch.device("cpu"),
                           batch_size=4, num_workers=2, cache_bytes=0)
    streamed = torch.cat([inputs for inputs, _ in batches.batches()])
    assert torch.equal(streamed, direct)
