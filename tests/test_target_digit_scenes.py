"""The `digit-scenes` target: deterministic scenes of pasted digits, a fixed test split,
seeded train / val draws, labels per task that agree with what each scene stores, and
boxes and masks kept for detection and segmentation."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tlbench.api import Env
from tlbench.errors import ParamError
from tlbench.params import resolve_params
from tlbench_builtin.digit_scenes import INK, DigitScenes, DigitScenesData, _digit_banks
from tlbench_builtin.digits import load_digit_images

TARGET = DigitScenes()
SMALL = {"n_scenes": 160, "n_test": 60, "n_train": 40, "n_val": 20}


def params(**changes) -> dict:
    return resolve_params(TARGET.params, {**SMALL, **changes}, "digit-scenes")


def load(**changes) -> DigitScenesData:
    return TARGET.load(params(**changes), Env(cache_dir="unused"))


def fingerprint(data: DigitScenesData, seeds=(0, 1)) -> str:
    digest = hashlib.sha256()
    for seed in seeds:
        for _, split in data.splits(seed).items():
            for image in split.examples:
                digest.update(image.tobytes())
            digest.update(split.labels.tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def multilabel() -> DigitScenesData:
    return load()


@pytest.fixture(scope="module")
def all_scenes(multilabel):
    return multilabel.pool + multilabel.test


def test_defaults_give_the_documented_shapes_and_names():
    data = TARGET.load(resolve_params(TARGET.params, {}, "digit-scenes"), Env(cache_dir="unused"))
    splits = data.splits(0)
    assert (data.modality, data.task, data.num_classes) == ("image", "multilabel", 10)
    assert data.class_names == [str(c) for c in range(10)]
    assert data.revision == "digit-scenes-1-sklearn-digits-1797"
    assert [len(split) for _, split in splits.items()] == [100, 50, 400]
    for _, split in splits.items():
        assert split.labels.shape == (len(split), 10) and split.labels.dtype == np.uint8
        assert all(image.shape == (32, 32) and image.dtype == np.uint8 for image in split.examples)


def test_every_parameter_has_a_help_line():
    assert all(param.help for param in TARGET.params.values())


def test_same_parameters_give_byte_identical_scenes(multilabel):
    assert fingerprint(load()) == fingerprint(multilabel)


def test_another_process_makes_the_same_bytes(multilabel):
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"from {Path(__file__).stem} import fingerprint, load; print(fingerprint(load()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == fingerprint(multilabel)


def test_scene_seed_changes_the_scenes(multilabel):
    assert fingerprint(load(scene_seed=1)) != fingerprint(multilabel)


def test_seeds_draw_other_training_scenes_but_score_on_the_same_test_scenes(multilabel):
    first, second = multilabel.splits(0), multilabel.splits(1)
    assert [a.tobytes() for a in first.train.examples] != [b.tobytes() for b in second.train.examples]
    assert [a.tobytes() for a in first.test.examples] == [b.tobytes() for b in second.test.examples]
    assert np.array_equal(first.test.labels, second.test.labels)


def test_test_scenes_do_not_depend_on_the_pool_size(multilabel):
    bigger = load(n_scenes=200)
    assert [s.image.tobytes() for s in bigger.test] == [s.image.tobytes() for s in multilabel.test]


def test_splits_never_overlap(multilabel):
    for seed in range(4):
        parts = multilabel.scenes(seed)
        ids = {name: {id(scene) for scene in scenes} for name, scenes in parts.items()}
        assert [len(ids[name]) for name in ("train", "val", "test")] == [40, 20, 60]
        assert sum(len(found) for found in ids.values()) == len(set().union(*ids.values()))
        images = {name: {scene.image.tobytes() for scene in scenes} for name, scenes in parts.items()}
        assert sum(len(found) for found in images.values()) == 120  # no image twice, within or across


def test_test_scenes_use_other_handwritten_digits_than_the_pool():
    images, targets = load_digit_images()
    pool, test = _digit_banks(images, targets, list(range(10)), scene_seed=0)
    for pool_class, test_class in zip(pool, test):
        assert {d.tobytes() for d in pool_class}.isdisjoint(d.tobytes() for d in test_class)
    assert sum(len(c) for c in pool) + sum(len(c) for c in test) == len(targets)


def test_multilabel_labels_are_the_classes_each_scene_holds(multilabel):
    parts, splits = multilabel.scenes(3), multilabel.splits(3)
    for name, split in splits.items():
        assert split.labels.shape == (len(split), 10) and split.labels.dtype == np.uint8
        for row, scene, image in zip(split.labels, parts[name], split.examples):
            assert image is scene.image
            assert set(np.flatnonzero(row)) == set(scene.labels.tolist())


def test_multilabel_keeps_classes_in_the_order_given():
    data = load(classes=[7, 2, 5])
    assert data.class_names == ["7", "2", "5"] and data.num_classes == 3
    split = data.splits(0).train
    assert split.labels.shape == (40, 3)
    assert all(set(np.flatnonzero(row)) == set(scene.labels.tolist())
               for row, scene in zip(split.labels, data.scenes(0)["train"]))


def test_every_class_appears(all_scenes):
    assert set(np.concatenate([scene.labels for scene in all_scenes]).tolist()) == set(range(10))


def test_regression_count_is_the_number_of_boxes():
    data = load(task="regression")
    assert (data.task, data.num_classes, data.class_names) == ("regression", 1, ["count"])
    parts = data.scenes(0)
    counts = []
    for name, split in data.splits(0).items():
        assert split.labels.shape == (len(split),) and split.labels.dtype == np.float32
        assert split.labels.tolist() == [float(len(scene.boxes)) for scene in parts[name]]
        counts += split.labels.tolist()
    assert set(counts) == {1.0, 2.0, 3.0, 4.0}  # min_digits to max_digits, each drawn, nothing outside


def test_regression_sum_adds_the_digit_values_not_the_class_indices():
    data = load(task="regression", regression_target="sum", classes=[9, 3, 5])
    assert data.class_names == ["sum"]
    split, scenes = data.splits(0).train, data.scenes(0)["train"]
    assert split.labels.dtype == np.float32
    assert split.labels.tolist() == [float(sum([9, 3, 5][i] for i in scene.labels)) for scene in scenes]


def test_boxes_lie_inside_the_canvas(all_scenes):
    for scene in all_scenes:
        assert scene.boxes.shape == (len(scene.labels), 4)
        x0, y0, x1, y1 = scene.boxes.T
        assert (0 <= x0).all() and (x0 < x1).all() and (x1 <= 32).all()
        assert (0 <= y0).all() and (y0 < y1).all() and (y1 <= 32).all()


def test_masks_agree_with_boxes_and_image(all_scenes):
    for scene in all_scenes:
        for i, (x0, y0, x1, y1) in enumerate(scene.boxes):
            rows, columns = np.nonzero(scene.instances == i + 1)
            assert ((y0 <= rows) & (rows < y1) & (x0 <= columns) & (columns < x1)).all()
        shown = scene.instances > 0
        assert (scene.image[shown] >= INK).all()
        expected = np.where(shown, np.concatenate([[0], scene.labels + 1])[scene.instances], 0)
        assert np.array_equal(scene.class_mask(), expected)


def test_most_digits_stay_visible(all_scenes):
    visible = [np.any(scene.instances == i + 1) for scene in all_scenes for i in range(len(scene.labels))]
    assert np.mean(visible) > 0.97


@pytest.mark.parametrize("changes, name", [
    ({"classes": [1, 1, 2]}, "classes"),
    ({"classes": [3, 10]}, "classes"),
    ({"classes": [4]}, "classes"),
    ({"min_digits": 5, "max_digits": 4}, "min_digits"),
    ({"min_scale": 12, "max_scale": 10}, "min_scale"),
    ({"canvas": 16, "max_scale": 20}, "max_scale"),
    ({"n_scenes": 100}, "n_scenes"),
])
def test_check_refuses_impossible_settings_in_one_line_naming_the_parameter(changes, name):
    with pytest.raises(ParamError) as error:
        TARGET.check(params(**changes), Env(cache_dir="unused"))
    message = str(error.value)
    assert message.startswith(f"{name}:") and "\n" not in message


def test_one_class_is_fine_for_regression():
    TARGET.check(params(task="regression", classes=[4]), Env(cache_dir="unused"))


def test_importing_the_module_imports_neither_torch_nor_numpy():
    code = "import sys, tlbench_builtin.digit_scenes; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
