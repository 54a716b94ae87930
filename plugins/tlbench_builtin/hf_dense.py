"""Detection and segmentation labels of `hf-dataset` targets.

Detection, the layout of the hub's detection sets (``cppe-5``,
``detection-datasets/coco``): an image column and an ``objects`` column holding, per
image, a list of boxes (``bbox``) and their classes (``category``, a ClassLabel whose
names are the classes, or plain ids, named by their sorted values). Boxes are COCO's
``[x, y, width, height]`` in pixels unless `bbox_format` says ``xyxy``. The image's size
comes from ``width`` and ``height`` columns when the data set has them (checked against
the image for the first rows), else from each image's header; images with no box are
kept.

Segmentation, the layout of ``scene_parse_150`` and most hub segmentation sets: an image
column and a mask column (``annotation``, ``mask``, ``segmentation_mask`` or ``label``;
an Image of class ids, the image's size). The class names are not in the data: the
suite gives them (`classes`, one per mask value). ``reduce_zero_label`` reads value 0 as
"not labelled" (255) and k as class k - 1, ADE20K's convention (its 0 is "other").

Labels are read once when the target loads, as every other task's (hashed with the
examples; an edited box reruns what used it).
"""

from __future__ import annotations

import io

from tlbench.errors import ParamError

DETECTION, SEGMENTATION = "detection", "segmentation"
DENSE_TASKS = (DETECTION, SEGMENTATION)
OBJECT_COLUMNS = ("objects",)
MASK_COLUMNS = ("annotation", "mask", "segmentation_mask", "label")
_BOX_KEYS = ("bbox", "boxes", "bboxes")
_CLASS_KEYS = ("category", "categories", "label", "labels")
IGNORE = 255
_SIZE_CHECKS = 8
"""Rows whose width and height columns are checked against the image itself."""


def _image_size(cell: dict) -> tuple[int, int]:
    """(height, width) of an undecoded image cell, from its header."""
    from PIL import Image

    source = io.BytesIO(cell["bytes"]) if cell.get("bytes") else cell.get("path")
    with Image.open(source) as picture:
        return picture.size[1], picture.size[0]


def _key(fields, keys: tuple[str, ...], what: str, column: str) -> str:
    found = next((k for k in keys if k in fields), None)
    if found is None:
        raise ParamError(f"label_column: {column!r} has no {what} field ({' or '.join(keys)}); its fields: "
                         f"{', '.join(fields)}")
    return found


def _object_fields(feature, column: str):
    """The dict of sub-features of an objects column (a dict of lists, or a list of dicts)."""
    from .hf_dataset import _list_item

    fields = feature if isinstance(feature, dict) else _list_item(feature)
    if not isinstance(fields, dict):
        raise ParamError(f"label_column: column {column!r} holds {feature}; the detection task needs objects: "
                         f"per image, boxes ({'/'.join(_BOX_KEYS)}) and their classes ({'/'.join(_CLASS_KEYS)})")
    return fields


def object_labels(datasets_by_split: dict, image: str, column: str, feature, bbox_format: str,
                  split_map: dict[str, str]) -> tuple[list[str], dict]:
    """(class names, per split an object array of detection labels) of an objects column."""
    import datasets
    import numpy as np

    from .hf_dataset import _list_item

    fields = _object_fields(feature, column)
    box_key, class_key = _key(fields, _BOX_KEYS, "box", column), _key(fields, _CLASS_KEYS, "class", column)
    names_feature = fields[class_key]
    names_feature = _list_item(names_feature) or names_feature
    rows = {ours: ds.select_columns([c for c in (image, column, "width", "height") if c in ds.features])
            for ours, ds in datasets_by_split.items()}
    raw = {ours: ds[column] for ours, ds in rows.items()}
    if isinstance(names_feature, datasets.ClassLabel):
        class_names = list(names_feature.names)
        index = None
    else:
        values = sorted({c for cells in raw.values() for cell in cells for c in (cell or {}).get(class_key) or []})
        class_names, index = [str(v) for v in values], {v: i for i, v in enumerate(values)}
    labels = {}
    for ours, ds in rows.items():
        sizes = _sizes(ds, image, split_map[ours])
        out = np.empty(len(ds), dtype=object)
        for i, (cell, size) in enumerate(zip(raw[ours], sizes)):
            where = f"split {split_map[ours]!r} row {i}"
            cell = cell or {}
            boxes = np.asarray(cell.get(box_key) or [], dtype=np.float64).reshape(-1, 4)
            classes = list(cell.get(class_key) or [])
            if len(classes) != len(boxes):
                raise ParamError(f"label_column: {where} has {len(boxes)} boxes but {len(classes)} classes")
            if bbox_format == "xywh":
                boxes = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
            bad = np.flatnonzero((boxes[:, 2:] <= boxes[:, :2]).any(axis=1))
            if len(bad):
                raise ParamError(f"label_column: {where} box {int(bad[0])} {boxes[bad[0]].tolist()} has no area "
                                 f"(bbox_format = {bbox_format!r})")
            ids = np.asarray(classes if index is None else [index[c] for c in classes], dtype=np.int64)
            out[i] = {"boxes": boxes.astype(np.float32), "classes": ids, "size": size}
        labels[ours] = out
    return class_names, labels


def _sizes(ds, image: str, split: str) -> list[tuple[int, int]]:
    """(height, width) of every image: the width/height columns (checked on the first
    rows), else each image's header."""
    cells = ds[image]
    if "width" in ds.features and "height" in ds.features:
        sizes = [(int(h), int(w)) for w, h in zip(ds["width"], ds["height"])]
        for i in range(min(_SIZE_CHECKS, len(cells))):
            if _image_size(cells[i]) != sizes[i]:
                raise ParamError(f"split {split!r} row {i}: width and height say {sizes[i][1]}x{sizes[i][0]}, but the "
                                 f"image is {_image_size(cells[i])[1]}x{_image_size(cells[i])[0]}")
        return sizes
    return [_image_size(cell) for cell in cells]


def mask_labels(datasets_by_split: dict, image: str, column: str, classes: list[str], reduce_zero_label: bool,
                split_map: dict[str, str]) -> dict:
    """Per split an object array of (height, width) uint8 masks of class ids (255: ignored)."""
    import numpy as np
    from PIL import Image

    lookup = np.arange(256, dtype=np.int64)
    if reduce_zero_label:
        lookup = np.concatenate([[IGNORE], np.arange(255)])
        lookup[IGNORE] = IGNORE
    labels = {}
    for ours, ds in datasets_by_split.items():
        out = np.empty(len(ds), dtype=object)
        for i, (cell, picture) in enumerate(zip(ds[column], ds[image])):
            where = f"split {split_map[ours]!r} row {i}"
            source = io.BytesIO(cell["bytes"]) if cell.get("bytes") else cell.get("path")
            with Image.open(source) as mask:
                if mask.mode not in ("L", "P", "I;16", "I"):
                    raise ParamError(f"label_column: {where} is a {mask.mode} mask; expected one channel of class "
                                     f"ids (8-bit grey or palette)")
                array = np.asarray(mask).astype(np.int64)
            if array.shape != _image_size(picture):
                raise ParamError(f"label_column: {where} mask is {array.shape[1]}x{array.shape[0]} but its image is "
                                 f"{_image_size(picture)[1]}x{_image_size(picture)[0]}")
            if array.max(initial=0) > 255:
                raise ParamError(f"label_column: {where} has mask value {int(array.max())}; expected 0...255")
            array = lookup[array]
            bad = array[(array != IGNORE) & (array >= len(classes))]
            if len(bad):
                raise ParamError(f"classes: {where} has class id {int(bad[0])}, but classes names {len(classes)} "
                                 f"(0...{len(classes) - 1}; {IGNORE} is ignored)")
            out[i] = array.astype(np.uint8)
        labels[ours] = out
    return labels


def check_dense_params(params: dict) -> None:
    """The dense tasks' parameters agree with the task (cheap; no data read)."""
    task = params["task"]
    if task == SEGMENTATION:
        classes = params["classes"]
        if not classes or len(classes) < 2 or len(set(classes)) != len(classes) or len(classes) > IGNORE:
            raise ParamError(f"classes: the segmentation task needs the names of the mask values, 2 to {IGNORE} "
                             f"distinct names, got {classes!r}")
    elif params["classes"] is not None:
        raise ParamError("classes: names the mask values of a segmentation task; this target's task is "
                         f"{task!r} (its classes come from the data)")
    if params["reduce_zero_label"] and task != SEGMENTATION:
        raise ParamError(f"reduce_zero_label: applies to segmentation masks; this target's task is {task!r}")
    if task in DENSE_TASKS and params["label_columns"] is not None:
        raise ParamError(f"label_columns: the {task} task reads one label_column")
