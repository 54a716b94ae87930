"""`hf-dataset`'s benchmark protocols on local parquet files made here: Speech Commands
remapped to SUPERB's 12 keyword-spotting classes (`class_map`), and ESC-50 split by its
fold column (`split_by`)."""

from __future__ import annotations

import numpy as np
import pytest

from tlbench.api import Env
from tlbench.errors import ParamError
from tlbench.params import resolve_params
from tlbench.testing import check_target

from test_target_hf_audio import wav_bytes

COMMANDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "zero", "one", "bed", "bird",
            "_silence_"]
"""Speech Commands v0.02's words as its ClassLabel orders them (a shortened list), with _silence_."""
SUPERB = {word: word for word in COMMANDS[:10]} | {"_silence_": "_silence_", "*": "_unknown_"}


@pytest.fixture(scope="module")
def commands_parquet(tmp_path_factory):
    from datasets import Audio, ClassLabel, Dataset

    folder = tmp_path_factory.mktemp("speech-commands")
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 4), ("validation", 2), ("test", 2)):
        labels = [i % len(COMMANDS) for i in range(len(COMMANDS) * per_class)]
        data = Dataset.from_dict({"audio": [{"bytes": wav_bytes(rng, 16000, 1, 0.05), "path": f"{split}-{i}.wav"}
                                            for i in range(len(labels))], "label": labels})
        data = data.cast_column("audio", Audio()).cast_column("label", ClassLabel(names=COMMANDS))
        data.to_parquet(str(folder / f"{split}.parquet"))
    return folder


@pytest.fixture(scope="module")
def esc_parquet(tmp_path_factory):
    from datasets import Audio, Dataset

    folder = tmp_path_factory.mktemp("esc50")
    rng = np.random.default_rng(1)
    n = 5 * 3 * 4  # 5 folds x 3 classes x 4 clips
    data = Dataset.from_dict({"audio": [{"bytes": wav_bytes(rng, 8000, 1, 0.05), "path": f"{i}.wav"} for i in range(n)],
                              "fold": [1 + i // 12 for i in range(n)], "target": [i % 3 for i in range(n)],
                              "category": [["dog", "rain", "siren"][i % 3] for i in range(n)]})
    data.cast_column("audio", Audio()).to_parquet(str(folder / "esc50.parquet"))
    return folder


def _load(params: dict, cache_dir):
    from tlbench_builtin.hf_dataset import HFDataset

    item = HFDataset()
    return item.load(resolve_params(item.params, params, "test"), Env(cache_dir=cache_dir))


def test_speech_commands_maps_to_superb_twelve_classes(commands_parquet, cache_dir):
    params = {"path": str(commands_parquet), "format": "parquet", "class_map": SUPERB}
    data = check_target("hf-dataset", params, cache_dir=cache_dir)
    assert data.class_names == [*COMMANDS[:10], "_silence_", "_unknown_"]
    splits = data.splits(0)
    by_name = {name: i for i, name in enumerate(data.class_names)}
    labels = np.asarray(splits.test.labels)
    # the test split keeps every row: 2 per word; 'zero', 'one', 'bed' and 'bird' all became _unknown_
    assert len(labels) == 2 * len(COMMANDS)
    assert (labels == by_name["_unknown_"]).sum() == 2 * 4 and (labels == by_name["_silence_"]).sum() == 2
    assert all((labels == by_name[word]).sum() == 2 for word in COMMANDS[:10])


def test_a_class_map_without_a_star_drops_the_other_classes_and_their_rows(commands_parquet, cache_dir):
    data = _load({"path": str(commands_parquet), "format": "parquet", "class_map": {"yes": "yes", "no": "no"}},
                 cache_dir)
    assert data.class_names == ["yes", "no"]
    splits = data.splits(0)
    assert len(splits.test) == 4 and sorted(np.asarray(splits.test.labels).tolist()) == [0, 0, 1, 1]
    assert len(splits.train) == 8


@pytest.mark.parametrize("class_map, message", [
    ({"maybe": "maybe", "yes": "yes"}, "class_map.maybe: the data set has no class 'maybe'"),
    ({"yes": "yes"}, "class_map: keeps fewer than two classes"),
    ({"yes": 1}, "class_map.yes: expected our name for the class"),
])
def test_class_map_mistakes_are_one_line(commands_parquet, cache_dir, class_map, message):
    with pytest.raises(ParamError, match=message):
        _load({"path": str(commands_parquet), "format": "parquet", "class_map": class_map}, cache_dir)


def test_esc50_is_split_by_fold(esc_parquet, cache_dir):
    params = {"path": str(esc_parquet / "esc50.parquet"), "label_column": "target", "val_shots": 2,
              "split_by": {"column": "fold", "test": [5], "val": [4]}}
    data = check_target("hf-dataset", params, cache_dir=cache_dir)
    splits = data.splits(0)
    assert len(splits.test) == 12 and len(splits.train) == 36 and len(splits.val) == 6
    folds = _load(params, cache_dir).datasets
    assert set(folds["test"]["fold"]) == {5} and set(folds["val"]["fold"]) == {4}
    assert set(folds["train"]["fold"]) == {1, 2, 3}


@pytest.mark.parametrize("split_by, message", [
    ({"column": "fold", "test": [9]}, r"split_by\.test: no row has fold in \[9\]"),
    ({"column": "folds", "test": [5]}, "split_by.column: the data set has no column 'folds'"),
    ({"column": "fold", "test": [5], "val": [5]}, "split_by: 5 is in both test and val"),
    ({"column": "fold"}, "split_by.test: expected a non-empty list"),
])
def test_split_by_mistakes_are_one_line(esc_parquet, cache_dir, split_by, message):
    with pytest.raises(ParamError, match=message):
        _load({"path": str(esc_parquet / "esc50.parquet"), "label_column": "target", "split_by": split_by},
              cache_dir)
