"""`hf-dataset` with `task = "multilabel"` and `"regression"`, on local parquet and CSV
files made here, offline: the label layouts, the sampling rules and the errors."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tlbench.api import Env
from tlbench.errors import ParamError
from tlbench.hashing import splits_content_hash
from tlbench.params import resolve_params

TAGS = ["red", "green", "blue"]


def png(rng) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def tag_ids(i: int) -> list[int]:
    """Example i's classes (ids into TAGS): every subset of the three shows up, the empty one too."""
    return [k for k in range(3) if (i >> k) & 1]


@pytest.fixture(scope="module")
def text_parquet(tmp_path_factory):
    """train.parquet (48 rows) and test.parquet (16 rows): a text column and every label layout."""
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    folder = tmp_path_factory.mktemp("text-tasks")
    features = Features({"text": Value("string"), "tags": Sequence(ClassLabel(names=TAGS)),
                         "topics": Sequence(Value("string")), "is_red": Value("int64"), "is_green": Value("int64"),
                         "is_blue": Value("bool"), "score": Value("float64"), "weight": Value("float32")})
    for split, n, offset in (("train", 48, 0), ("test", 16, 1000)):
        rows = range(offset, offset + n)
        data = {"text": [f"{split} text {i}" for i in rows],
                "tags": [tag_ids(i) for i in rows],
                "topics": [[TAGS[k] for k in tag_ids(i)] for i in rows],
                "is_red": [int(0 in tag_ids(i)) for i in rows], "is_green": [int(1 in tag_ids(i)) for i in rows],
                "is_blue": [2 in tag_ids(i) for i in rows],
                "score": [i / 8 for i in rows], "weight": [float(i % 5) for i in rows]}
        Dataset.from_dict(data, features=features).to_parquet(str(folder / f"{split}.parquet"))
    return folder


@pytest.fixture(scope="module")
def image_parquet(tmp_path_factory):
    """images.parquet: 40 PNG images with a list of ClassLabel (`objects`) and a float (`brightness`)."""
    from datasets import ClassLabel, Dataset, Features, Image, Sequence, Value

    folder = tmp_path_factory.mktemp("image-tasks")
    rng = np.random.default_rng(0)
    features = Features({"picture": Image(), "objects": Sequence(ClassLabel(names=TAGS)),
                         "brightness": Value("float64")})
    data = {"picture": [{"bytes": png(rng), "path": None} for _ in range(40)],
            "objects": [tag_ids(i) for i in range(40)], "brightness": [0.1 * i for i in range(40)]}
    Dataset.from_dict(data, features=features).to_parquet(str(folder / "images.parquet"))
    return folder / "images.parquet"


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def env(cache_dir, hf_offline):
    return Env(cache_dir=cache_dir)


@pytest.fixture(scope="module")
def tasks():
    from tlbench.plugins import PluginRegistry

    registry = PluginRegistry.load()
    return {name: registry.get("task", name).item for name in ("classification", "multilabel", "regression")}


def target():
    from tlbench_builtin.hf_dataset import HFDataset

    return HFDataset()


def resolved(**given) -> dict:
    return resolve_params(target().params, given, "test")


def load(env, **given):
    item, params = target(), resolved(**given)
    item.check(params, env)
    return item.load(params, env)


def text_files(folder) -> dict:
    return dict(path=str(folder), format="parquet", data_files={"train": "train.parquet", "test": "test.parquet"})


def row_of(text: str) -> int:
    return int(text.split()[-1])


def assert_valid(data, tasks, seed: int = 0):
    """The splits of `seed`, after the registered task's own label checks (the planner's)."""
    splits = data.splits(seed)
    for name, split in splits.items():
        tasks[data.task].check_labels(split.labels, data.info(), name)
    return splits


@pytest.mark.parametrize("column", ["tags", "topics"])
def test_multilabel_from_a_list_column(text_parquet, env, tasks, column):
    """A Sequence(ClassLabel) names the classes; a list of strings gives its sorted distinct values."""
    data = load(env, task="multilabel", label_column=column, n_train=20, **text_files(text_parquet))
    assert data.task == "multilabel" and data.modality == "text" and data.column == "text"
    assert data.class_names == (TAGS if column == "tags" else sorted(TAGS))
    splits = assert_valid(data, tasks)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (20, 5, 16)
    for _, split in splits.items():
        assert split.labels.dtype == np.int64 and split.labels.shape == (len(split), 3)
        expected = [[int(name in [TAGS[k] for k in tag_ids(row_of(t))]) for name in data.class_names]
                    for t in split.examples]
        assert split.labels.tolist() == expected
    assert not splits.train.labels.sum(1).all()  # examples with none of the classes stay, as zero rows


def test_multilabel_from_one_01_column_per_class(text_parquet, env, tasks):
    data = load(env, task="multilabel", label_columns=["is_red", "is_green", "is_blue"], n_train=12,
                **text_files(text_parquet))
    assert data.class_names == ["is_red", "is_green", "is_blue"] and data.num_classes == 3
    assert data.label_column is None and data.column == "text"
    splits = assert_valid(data, tasks)
    assert splits.test.labels.tolist() == [[int(k in tag_ids(row_of(t))) for k in range(3)]
                                           for t in splits.test.examples]


def test_regression_from_one_and_from_two_numeric_columns(text_parquet, env, tasks):
    one = load(env, task="regression", label_column="score", **text_files(text_parquet))
    assert one.task == "regression" and one.num_classes == 1 and one.class_names == ["score"]
    splits = assert_valid(one, tasks)
    assert splits.train.labels.dtype == np.float64 and splits.train.labels.ndim == 1
    assert splits.test.labels.tolist() == [row_of(t) / 8 for t in splits.test.examples]
    two = load(env, task="regression", label_columns=["score", "weight"], protocol=None, n_train=10,
               **text_files(text_parquet))
    assert two.num_classes == 2 and two.class_names == ["score", "weight"]
    splits = assert_valid(two, tasks)
    assert splits.train.labels.shape == (10, 2)
    assert splits.train.labels.tolist() == [[row_of(t) / 8, float(row_of(t) % 5)] for t in splits.train.examples]


def test_image_inputs_for_both_tasks(image_parquet, env, tasks):
    """Images stay files; the only list of ClassLabel is found as the multilabel column."""
    multilabel = load(env, task="multilabel", n_train=16, n_test=8, path=str(image_parquet))
    assert multilabel.modality == "image" and multilabel.label_columns == ["objects"]
    assert multilabel.class_names == TAGS
    splits = assert_valid(multilabel, tasks)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 4, 8)
    assert all(p.suffix == ".png" and p.is_file() for p in splits.train.examples)
    regression = load(env, task="regression", label_column="brightness", n_train=16, path=str(image_parquet))
    splits = assert_valid(regression, tasks)
    assert splits.train.labels.shape == (16,) and regression.class_names == ["brightness"]
    # the same rows in both targets: the labels follow their images
    by_bytes = {p.read_bytes(): p for p in splits.train.examples}
    assert len(by_bytes) == 16


def test_vtab_protocol_and_n_test_draw_two_dimensional_labels(tmp_path, env, tasks):
    import pandas as pd

    n = 1300
    pd.DataFrame({"text": [f"t {i}" for i in range(n)], "a": [i % 2 for i in range(n)],
                  "b": [(i // 2) % 2 for i in range(n)]}).to_csv(tmp_path / "data.csv", index=False)
    given = dict(task="multilabel", label_columns=["a", "b"], path=str(tmp_path / "data.csv"))
    data = load(env, protocol="vtab-1k", n_test=50, **given)
    zero, one = assert_valid(data, tasks, 0), assert_valid(data, tasks, 1)
    assert (len(zero.train), len(zero.val), len(zero.test)) == (800, 200, 50)
    assert zero.test.examples == one.test.examples and zero.train.examples != one.train.examples
    everything = [*zero.train.examples, *zero.val.examples, *zero.test.examples]
    assert len(set(everything)) == len(everything)
    for _, split in zero.items():
        assert split.labels.tolist() == [[row_of(t) % 2, (row_of(t) // 2) % 2] for t in split.examples]
    full = load(env, **given).splits(0)  # fractions: 20% test, 10% of the rest for val
    assert (len(full.test), len(full.val), len(full.train)) == (260, 104, 936)


@pytest.mark.parametrize("task", ["multilabel", "regression"])
@pytest.mark.parametrize("key, count", [("shots", "n_train"), ("val_shots", "n_val")])
def test_per_class_draws_are_refused_before_any_data_is_read(tmp_path, env, task, key, count):
    params = resolved(task=task, path=str(tmp_path / "absent.parquet"), **{key: 2})
    with pytest.raises(ParamError) as caught:
        target().check(params, env)  # the file does not exist: the refusal comes first
    message = str(caught.value)
    assert message.startswith(f"{key}: ") and count in message and task in message and "\n" not in message


def test_missing_labels_are_refused_naming_the_split_and_how_many(tmp_path, env):
    from datasets import Dataset, Features, Sequence, Value

    features = Features({"text": Value("string"), "y": Value("float64"), "tags": Sequence(Value("string"))})
    for split, y in (("train", [0.5, 1.5, 2.5, 3.5] * 3), ("test", [1.0, None, float("nan"), 4.0])):
        tags = [["a"], ["b"], None, ["a", "b"]] * (len(y) // 4) if split == "test" else [["a"], ["b"]] * 6
        Dataset.from_dict({"text": [f"{split} {i}" for i in range(len(y))], "y": y, "tags": tags},
                          features=features).to_parquet(str(tmp_path / f"{split}.parquet"))
    files = text_files(tmp_path)
    with pytest.raises(ParamError) as caught:
        load(env, task="regression", label_column="y", **files)
    message = str(caught.value)
    assert message.startswith("label_column: split 'test' has 2 example(s) with a missing label") and "'y'" in message
    assert "\n" not in message
    with pytest.raises(ParamError, match=r"label_column: split 'test' has 1 example\(s\) with a missing label"):
        load(env, task="multilabel", label_column="tags", **files)
    with pytest.raises(ParamError, match=r"label_columns: split 'test' has 2 example\(s\) with a missing"):
        load(env, task="regression", label_columns=["y"], **files)


def test_two_regression_data_sets_differing_after_the_decimal_point_hash_apart(tmp_path, env, tasks):
    import pandas as pd

    values = [0.25 * i for i in range(30)]
    changed = list(values)
    changed[7] = values[7] + 1e-9
    for name, column in (("a.csv", values), ("b.csv", changed), ("c.csv", values)):
        pd.DataFrame({"text": [f"t {i}" for i in range(30)], "y": column}).to_csv(tmp_path / name, index=False)

    def content_hash(name):
        splits = load(env, task="regression", label_column="y", path=str(tmp_path / name)).splits(0)
        assert sorted(map(row_of, [*splits.train.examples, *splits.val.examples, *splits.test.examples])) \
            == list(range(30))
        return splits_content_hash(splits, tasks["regression"].label_bytes)[0]

    assert content_hash("a.csv") == content_hash("c.csv")
    assert content_hash("a.csv") != content_hash("b.csv")


def test_task_and_modality_are_declared_without_reading_data():
    item = target()
    assert item.task(resolved(path="org/x")) == "classification"
    assert item.task(resolved(path="org/x", task="regression")) == "regression"
    assert item.modality(resolved(path="org/x", task="multilabel")) is None
    for key in ("task", "label_columns"):
        assert item.params[key].omit_default and item.params[key].help


@pytest.mark.parametrize("given, message", [
    (dict(label_columns=["is_red", "is_blue"]), r"^label_columns: the classification task reads one label_column"),
    (dict(task="multilabel", label_column="tags", label_columns=["is_red", "is_blue"]),
     r"^label_column and label_columns: give one"),
    (dict(task="multilabel", label_columns=["is_red"]), r"^label_columns: a multilabel target needs at least 2"),
    (dict(task="regression", label_columns=[]), r"^label_columns: expected at least one column"),
    (dict(task="regression", label_columns=["score", "score"]), r"^label_columns: 'score' is listed twice"),
])
def test_contradicting_label_parameters_are_refused_by_check(text_parquet, env, given, message):
    with pytest.raises(ParamError, match=message):
        target().check(resolved(**text_files(text_parquet), **given), env)


@pytest.mark.parametrize("given, message", [
    (dict(task="regression", label_column="tags"), r"^label_column: column 'tags' holds a list per example; "
                                                   r"the regression task needs numbers"),
    (dict(task="regression", label_columns=["score", "is_blue"]), r"^label_columns: column 'is_blue' holds bool "
                                                                  r"values in split 'train'; the regression task "
                                                                  r"needs numbers"),
    (dict(task="multilabel", label_column="score"), r"^label_column: column 'score' holds one value per example"),
    (dict(task="multilabel", label_columns=["is_red", "weight"]), r"^label_columns: column 'weight' has the value "
                                                                  r"2\.0 in split 'train'; multilabel columns hold "
                                                                  r"0 or 1"),
    (dict(task="multilabel", label_columns=["is_red", "nope"]), r"^label_columns: no column 'nope'"),
    (dict(label_column="tags"), r"^label_column: 'tags' holds a list per example; set task = \"multilabel\""),
    (dict(task="regression"), r"^label_column: cannot tell .*\(or set label_columns\)"),
])
def test_labels_that_do_not_fit_the_task_are_refused_in_one_line(text_parquet, env, given, message):
    with pytest.raises(ParamError, match=message) as caught:
        load(env, **text_files(text_parquet), **given)
    assert "\n" not in str(caught.value)
