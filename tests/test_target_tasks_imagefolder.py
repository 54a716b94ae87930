"""`imagefolder` with a labels file: multilabel (0/1 columns or ';'-separated names) and
regression, the split column, the sampling rules and the errors, on tiny PNGs made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tlbench.api import Env
from tlbench.errors import ParamError, ResourceUnavailable
from tlbench.hashing import splits_content_hash
from tlbench.params import resolve_params

CLASSES = ["cat", "dog", "owl"]
N = 30


def classes_of(i: int) -> list[str]:
    """Image i's classes: every non-empty subset of the three shows up."""
    return [name for k, name in enumerate(CLASSES) if ((i % 7) + 1) >> k & 1]


def make_images(root: Path, names: list[str], seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / name)


def file_name(i: int) -> str:
    return f"img/{i:02d}.png"


def index_of(path: Path) -> int:
    return int(path.stem)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """N listed images under img/, plus one image no labels file lists."""
    root = tmp_path / "data"
    make_images(root, [file_name(i) for i in range(N)] + ["extra/stray.png"])
    return root


@pytest.fixture
def env(cache_dir):
    return Env(cache_dir=cache_dir)


@pytest.fixture(scope="module")
def tasks():
    from tlbench.plugins import PluginRegistry

    registry = PluginRegistry.load()
    return {name: registry.get("task", name).item for name in ("multilabel", "regression")}


def target():
    from tlbench_builtin.imagefolder import ImageFolder

    return ImageFolder()


def resolved(**given) -> dict:
    return resolve_params(target().params, given, "test")


def load(env, **given):
    item, params = target(), resolved(**given)
    item.check(params, env)
    return item.load(params, env)


def write(frame: pd.DataFrame, path: Path) -> str:
    (frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path, index=False))
    return path.name


def every_split(data, tasks, seed: int = 0) -> list:
    """The splits of `seed` (their labels checked by the registered task, as the planner does)."""
    splits = data.splits(seed)
    for name, split in splits.items():
        tasks[data.task].check_labels(split.labels, data.info(), name)
    return [split for _, split in splits.items()]


def test_multilabel_from_01_columns(data_dir, env, tasks):
    rows = list(reversed(range(N)))  # the file's row order does not matter
    labels = write(pd.DataFrame({"file": [file_name(i) for i in rows],
                                 **{name: [int(name in classes_of(i)) for i in rows] for name in CLASSES}}),
                   data_dir / "labels.csv")
    data = load(env, path=str(data_dir), task="multilabel", labels=labels, n_train=12)
    assert data.task == "multilabel" and data.modality == "image" and data.class_names == CLASSES
    train, val, test = every_split(data, tasks)
    assert (len(train), len(val), len(test)) == (12, 3, 6)
    for split in (train, val, test):
        assert all(isinstance(p, Path) and p.is_file() for p in split.examples)
        assert split.labels.dtype == np.int64
        assert split.labels.tolist() == [[int(c in classes_of(index_of(p))) for c in CLASSES] for p in split.examples]
    assert test.examples == sorted(test.examples)
    assert data.revision.endswith(";unlisted=1")  # extra/stray.png is ignored, and counted


def test_multilabel_from_semicolon_separated_names_in_parquet(data_dir, env, tasks):
    labels = write(pd.DataFrame({"file": [file_name(i) for i in range(N)],
                                 "labels": [" ; ".join(reversed(classes_of(i))) for i in range(N)],
                                 "note": ["ignored"] * N}), data_dir / "labels.parquet")
    data = load(env, path=str(data_dir), task="multilabel", labels=labels, n_train=10, n_val=4)
    assert data.class_names == sorted(CLASSES)
    for split in every_split(data, tasks):
        assert split.labels.tolist() == [[int(c in classes_of(index_of(p))) for c in sorted(CLASSES)]
                                         for p in split.examples]


def test_regression_from_numeric_columns(data_dir, env, tasks):
    frame = pd.DataFrame({"file": [file_name(i) for i in range(N)], "size": [i / 4 for i in range(N)],
                          "age": [float(i % 3) for i in range(N)], "legs": [i % 5 for i in range(N)]})
    labels = write(frame, data_dir / "values.csv")
    two = load(env, path=str(data_dir), task="regression", labels=labels, label_columns=["size", "legs"])
    assert two.class_names == ["size", "legs"] and two.num_classes == 2
    for split in every_split(two, tasks):
        assert split.labels.dtype == np.float64
        assert split.labels.tolist() == [[index_of(p) / 4, float(index_of(p) % 5)] for p in split.examples]
    every = load(env, path=str(data_dir), task="regression", labels=labels)  # every column but file
    assert every.class_names == ["size", "age", "legs"]
    one = load(env, path=str(data_dir), task="regression", labels=labels, label_columns=["age"])
    assert [split.labels.shape for split in every_split(one, tasks)] == [(22,), (2,), (6,)]


def test_a_split_column_gives_the_data_its_own_splits(data_dir, env, tasks):
    split_of = {0: "train", 1: "train", 2: "validation", 3: "test"}
    labels = write(pd.DataFrame({"file": [file_name(i) for i in range(N)], "split": [split_of[i % 4] for i in range(N)],
                                 "y": [float(i) for i in range(N)]}), data_dir / "labels.csv")
    data = load(env, path=str(data_dir), task="regression", labels=labels)
    assert data.origins == {"train": "labels.csv (split train)", "val": "labels.csv (split val)",
                            "test": "labels.csv (split test)"}
    train, val, test = every_split(data, tasks)
    assert (len(train), len(val), len(test)) == (16, 7, 7)  # the whole val and test splits
    assert {index_of(p) % 4 for p in val.examples} == {2} and {index_of(p) % 4 for p in test.examples} == {3}
    assert val.labels.tolist() == [float(index_of(p)) for p in val.examples]
    bad = write(pd.DataFrame({"file": [file_name(0), file_name(1)], "split": ["train", "holdout"], "y": [1.0, 2.0]}),
                data_dir / "bad.csv")
    with pytest.raises(ParamError, match=r"^labels: the 'split' column of 'bad.csv' holds 'holdout'"):
        load(env, path=str(data_dir), task="regression", labels=bad)


def test_a_listed_file_that_does_not_exist_is_named(data_dir, env):
    names = [file_name(i) for i in range(N)] + ["img/gone.png", "img/lost.png"]
    labels = write(pd.DataFrame({"file": names, "y": np.arange(len(names), dtype=float)}), data_dir / "labels.csv")
    with pytest.raises(ResourceUnavailable) as caught:
        load(env, path=str(data_dir), task="regression", labels=labels)
    message = str(caught.value)
    assert message.startswith("labels: 'labels.csv' lists 'img/gone.png', which is not a file under")
    assert message.endswith("(and 1 more)") and "\n" not in message


@pytest.mark.parametrize("task, frame, message", [
    ("regression", {"y": [1.5, None, 2.5] * 10},
     r"^labels: 'labels.csv' has 10 example\(s\) with a missing label \(None or NaN\) in 'y'"),
    ("multilabel", {"labels": ["cat", "", "dog;owl"] * 10},
     r"^labels: 'labels.csv' has 10 example\(s\) with a missing label \(None or NaN\) in 'labels'"),
    ("multilabel", {"cat": [1, 0, None] * 10, "dog": [0, 1, 1] * 10},
     r"^labels: 'labels.csv' has 10 example\(s\) with a missing label \(None or NaN\) in 'cat', 'dog'"),
    ("multilabel", {"cat": [1, 0, 2] * 10, "dog": [0, 1, 1] * 10},
     r"^labels: column 'cat' has the value 2 in 'labels.csv'; multilabel columns hold 0 or 1"),
    ("regression", {"y": ["1.5", "big", "2"] * 10}, r"^labels: column 'y' holds .* values in 'labels.csv'; the "
                                                     r"regression task needs numbers"),
])
def test_labels_that_cannot_be_read_are_refused_in_one_line(data_dir, env, task, frame, message):
    labels = write(pd.DataFrame({"file": [file_name(i) for i in range(N)], **frame}), data_dir / "labels.csv")
    with pytest.raises(ParamError, match=message) as caught:
        load(env, path=str(data_dir), task=task, labels=labels)
    assert "\n" not in str(caught.value)


def test_missing_labels_are_counted_per_split(data_dir, env):
    labels = write(pd.DataFrame({"file": [file_name(i) for i in range(N)], "split": ["train", "test"] * (N // 2),
                                 "y": [1.0, 2.0, 3.0, None] * (N // 4) + [1.0, 2.0]}), data_dir / "labels.csv")
    with pytest.raises(ParamError, match=r"^labels: 'labels.csv' \(split 'test'\) has 7 example\(s\) with a missing"):
        load(env, path=str(data_dir), task="regression", labels=labels)


def test_regression_targets_differing_after_the_decimal_point_hash_apart(data_dir, env):
    from tlbench.plugins import PluginRegistry

    label_bytes = PluginRegistry.load().get("task", "regression").item.label_bytes
    values = [i / 4 for i in range(N)]
    changed = values[:5] + [values[5] + 1e-12] + values[6:]
    hashes = []
    for name, column in (("a.csv", values), ("b.csv", changed), ("c.csv", values)):
        labels = write(pd.DataFrame({"file": [file_name(i) for i in range(N)], "y": column}), data_dir / name)
        splits = load(env, path=str(data_dir), task="regression", labels=labels, n_train=N - 8, n_val=2).splits(0)
        hashes.append(splits_content_hash(splits, label_bytes)[0])
    assert hashes[0] == hashes[2] != hashes[1]


@pytest.mark.parametrize("task, key, count", [("multilabel", "shots", "n_train"), ("regression", "val_shots", "n_val")])
def test_per_class_draws_are_refused_by_check(data_dir, env, task, key, count):
    labels = write(pd.DataFrame({"file": [file_name(0)], "y": [1.0]}), data_dir / "labels.csv")
    with pytest.raises(ParamError, match=rf"^{key}: per-class draws need one class per example.*{count}"):
        target().check(resolved(path=str(data_dir), task=task, labels=labels, **{key: 3}), env)


@pytest.mark.parametrize("given, error, message", [
    (dict(labels="labels.csv"), ParamError, r"^labels: the classification task reads class folders"),
    (dict(label_columns=["y"]), ParamError, r"^label_columns: the classification task reads class folders"),
    (dict(task="multilabel"), ParamError, r"^labels: the multilabel task needs a labels file"),
    (dict(task="regression", labels="labels.txt"), ParamError, r"^labels: expected a \.csv or \.parquet file"),
    (dict(task="regression", labels="absent.csv"), ResourceUnavailable, r"^labels: no file '/.+/absent\.csv' "
                                                                        r"\(labels is relative to path"),
    (dict(task="regression", labels="labels.csv", label_columns=["file"]), ParamError,
     r"^label_columns: 'file' is not a label column"),
])
def test_label_parameters_are_checked_before_any_file_is_read(data_dir, env, given, error, message):
    (data_dir / "labels.csv").write_text("not read by check")
    with pytest.raises(error, match=message):
        target().check(resolved(path=str(data_dir), **given), env)


def test_task_modality_and_new_parameters_declared():
    item = target()
    assert item.task(resolved(path="x")) == "classification"
    assert item.task(resolved(path="x", task="regression", labels="y.csv")) == "regression"
    assert item.modality(resolved(path="x")) == "image"
    for key in ("task", "labels", "label_columns"):
        assert item.params[key].omit_default and item.params[key].help


def test_an_absolute_labels_path_and_paths_outside_the_folder(data_dir, env, tmp_path):
    labels = tmp_path / "elsewhere.csv"
    write(pd.DataFrame({"file": [file_name(i) for i in range(N)], "y": [float(i) for i in range(N)]}), labels)
    data = load(env, path=str(data_dir), task="regression", labels=str(labels))
    assert sum(len(split) for _, split in data.splits(0).items()) == N
    write(pd.DataFrame({"file": ["../outside.png"], "y": [1.0]}), labels)
    with pytest.raises(ParamError, match=r"lists '\.\./outside\.png', outside path"):
        load(env, path=str(data_dir), task="regression", labels=str(labels))
