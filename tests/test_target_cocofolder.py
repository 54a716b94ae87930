"""The `cocofolder` target: a COCO export the way labelling tools write it (category ids
neither 0-based nor contiguous, images with no boxes, mixed sizes), read, refused in one
line when wrong, and run end to end with saved predictions that re-score with
faster-coco-eval against the export's own test file to the recorded mAP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import RANDOM_RESNET

from tlbench.api import Env
from tlbench.errors import ParamError, ResourceUnavailable
from tlbench.params import resolve_params
from tlbench_builtin.cocofolder import CocoFolder
from tlbench_builtin.digit_scenes import DigitScenes

CATEGORIES = [{"id": 0, "name": "digits", "supercategory": "none"},  # Roboflow's unused parent category
              {"id": 3, "name": "zero", "supercategory": "digits"},
              {"id": 7, "name": "one", "supercategory": "digits"},
              {"id": 12, "name": "seven", "supercategory": "digits"}]
DIGIT_TO_CATEGORY = {0: 3, 1: 7, 2: 12}  # scene class index (digits 0, 1, 7) -> category id
SIZES = [(32, 32), (48, 48), (40, 56), (64, 48)]  # (height, width): mixed sizes, some not square


def _write_split(folder: Path, scenes, first_id: int, blank: int = 0) -> None:
    """Scenes as PNGs of mixed sizes and a COCO file beside them, as Roboflow exports a
    split; `blank` extra images with no digit and no annotation."""
    from PIL import Image

    folder.mkdir(parents=True)
    images, annotations = [], []
    canvases = [(scene.image, scene.boxes, scene.labels) for scene in scenes]
    noise = np.random.default_rng(first_id)  # faint noise: no two blank images are the same
    canvases += [(noise.integers(0, 40, scenes[0].image.shape).astype(np.uint8), np.zeros((0, 4)),
                  np.zeros(0, np.int64)) for _ in range(blank)]
    for i, (image, boxes, classes) in enumerate(canvases):
        height, width = SIZES[i % len(SIZES)]
        name = f"scene_{first_id + i:04d}.png"
        Image.fromarray(image).convert("RGB").resize((width, height), Image.NEAREST).save(folder / name)
        image_id = first_id + i
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        sx, sy = width / image.shape[1], height / image.shape[0]
        for box, cls in zip(boxes, classes):
            x0, y0, x1, y1 = box
            annotations.append({"id": len(annotations) + 1 + 10 * first_id, "image_id": image_id,
                                "category_id": DIGIT_TO_CATEGORY[int(cls)], "iscrowd": 0,
                                "bbox": [x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy],
                                "area": (x1 - x0) * sx * (y1 - y0) * sy})
    (folder / "_annotations.coco.json").write_text(json.dumps(
        {"info": {}, "images": images, "annotations": annotations, "categories": CATEGORIES}))


def coco_export(tmp: Path, n_train: int = 60, n_val: int = 16, n_test: int = 24) -> str:
    """A Roboflow-style export of digit scenes in `tmp`/export: train/, valid/ and test/,
    each with its COCO file; train has 4 blank images, test 2."""
    params = resolve_params(DigitScenes.params, {"task": "detection", "classes": [0, 1, 7], "n_scenes": 120,
                                                  "n_test": n_test, "n_train": n_train, "n_val": n_val,
                                                  "max_digits": 3}, "test")
    scenes = DigitScenes().load(params, Env(cache_dir=Path("unused-cache"))).scenes(0)
    root = Path(tmp) / "export"
    _write_split(root / "train", scenes["train"], 1, blank=4)
    _write_split(root / "valid", scenes["val"], 200)
    _write_split(root / "test", scenes["test"], 300, blank=2)
    return str(root)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return Path(coco_export(tmp_path_factory.mktemp("coco")))


def _load(path: Path, **extra):
    params = resolve_params(CocoFolder.params, {"path": str(path), **extra}, "test")
    return CocoFolder().load(params, Env(cache_dir=Path("unused-cache")))


def test_an_export_reads_with_its_own_ids_and_every_image(export):
    data = _load(export)
    assert data.task == "detection" and data.class_ids == [0, 3, 7, 12]
    assert data.class_names == ["digits", "zero", "one", "seven"]
    splits = data.splits(0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (64, 16, 26)
    test = list(splits.test.labels)
    assert sum(len(label["boxes"]) == 0 for label in test) == 2  # images without a box are kept
    assert {tuple(label["size"]) for label in test} == set(SIZES)
    coco = json.loads((export / "test" / "_annotations.coco.json").read_text())
    first = next(a for a in coco["annotations"] if a["image_id"] == test[0]["image_id"])
    x, y, w, h = first["bbox"]
    assert np.allclose(test[0]["boxes"][0], [x, y, x + w, y + h])
    assert data.class_ids[test[0]["classes"][0]] == first["category_id"]
    registry_task = __import__("tlbench_builtin.detection", fromlist=["Detection"]).Detection()
    registry_task.check_labels(test, data.info(), "test")
    assert data.info().class_ids == (0, 3, 7, 12)


def test_one_file_layout_with_an_images_folder_and_crowds_left_out(export, tmp_path):
    root = tmp_path / "cvat"
    shutil.copytree(export / "train", root / "images")
    coco = json.loads((root / "images" / "_annotations.coco.json").read_text())
    (root / "images" / "_annotations.coco.json").unlink()
    coco["annotations"][0]["iscrowd"] = 1
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_default.json").write_text(json.dumps(coco))
    data = _load(root, n_train=20, n_val=10)
    labels = data.labels["train"]
    assert len(labels) == 64 and sum(len(label["boxes"]) for label in labels) == len(coco["annotations"]) - 1
    assert len(data.splits(1).train) == 20


def _broken(export: Path, tmp_path: Path, edit) -> Path:
    root = tmp_path / "broken"
    shutil.copytree(export, root)
    path = root / "train" / "_annotations.coco.json"
    coco = json.loads(path.read_text())
    edit(coco, root)
    path.write_text(json.dumps(coco))
    return root


@pytest.mark.parametrize("edit, error, message", [
    (lambda c, r: c["annotations"][0].update(category_id=5), ParamError, "has category 5, which the file's categories"),
    (lambda c, r: c["annotations"][0].update(bbox=[1, 1, 0, 4]), ParamError, "has no area"),
    (lambda c, r: c["images"][0].update(width=999), ParamError, "says image 1 is 999x32, but scene_0001.png is 32x32"),
    (lambda c, r: (r / "train" / "scene_0002.png").unlink(), ResourceUnavailable, "'scene_0002.png', not found"),
    (lambda c, r: c.pop("categories"), ParamError, "is not a COCO file"),
])
def test_a_broken_export_is_refused_in_one_line(export, tmp_path, edit, error, message):
    with pytest.raises(error) as caught:
        _load(_broken(export, tmp_path, edit))
    assert message in str(caught.value) and "\n" not in str(caught.value)


SUITE = """
[suite]
name = "coco"
seeds = [0]
device = "cpu"
save_predictions = true
""" + RANDOM_RESNET + """
[[targets]]
id = "products"
plugin = "cocofolder"
path = "export"

[[strategies]]
id = "ft"
plugin = "full-finetune"
epochs = 3
batch_size = 16
lr = 1e-2
"""


def test_an_export_runs_end_to_end_and_its_saved_predictions_rescore_to_the_recorded_map(export, cli, tmp_path):
    from faster_coco_eval import COCO, COCOeval_faster

    shutil.copytree(export, tmp_path / "export")
    (tmp_path / "suite.toml").write_text(SUITE)
    out = tmp_path / "out"
    result = cli("run", str(tmp_path / "suite.toml"), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    assert {r["spec"]["strategy"]["id"] for r in records} == {"ft", "scratch-ft"}
    for record in records:
        assert record["details"]["target"]["class_ids"] == [0, 3, 7, 12]
        reference = record["details"]["predictions"]
        assert reference["format"] == "json"
        results = json.loads((out / reference["path"]).read_text())
        assert results and {"image_id", "category_id", "bbox", "score"} == set(results[0])
        assert {r["category_id"] for r in results} <= {0, 3, 7, 12}
        truth = COCO(str(export / "test" / "_annotations.coco.json"))
        evaluation = COCOeval_faster(truth, truth.loadRes(results), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
        assert record["metrics"]["test_mAP"] == pytest.approx(max(float(evaluation.stats[0]), 0.0), abs=1e-9)
        assert record["metrics"]["test_mAP_50"] == pytest.approx(max(float(evaluation.stats[1]), 0.0), abs=1e-9)


def test_few_shot_draws_of_images_are_stratified_by_their_rarest_class():
    from tlbench_builtin.split_sampling import box_strata, draw, Pools

    rng = np.random.default_rng(0)
    # 200 images: class 0 everywhere, class 2 in 10 of them, 20 without a box
    labels = np.empty(200, dtype=object)
    for i in range(200):
        classes = [] if i >= 180 else [0] + ([2] if i % 18 == 0 else []) + ([1] if i % 3 == 0 else [])
        labels[i] = {"boxes": rng.uniform(0, 1, (len(classes), 4)), "classes": np.array(classes), "size": (8, 8)}
    strata = box_strata(labels)
    assert (strata == 2).sum() == 10 and (strata == -1).sum() == 20
    assert ((strata == 1) == np.array([i < 180 and i % 3 == 0 and i % 18 != 0 for i in range(200)])).all()
    for seed in range(5):
        drawn = draw(Pools(np.arange(200), labels), {"n_train": 40, "n_val": 20, "test_fraction": 0.2}, seed,
                     ["a", "b", "c"])
        train = strata[drawn.train]
        assert len(drawn.train) == 40 and (train == 2).sum() >= 1  # a 5% class is never left out of 40 images
        assert not set(drawn.train) & set(drawn.val) and not set(drawn.train) & set(drawn.test)
    assert box_strata(np.arange(5)) is None
