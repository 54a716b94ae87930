"""The `hf-dataset` target on local parquet, csv and image-folder files made here, offline.

(Multilabel and regression targets: tests/test_target_tasks_hf_dataset.py.)
"""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

from tlbench.api import Env
from tlbench.errors import ParamError, ResourceUnavailable
from tlbench.hashing import splits_content_hash
from tlbench.params import resolve_params

SHA = "00112233445566778899aabbccddeeff00112233"
CLASSES = ["cat", "dog", "fox"]


def png(rng) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image_parquet(tmp_path_factory):
    """train.parquet (3 classes x 20 images) and test.parquet (3 x 5), images as PNG bytes."""
    from datasets import ClassLabel, Dataset, Features, Image, Value

    folder = tmp_path_factory.mktemp("image-parquet")
    rng = np.random.default_rng(0)
    features = Features({"picture": Image(), "kind": ClassLabel(names=CLASSES), "note": Value("string")})
    for split, per_class in (("train", 20), ("test", 5)):
        labels = [i % 3 for i in range(3 * per_class)]
        data = {"picture": [{"bytes": png(rng), "path": None} for _ in labels], "kind": labels,
                "note": [f"{split}{i}" for i in range(len(labels))]}
        Dataset.from_dict(data, features=features).to_parquet(str(folder / f"{split}.parquet"))
    return folder


@pytest.fixture(scope="module")
def text_csv(tmp_path_factory):
    """train.csv with 1500 labelled sentences (string labels) and test.csv with 90."""
    import pandas as pd

    folder = tmp_path_factory.mktemp("text-csv")
    for split, n in (("train", 1500), ("test", 90)):
        labels = ["neg", "pos", "mixed"]
        pd.DataFrame({"sentence": [f"{split} sentence {i}" for i in range(n)],
                      "label": [labels[i % 3] for i in range(n)]}).to_csv(folder / f"{split}.csv", index=False)
    return folder


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    for name in ("HF_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture
def env(cache_dir):
    return Env(cache_dir=cache_dir)


def target():
    from tlbench_builtin.hf_dataset import HFDataset

    return HFDataset()


def load(env, **given):
    item = target()
    p = resolve_params(item.params, given, "test")
    item.check(p, env)
    return item.load(p, env)


def indices_of(split, notes):
    return sorted(notes.index(str(example)) for example in split.examples)


def test_image_parquet_shots_give_files_with_the_original_bytes(image_parquet, env, hf_offline):
    import pyarrow.parquet as pq

    from tlbench.hashing import file_sha256

    data = load(env, path=str(image_parquet / "train.parquet"), shots=4, input_column="picture",
                label_column="kind")
    assert data.modality == "image" and data.class_names == CLASSES and data.num_classes == 3
    assert data.revision == "sha256:" + file_sha256(image_parquet / "train.parquet")
    splits = data.splits(0)
    assert np.bincount(splits.train.labels, minlength=3).tolist() == [4, 4, 4]
    assert np.bincount(splits.val.labels, minlength=3).tolist() == [4, 4, 4]  # val_shots defaults to shots
    table = pq.read_table(image_parquet / "train.parquet").to_pydict()
    cells = [cell["bytes"] for cell in table["picture"]]
    rows = {split: [cells.index(path.read_bytes()) for path in getattr(splits, split).examples]
            for split in ("train", "val", "test")}
    assert rows["train"] == sorted(rows["train"]) and not set(rows["train"]) & set(rows["val"])
    assert [table["kind"][r] for r in rows["train"]] == splits.train.labels.tolist()
    # no test split in a single file: a fixed 20% carve, the same for every seed
    assert len(splits.test) == 12 and rows["test"] == [cells.index(p.read_bytes()) for p in data.splits(1).test.examples]
    assert not set(rows["test"]) & (set(rows["train"]) | set(rows["val"]))


def test_content_hash_same_seed_same_hash_other_seed_other_hash(image_parquet, env, hf_offline):
    given = dict(path=str(image_parquet), format="parquet", shots=3, input_column="picture",
                 data_files={"train": "train.parquet", "test": "test.parquet"})
    first = load(env, **given)
    again = load(env, **given)  # a fresh load, as in another process
    hash0 = splits_content_hash(first.splits(0))[0]
    assert splits_content_hash(again.splits(0))[0] == hash0
    assert splits_content_hash(first.splits(1))[0] != hash0
    assert len(first.splits(0).test) == 15  # the test split, whole
    assert first.revision.startswith("listing-sha256:")


def test_vtab_1k_protocol_and_n_train(text_csv, env, hf_offline):
    given = dict(path=str(text_csv), format="csv", data_files={"train": "train.csv", "test": "test.csv"})
    data = load(env, protocol="vtab-1k", **given)
    assert data.modality == "text" and data.class_names == ["mixed", "neg", "pos"]
    splits = data.splits(0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (800, 200, 90)
    assert not set(splits.train.examples) & set(splits.val.examples)
    assert all(text.startswith("train ") for text in [*splits.train.examples, *splits.val.examples])
    assert splits.train.examples == sorted(splits.train.examples, key=lambda t: int(t.split()[-1]))
    expected = {"neg": 1, "pos": 2, "mixed": 0}
    assert [expected[["neg", "pos", "mixed"][int(t.split()[-1]) % 3]] for t in splits.train.examples] \
        == splits.train.labels.tolist()
    small = load(env, n_train=30, **given).splits(0)
    assert (len(small.train), len(small.val)) == (30, 7)  # n_val defaults to a quarter of n_train
    with pytest.raises(ParamError, match="protocol"):
        load(env, protocol="vtab-1k", n_train=10, **given)


def test_full_data_carves_val_and_test_from_a_lone_train_split(text_csv, env, hf_offline):
    data = load(env, path=str(text_csv / "train.csv"), val_fraction=0.1, test_fraction=0.2)
    zero, one = data.splits(0), data.splits(1)
    assert len(zero.test) == 300 and zero.test.examples == one.test.examples  # fixed across seeds
    assert len(zero.val) == 120 and zero.val.examples != one.val.examples  # seeded
    assert len(zero.train) == 1080
    everything = [*zero.train.examples, *zero.val.examples, *zero.test.examples]
    assert len(set(everything)) == 1500


def test_split_mapping_and_unlabelled_splits(tmp_path, env, hf_offline):
    import pandas as pd

    for split, labels in (("train", [0, 1] * 10), ("validation", [1, 0] * 5), ("test", [-1] * 6)):
        pd.DataFrame({"text": [f"{split} {i}" for i in range(len(labels))], "label": labels}).to_parquet(
            tmp_path / f"{split}.parquet")
    files = {s: f"{s}.parquet" for s in ("train", "validation", "test")}
    with pytest.raises(ParamError, match=r"splits\.test: .*'test'.*without a valid label"):
        load(env, path=str(tmp_path), format="parquet", data_files=files)
    data = load(env, path=str(tmp_path), format="parquet", data_files=files,
                splits={"train": "train", "test": "validation"})
    splits = data.splits(0)
    assert all(t.startswith("validation") for t in splits.test.examples) and len(splits.test) == 10
    assert len(splits.val) == 2 and all(t.startswith("train") for t in splits.val.examples)
    with pytest.raises(ParamError, match="no split 'dev'"):
        load(env, path=str(tmp_path), format="parquet", data_files=files, splits={"train": "dev"})


def test_ambiguous_columns_are_named(tmp_path, env, hf_offline):
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"text": Value("string"), "fine": ClassLabel(names=["a", "b"]),
                         "coarse": ClassLabel(names=["x", "y"])})
    Dataset.from_dict({"text": ["p", "q"] * 4, "fine": [0, 1] * 4, "coarse": [1, 0] * 4},
                      features=features).to_parquet(str(tmp_path / "two.parquet"))
    with pytest.raises(ParamError, match="label_column: cannot tell.*fine, coarse"):
        load(env, path=str(tmp_path / "two.parquet"))
    data = load(env, path=str(tmp_path / "two.parquet"), label_column="coarse", test_fraction=0.25)
    assert data.class_names == ["x", "y"] and data.column == "text"


def test_imagefolder_files_are_used_in_place(tmp_path, env, hf_offline):
    from PIL import Image

    rng = np.random.default_rng(1)
    for split, count in (("train", 6), ("test", 2)):
        for name in ("ant", "bee"):
            (tmp_path / "pics" / split / name).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
                    tmp_path / "pics" / split / name / f"{i}.png")
    data = load(env, path=str(tmp_path / "pics"), format="imagefolder", shots=2)
    assert data.class_names == ["ant", "bee"] and data.modality == "image"
    splits = data.splits(0)
    assert all(str(p).startswith(str(tmp_path / "pics" / "train")) for p in splits.train.examples)
    assert sorted(p.parent.name for p in splits.test.examples) == ["ant", "ant", "bee", "bee"]
    assert [["ant", "bee"].index(p.parent.name) for p in splits.train.examples] == splits.train.labels.tolist()


def test_hub_data_set_is_read_from_the_cache_offline(image_parquet, env, hf_offline):
    snapshot = hf_offline / "hub" / "datasets--example-org--toy" / "snapshots" / SHA
    (snapshot / "data").mkdir(parents=True)
    shutil.copy(image_parquet / "train.parquet", snapshot / "data" / "train-00000-of-00001.parquet")
    shutil.copy(image_parquet / "test.parquet", snapshot / "data" / "test-00000-of-00001.parquet")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(SHA)
    data = load(env, path="example-org/toy", n_train=9)
    assert data.revision == f"hf:example-org/toy@{SHA}"
    assert data.column == "picture" and data.label_column == "kind"  # the only Image / ClassLabel
    splits = data.splits(0)
    assert (len(splits.train), len(splits.test)) == (9, 15)


def test_missing_data_sets_say_how_to_provide_them(tmp_path, env, hf_offline):
    with pytest.raises(ResourceUnavailable) as caught:
        load(env, path="uoft-cs/cifar100")
    message = str(caught.value)
    assert "data set 'uoft-cs/cifar100'" in message and "HF_HUB_OFFLINE is set" in message
    assert "hf download uoft-cs/cifar100 --repo-type dataset" in message and "local files" in message
    assert "\n" not in message
    with pytest.raises(ResourceUnavailable, match="no such file or directory"):
        load(env, path=str(tmp_path / "missing.parquet"))


def test_cli_suite_with_a_missing_data_set_stops_before_any_run(cli, write_suite, tmp_path, hf_offline):
    suite = write_suite("""
        [suite]
        name = "offline-data"
        device = "cpu"
        [[sources]]
        plugin = "timm"
        model = "test_resnet"
        pretrained = false
        [[targets]]
        id = "pets"
        plugin = "hf-dataset"
        path = "timm/oxford-iiit-pet"
        shots = 2
        [[strategies]]
        plugin = "linear-probe"
    """)
    done = cli("run", str(suite), "--out", str(tmp_path / "out"),
               env={"HF_HOME": str(hf_offline), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("tlbench: warning:")]
    assert len(errors) == 1 and "targets[0] (pets)" in errors[0] and "timm/oxford-iiit-pet" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def fake_png(index: int) -> bytes:
    """Bytes that stand for an image: the target writes image cells out as they are and
    decodes nothing, and fixed bytes keep the hashes below independent of the PNG encoder."""
    return b"\x89PNG\r\n\x1a\n" + f"image {index}".encode()


def test_classification_content_hashes_are_what_they_were(tmp_path, env, hf_offline):
    """Computed before the task parameter existed: classification targets keep their
    labels, class names and examples, so their content hashes (and run ids) do not change."""
    import pandas as pd
    from datasets import ClassLabel, Dataset, Features, Image

    from tlbench.plugins import PluginRegistry

    names = ["neg", "pos", "mixed"]
    pd.DataFrame({"sentence": [f"sentence {i}" for i in range(60)],
                  "label": [names[i % 3] for i in range(60)]}).to_csv(tmp_path / "text.csv", index=False)
    features = Features({"picture": Image(), "kind": ClassLabel(names=CLASSES)})
    Dataset.from_dict({"picture": [{"bytes": fake_png(i), "path": None} for i in range(30)],
                       "kind": [i % 3 for i in range(30)]}, features=features).to_parquet(
        str(tmp_path / "images.parquet"))
    label_bytes = PluginRegistry.load().get("task", "classification").item.label_bytes

    def content_hash(seed, **given):
        data = load(env, **given)
        assert data.task == "classification"
        return splits_content_hash(data.splits(seed), label_bytes)[0], data.class_names

    assert content_hash(0, path=str(tmp_path / "text.csv"), shots=4) == (
        "e509e20ffcc51f2c7d04681f4e935b1ae078ba6b2b65e593cbc0eb9dbfe6f524", ["mixed", "neg", "pos"])
    assert content_hash(1, path=str(tmp_path / "text.csv"), n_train=20) == (
        "54e684a80489afb6b440174392446010bae39c28483ada1763b799e5a418d958", ["mixed", "neg", "pos"])
    assert content_hash(0, path=str(tmp_path / "images.parquet"), shots=3) == (
        "2db7fc1b5a3156dbd9ae436b1e83c85198a1401bd04d9fca47c2db7ccdddcd2a", CLASSES)
