"""A partially downloaded hub snapshot is told from a whole one by the snapshot's own
listing (huggingface_hub's cached tree of the revision), not by whether the files on
disk look complete: offline, a partial one is one line naming what is missing."""

from __future__ import annotations

import json

import pytest

from tlbench.api import Env
from tlbench.errors import ResourceUnavailable
from tlbench.params import resolve_params

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture
def env(cache_dir):
    return Env(cache_dir=cache_dir)


def fake_snapshot(home, folder: str, listed: dict[str, int], present: dict[str, bytes]):
    """A cached snapshot holding `present`, whose listing (as huggingface_hub writes it
    beside the cache) says the revision has `listed` (path -> size)."""
    base = home / "hub" / folder
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(SHA)
    (base / "trees").mkdir()
    (base / "trees" / f"{SHA}.json").write_text(json.dumps(
        {"format_version": 1, "files": {name: {"size": size, "blob_id": "0" * 40} for name, size in listed.items()}}))
    snapshot = base / "snapshots" / SHA
    for name, data in present.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_bytes(data)
    return snapshot


def test_the_listing_says_which_files_are_missing_or_cut_short(hf_offline):
    from tlbench_builtin.hub_cache import HubRepo

    snapshot = fake_snapshot(hf_offline, "models--org--m", {"a.json": 2, "w.bin": 10, "x.txt": 1},
                             {"a.json": b"{}", "w.bin": b"12345"})
    repo = HubRepo("org/m")
    assert repo.listing() == {"a.json": 2, "w.bin": 10, "x.txt": 1}
    assert repo.missing(snapshot) == ["w.bin", "x.txt"]
    assert repo.missing(snapshot, lambda files: ["a.json"]) == []
    assert repo.cached_file("a.json") == snapshot / "a.json" and repo.cached_file("w.bin") is None
    assert HubRepo("org/unlisted").listing() is None


def test_timm_hub_weights_cut_short_are_not_taken_for_cached(env, hf_offline):
    from tlbench_builtin.timm_source import TimmSource

    fake_snapshot(hf_offline, "models--timm--test_resnet.r160_in1k", {"model.safetensors": 5000},
                  {"model.safetensors": b"only the first bytes"})
    item = TimmSource()
    with pytest.raises(ResourceUnavailable) as caught:
        item.check(resolve_params(item.params, {"model": "test_resnet.r160_in1k"}, "test"), env)
    message = str(caught.value)
    assert "only partly in the Hugging Face cache" in message and "model.safetensors" in message
    assert "HF_HUB_OFFLINE is set" in message and "\n" not in message


def test_a_timm_hub_model_missing_its_weights_is_partial(env, hf_offline):
    from tlbench_builtin.timm_source import TimmSource

    fake_snapshot(hf_offline, "models--org--tiny-timm", {"config.json": 2, "model.safetensors": 100},
                  {"config.json": b"{}"})
    item = TimmSource()
    with pytest.raises(ResourceUnavailable, match="only partly.*model.safetensors"):
        item.check(resolve_params(item.params, {"model": "hf-hub:org/tiny-timm"}, "test"), env)


def test_an_hf_snapshot_that_looks_complete_but_lacks_a_listed_file_is_partial(env, hf_offline):
    """config.json and weights are there (enough to look complete), the tokenizer's
    vocabulary is not: the listing tells."""
    pytest.importorskip("transformers")
    from tlbench_builtin.hf_source import HFSource

    listed = {"config.json": 2, "model.safetensors": 4, "tokenizer.json": 2, "vocab.txt": 3, "README.md": 5}
    fake_snapshot(hf_offline, "models--org--tiny-bert", listed,
                  {"config.json": b"{}", "model.safetensors": b"wwww", "tokenizer.json": b"{}"})
    item = HFSource()
    params = resolve_params(item.params, {"model": "org/tiny-bert"}, "test")
    with pytest.raises(ResourceUnavailable) as caught:
        item.check(params, env)
    message = str(caught.value)
    assert "model 'org/tiny-bert' is only partly in the Hugging Face cache" in message
    assert "vocab.txt" in message and "README.md" not in message  # only what an AutoModel reads
    (hf_offline / "hub" / "models--org--tiny-bert" / "snapshots" / SHA / "vocab.txt").write_bytes(b"abc")
    item.check(params, env)  # whole now


def test_a_hub_data_set_missing_a_split_file_is_partial(env, hf_offline):
    pytest.importorskip("datasets")
    from tlbench_builtin.hf_dataset import HFDataset

    listed = {"README.md": 2, "data/train-0.parquet": 3, "data/test-0.parquet": 3}
    fake_snapshot(hf_offline, "datasets--org--toy", listed, {"README.md": b"hi", "data/train-0.parquet": b"abc"})
    item = HFDataset()
    with pytest.raises(ResourceUnavailable, match=r"data set 'org/toy' is only partly.*data/test-0.parquet"):
        item.check(resolve_params(item.params, {"path": "org/toy"}, "test"), env)
    # reading the train files alone, the snapshot is whole for what the target reads
    item.check(resolve_params(item.params, {"path": "org/toy", "data_files": {"train": "data/train-*.parquet"}},
                              "test"), env)
