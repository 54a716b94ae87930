"""`hf-dataset` with detection labels (an objects column, cppe-5's layout) and
segmentation labels (a mask image column, scene_parse_150's), from local parquet files
made of digit scenes: the labels read are the scenes' own, and bad ones are refused in
one line."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from tlbench.api import Env
from tlbench.errors import ParamError
from tlbench.params import resolve_params

datasets = pytest.importorskip("datasets")

CLASSES = ["zero", "one", "seven"]


def _scenes(n_train=24, n_test=12):
    from tlbench_builtin.digit_scenes import DigitScenes

    params = resolve_params(DigitScenes.params, {"task": "detection", "classes": [0, 1, 7], "n_scenes": 60,
                                                  "n_test": n_test, "n_train": n_train, "n_val": 8}, "test")
    return DigitScenes().load(params, Env(cache_dir=Path("unused-cache"))).scenes(0)


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_detection(folder: Path, xyxy: bool = False, sizes: bool = True) -> dict:
    """cppe-5's layout: image, width, height, objects {bbox (COCO xywh), category}."""
    from datasets import ClassLabel, Dataset, Features, Image, Sequence, Value

    folder.mkdir(parents=True, exist_ok=True)
    fields = {"bbox": Sequence(Value("float32"), length=4), "category": ClassLabel(names=CLASSES)}
    features = Features({"image": Image(), **({"width": Value("int32"), "height": Value("int32")} if sizes else {}),
                         "objects": Sequence(fields)})
    scenes = _scenes()
    for split in ("train", "test"):
        rows = {"image": [], "objects": [], **({"width": [], "height": []} if sizes else {})}
        for scene in scenes[split]:
            rows["image"].append({"bytes": _png(scene.image), "path": None})
            boxes = scene.boxes.astype(float)
            if not xyxy:
                boxes = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
            rows["objects"].append({"bbox": boxes.tolist(), "category": scene.labels.tolist()})
            if sizes:
                rows["width"].append(scene.image.shape[1])
                rows["height"].append(scene.image.shape[0])
        Dataset.from_dict(rows, features=features).to_parquet(str(folder / f"{split}.parquet"))
    return {"path": str(folder), "format": "parquet", "data_files": {"train": "train.parquet", "test": "test.parquet"},
            "task": "detection", "n_train": 12, "n_val": 6}


def write_segmentation(folder: Path) -> dict:
    """scene_parse_150's layout: image and annotation (a mask image; 0 is 'other')."""
    from datasets import Dataset, Features, Image

    folder.mkdir(parents=True, exist_ok=True)
    features = Features({"image": Image(), "annotation": Image()})
    scenes = _scenes()
    for split in ("train", "test"):
        rows = {"image": [{"bytes": _png(s.image), "path": None} for s in scenes[split]],
                # class mask 0 background, 1 + k digit k; stored + 1 so that 0 is 'not labelled'
                "annotation": [{"bytes": _png((s.class_mask() + 1).astype(np.uint8)), "path": None}
                               for s in scenes[split]]}
        Dataset.from_dict(rows, features=features).to_parquet(str(folder / f"{split}.parquet"))
    return {"path": str(folder), "format": "parquet", "data_files": {"train": "train.parquet", "test": "test.parquet"},
            "task": "segmentation", "classes": ["background", *CLASSES], "reduce_zero_label": True,
            "n_train": 12, "n_val": 6}


def _load(tmp_path: Path, **params):
    from tlbench_builtin.hf_dataset import HFDataset

    target = HFDataset()
    return target.load(resolve_params(target.params, params, "test"), Env(cache_dir=tmp_path / "cache"))


@pytest.mark.parametrize("xyxy, sizes", [(False, True), (True, False)])
def test_objects_give_the_scenes_boxes(tmp_path, xyxy, sizes):
    params = write_detection(tmp_path / "data", xyxy=xyxy, sizes=sizes)
    data = _load(tmp_path, **params, **({"bbox_format": "xyxy"} if xyxy else {}))
    assert data.task == "detection" and data.class_names == CLASSES and data.modality == "image"
    test = data.splits(0).test
    scenes = _scenes()["test"]
    assert len(test) == len(scenes)
    for label, scene in zip(test.labels, scenes):
        assert np.allclose(label["boxes"], scene.boxes) and np.array_equal(label["classes"], scene.labels)
        assert tuple(label["size"]) == scene.image.shape
    from tlbench_builtin.detection import Detection

    Detection().check_labels(test.labels, data.info(), "test")


def test_masks_give_the_scenes_classes_with_zero_ignored(tmp_path):
    data = _load(tmp_path, **write_segmentation(tmp_path / "data"))
    assert data.task == "segmentation" and data.class_names == ["background", *CLASSES]
    test = data.splits(0).test
    for mask, scene in zip(test.labels, _scenes()["test"]):
        assert np.array_equal(mask, scene.class_mask())


def test_bad_dense_labels_are_refused_in_one_line(tmp_path):
    params = write_segmentation(tmp_path / "seg")
    with pytest.raises(ParamError, match=r"^classes: the segmentation task needs the names of the mask values"):
        _load(tmp_path, **{**params, "classes": None})
    with pytest.raises(ParamError, match=r"^classes: split 'train' row 0 has class id 3, but classes names 3 "):
        _load(tmp_path, **{**params, "classes": ["background", "zero", "one"]})
    detection = write_detection(tmp_path / "det")
    with pytest.raises(ParamError, match=r"^reduce_zero_label: applies to segmentation masks"):
        _load(tmp_path, **detection, reduce_zero_label=True)
    with pytest.raises(ParamError, match=r"box 0 .* has no area \(bbox_format = 'xyxy'\)"):
        _load(tmp_path, **detection, bbox_format="xyxy")  # the file's boxes are xywh: x1 < x0 for some
    with pytest.raises(ParamError, match="shots: per-class draws need one class per example"):
        _load(tmp_path, **{**detection, "n_train": None, "n_val": None}, shots=2)
