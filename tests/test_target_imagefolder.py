"""The `imagefolder` target: class folders on disk, with or without split folders.

(Multilabel and regression from a labels file: tests/test_target_tasks_imagefolder.py.)
"""

from __future__ import annotations

import numpy as np
import pytest

from tlbench.api import Env
from tlbench.errors import ParamError, ResourceUnavailable
from tlbench.hashing import splits_content_hash
from tlbench.params import resolve_params


def make_images(root, counts: dict[str, int], seed: int = 0, suffix: str = ".png"):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)).save(root / name / f"img{i:02d}{suffix}")


@pytest.fixture
def env(cache_dir):
    return Env(cache_dir=cache_dir)


def load(env, **given):
    from tlbench_builtin.imagefolder import ImageFolder

    item = ImageFolder()
    p = resolve_params(item.params, given, "test")
    item.check(p, env)
    return item.load(p, env)


def test_flat_class_folders_are_split_per_seed(tmp_path, env):
    make_images(tmp_path / "data", {"zebra": 12, "ant": 10, "moth": 10})
    (tmp_path / "data" / "notes.txt").write_text("not an image")
    data = load(env, path=str(tmp_path / "data"), shots=3)
    assert data.class_names == ["ant", "moth", "zebra"] and data.modality == "image"
    zero, again, one = data.splits(0), load(env, path=str(tmp_path / "data"), shots=3).splits(0), data.splits(1)
    assert np.bincount(zero.train.labels).tolist() == [3, 3, 3]
    assert np.bincount(zero.val.labels).tolist() == [3, 3, 3]
    # labels are the folder names' positions; examples are the image files themselves
    for split in (zero.train, zero.val, zero.test):
        assert [data.class_names.index(p.parent.name) for p in split.examples] == split.labels.tolist()
    # the test carve is the same for every seed; train and val are drawn per seed
    assert zero.test.examples == one.test.examples and len(zero.test) == round(0.2 * 32)
    everything = [*zero.train.examples, *zero.val.examples, *zero.test.examples]
    assert len(set(everything)) == len(everything)
    assert splits_content_hash(zero)[0] == splits_content_hash(again)[0]
    assert splits_content_hash(zero)[0] != splits_content_hash(one)[0]
    assert data.revision.startswith("listing-sha256:")


def test_split_folders_are_used_as_given(tmp_path, env):
    make_images(tmp_path / "data" / "train", {"a": 5, "b": 5}, seed=1)
    make_images(tmp_path / "data" / "validation", {"a": 2, "b": 2}, seed=2, suffix=".jpg")
    make_images(tmp_path / "data" / "test", {"a": 3, "b": 3}, seed=3)
    data = load(env, path=str(tmp_path / "data"))
    assert data.origins == {"train": "train", "val": "validation", "test": "test"}
    splits = data.splits(0)
    assert [len(splits.train), len(splits.val), len(splits.test)] == [10, 4, 6]
    assert all(p.suffix == ".jpg" for p in splits.val.examples)
    assert splits.train.examples == sorted(splits.train.examples)


def test_the_revision_changes_with_the_files(tmp_path, env):
    make_images(tmp_path / "data", {"a": 4, "b": 4})
    before = load(env, path=str(tmp_path / "data")).revision
    make_images(tmp_path / "data", {"c": 4}, seed=5)
    after = load(env, path=str(tmp_path / "data"))
    assert after.revision != before and after.num_classes == 3


def test_missing_or_empty_folders_and_too_many_shots(tmp_path, env):
    with pytest.raises(ResourceUnavailable, match="no directory"):
        load(env, path=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResourceUnavailable, match="no class folders"):
        load(env, path=str(tmp_path / "empty"))
    make_images(tmp_path / "data", {"a": 6, "b": 3})
    with pytest.raises(ParamError, match="class 'b' has only"):
        load(env, path=str(tmp_path / "data"), shots=3, test_fraction=0.1).splits(0)
    with pytest.raises(ParamError, match="shots and n_train"):
        load(env, path=str(tmp_path / "data"), shots=1, n_train=2)


def test_images_encode_through_a_timm_source(tmp_path, env):
    from tlbench_builtin.timm_source import TimmSource

    make_images(tmp_path / "data", {"a": 4, "b": 4})
    splits = load(env, path=str(tmp_path / "data"), test_fraction=0.25).splits(0)
    item = TimmSource()
    built = item.build(resolve_params(item.params, {"model": "test_resnet", "pretrained": False,
                                                     "input_size": 32}, "test"), env)
    assert tuple(built.encode(splits.train.examples).shape) == (len(splits.train), 3, 32, 32)


def fake_png(name: str) -> bytes:
    """Bytes that stand for an image: the target hashes files by their bytes and decodes
    nothing, and fixed bytes keep the hash below independent of the PNG encoder."""
    return b"\x89PNG\r\n\x1a\n" + f"image {name}".encode()


def test_classification_content_hash_is_what_it_was(tmp_path, env):
    """Computed before the task parameter existed: class-folder targets keep their
    labels, their examples and so their content hashes (and run ids)."""
    from tlbench.plugins import PluginRegistry

    for name in "abc":
        (tmp_path / "folder" / name).mkdir(parents=True)
        for i in range(8):
            (tmp_path / "folder" / name / f"{i}.png").write_bytes(fake_png(f"{name}{i}"))
    label_bytes = PluginRegistry.load().get("task", "classification").item.label_bytes
    data = load(env, path=str(tmp_path / "folder"), shots=2)
    assert data.task == "classification" and data.class_names == ["a", "b", "c"]
    assert splits_content_hash(data.splits(0), label_bytes)[0] == \
        "eedace69f4a166a585df394429839fcb20ab4a72dd4e2667cdbca73a7d75f5f9"
