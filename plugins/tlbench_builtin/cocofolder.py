"""Target `cocofolder`: images and a COCO-format annotation file, as labelling tools export them.

Two layouts are read:

- one annotation file for all images: ``root/<annotations>`` (default: the only ``*.json``
  in ``root`` or in ``root/annotations/``, as CVAT and Label Studio write it) with the
  images where its ``file_name``s point, relative to the file's folder, to
  ``root/images/`` or to ``root``;
- the data's own splits, Roboflow's export: ``root/train/``, ``root/valid/`` (``val/``,
  ``validation/``) and ``root/test/``, each with its own ``*.json`` and its images.

What is kept, and how: every image of the file, also those without a box (a detector
must learn to find nothing there); boxes from ``bbox`` (COCO xywh in pixels) as xyxy;
categories sorted by their id, class k being the k-th, so ids need not start at 0 nor be
contiguous: the ids are recorded (`TargetData.class_ids`, in each record's
``details.target``) and saved predictions use them, so a results file scores against
the original annotation file. Crowd annotations (``iscrowd: 1``) are left out: the
detection task has no ignore regions. Boxes of no width or height, categories the file
does not declare, images whose size differs from the file's, and missing images are
refused, each in one line naming the file and the annotation.

The annotations are the labels (hashed with them: an edited box reruns what used it);
the images stay files (`pathlib.Path`) until a model encodes them. Train / val / test
are drawn by `split_sampling` by count of images (`n_train`, `n_val`, ...).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import tlbench
from tlbench.api import Env, Splits, Target, TargetData
from tlbench.errors import ParamError, ResourceUnavailable
from tlbench.params import Param

from .imagefolder import split_folders
from .local_files import listing_digest
from .split_sampling import SAMPLING_PARAMS, check_sampling, sampled_splits


def find_annotations(folder: Path, name: str | None) -> Path:
    """The annotation file of `folder`: `name` (relative to it) or the only ``*.json`` in it
    or in its ``annotations/``."""
    if name:
        path = folder / name
        if not path.is_file():
            raise ResourceUnavailable(f"annotations: no file {os.path.abspath(path)!r}")
        return path
    for where in (folder, folder / "annotations"):
        found = sorted(where.glob("*.json")) if where.is_dir() else []
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ParamError(f"annotations: {len(found)} JSON files in {os.path.abspath(where)!r}; name the COCO "
                             f"file with annotations = \"...\"")
    raise ResourceUnavailable(f"path: no COCO annotation file (*.json) in {os.path.abspath(folder)!r} or its "
                              f"annotations/")


def read_coco(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParamError(f"annotations: {path.name} is not readable JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or \
            not isinstance(data.get("categories"), list):
        raise ParamError(f"annotations: {path.name} is not a COCO file (expected 'images' and 'categories' lists)")
    return data


def _image_folder(coco_file: Path, root: Path, images: str | None, first: str) -> Path:
    """Where the file's ``file_name``s are relative to: `images` when given, else the first
    of the file's folder, ``root/images`` and ``root`` that holds the first image."""
    if images:
        return root / images
    for base in (coco_file.parent, root / "images", root):
        if (base / first).is_file():
            return base
    return coco_file.parent


def labels_of(data: dict, path: Path, category_ids: list[int], root: Path, images: str | None):
    """(image files, one label per image) of one COCO file; see the module docstring."""
    import numpy as np
    from PIL import Image

    index = {cid: k for k, cid in enumerate(category_ids)}
    by_image: dict[int, list[dict]] = {}
    for annotation in data.get("annotations") or []:
        by_image.setdefault(annotation.get("image_id"), []).append(annotation)
    entries = data["images"]
    if not entries:
        raise ResourceUnavailable(f"annotations: {path.name} lists no images")
    base = _image_folder(path, root, images, str(entries[0].get("file_name", "")))
    files, labels = [], []
    for entry in entries:
        file = base / str(entry.get("file_name", ""))
        if not file.is_file():
            raise ResourceUnavailable(f"annotations: {path.name} image {entry.get('id')} is {entry.get('file_name')!r}, "
                                      f"not found in {os.path.abspath(base)!r}")
        with Image.open(file) as picture:
            width, height = picture.size
        if (entry.get("width"), entry.get("height")) not in ((width, height), (None, None)):
            raise ParamError(f"annotations: {path.name} says image {entry.get('id')} is {entry.get('width')}x"
                             f"{entry.get('height')}, but {file.name} is {width}x{height}")
        boxes, classes = [], []
        for annotation in by_image.get(entry.get("id"), []):
            if annotation.get("iscrowd"):
                continue
            where = f"annotations: {path.name} annotation {annotation.get('id')}"
            if annotation.get("category_id") not in index:
                raise ParamError(f"{where} has category {annotation.get('category_id')!r}, which the file's "
                                 f"categories do not declare")
            x, y, w, h = (float(v) for v in annotation["bbox"])
            if not (w > 0 and h > 0):
                raise ParamError(f"{where}: its bbox {annotation['bbox']} has no area (COCO bbox is x, y, width, "
                                 f"height)")
            boxes.append([x, y, x + w, y + h])
            classes.append(index[annotation["category_id"]])
        files.append(file)
        labels.append({"boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                       "classes": np.asarray(classes, dtype=np.int64), "size": (int(height), int(width)),
                       "image_id": int(entry["id"])})
    return files, labels


class CocoFolderData(TargetData):
    modality = "image"
    task = "detection"

    def __init__(self, root: Path, params: dict):
        import numpy as np

        self.params = params
        layout = split_folders(root)
        if layout and "train" not in layout:
            raise ResourceUnavailable(f"path: split folders without train/ in {os.path.abspath(root)!r}")
        files = {split: find_annotations(folder, params["annotations"]) for split, folder in layout.items()} \
            or {"train": find_annotations(root, params["annotations"])}
        coco = {split: read_coco(path) for split, path in files.items()}
        categories = {int(c["id"]): str(c.get("name", c["id"])) for data in coco.values() for c in data["categories"]}
        for split, data in coco.items():
            if {int(c["id"]) for c in data["categories"]} != set(categories):
                raise ParamError(f"annotations: the {split} file's categories differ from the other splits'")
        self.class_ids = sorted(categories)
        self.class_names = [categories[i] for i in self.class_ids]
        self.num_classes = len(self.class_ids)
        if self.num_classes < 1:
            raise ParamError(f"annotations: {files['train'].name} declares no categories")
        self.files, self.labels, listed = {}, {}, list(files.values())
        for split, data in coco.items():
            self.files[split], labels = labels_of(data, files[split], self.class_ids, root, params["images"])
            self.labels[split] = np.empty(len(labels), dtype=object)
            self.labels[split][:] = labels
            listed += self.files[split]
        self.revision = "listing-sha256:" + listing_digest(root, sorted(set(listed)))

    def splits(self, seed: int) -> Splits:
        return sampled_splits(self.labels, self.params, seed, self.class_names,
                              lambda split, indices: [self.files[split][i] for i in indices])


class CocoFolder(Target):
    name = "cocofolder"
    version = "1"
    description = "a local folder of images with a COCO-format annotation file (boxes), as labelling tools export"
    params = {
        "path": Param(str, help="root directory (relative to the suite's folder): the images and a COCO *.json, "
                                "or train/ valid/ test/ folders with one each", path="local"),
        "annotations": Param(str, None, "the COCO file relative to root (or to each split folder); default: "
                                        "the only *.json there or in annotations/"),
        "images": Param(str, None, "the folder the file's file_names are relative to, relative to root; "
                                   "default: the file's folder, root/images or root, where the first image is"),
        **SAMPLING_PARAMS,
    }

    def task(self, params: dict) -> str:
        return "detection"

    def modality(self, params: dict) -> str:
        return "image"

    def check(self, params: dict, env: Env) -> None:
        root = Path(params["path"]).expanduser()
        if not root.is_dir():
            raise ResourceUnavailable(f"path: no directory {os.path.abspath(root)!r}; point path at a folder with "
                                      f"images and a COCO annotation file")
        check_sampling(params, "detection")

    def load(self, params: dict, env: Env) -> CocoFolderData:
        self.check(params, env)
        return CocoFolderData(Path(params["path"]).expanduser().resolve(), params)


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(CocoFolder())
