"""The `maskfolder` target: images and PNG masks made here from digit scenes, some at
another size; split folders; mistakes in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tlbench.api import Env
from tlbench.errors import ParamError, ResourceUnavailable
from tlbench.params import resolve_params
from tlbench.testing import check_target

CLASSES = ["background", "zero", "one", "seven"]


def mask_folder(tmp: Path, n: int = 24, splits: tuple[str, ...] = ()) -> str:
    """Digit scenes as images/<i>.png and masks/<i>.png (every third one at 1.5 times the
    size), optionally under split folders."""
    from PIL import Image

    from tlbench_builtin.digit_scenes import DigitScenesData, DigitScenes

    params = resolve_params(DigitScenes.params, {"task": "segmentation", "classes": [0, 1, 7], "canvas": 16,
                                                 "max_scale": 10, "n_scenes": n + 2, "n_test": 1, "n_train": 1,
                                                 "n_val": 1}, "test")
    scenes = DigitScenesData(params).pool[:n]
    root = tmp / "masks-data"
    for i, scene in enumerate(scenes):
        folder = root / splits[i % len(splits)] if splits else root
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        image, mask = Image.fromarray(scene.image), Image.fromarray(scene.class_mask())
        if i % 3 == 2:
            image, mask = image.resize((24, 24), Image.BILINEAR), mask.resize((24, 24), Image.NEAREST)
        image.save(folder / "images" / f"scene{i:03d}.png")
        mask.save(folder / "masks" / f"scene{i:03d}.png")
    return str(root)


def load(params: dict, tmp: Path):
    from tlbench_builtin.maskfolder import MaskFolder

    item = MaskFolder()
    return item.load(resolve_params(item.params, params, "test"), Env(cache_dir=tmp / "cache"))


def test_images_and_masks_of_two_sizes_conform(tmp_path):
    data = check_target("maskfolder", {"path": mask_folder(tmp_path), "classes": CLASSES, "n_train": 10,
                                       "n_val": 4}, cache_dir=tmp_path / "cache")
    splits = data.splits(0)
    assert len(splits.train) == 10 and len(splits.val) == 4 and len(splits.test) > 0
    shapes = {mask.shape for mask in splits.train.labels} | {mask.shape for mask in splits.test.labels}
    assert shapes == {(16, 16), (24, 24)}
    assert all(isinstance(p, Path) and p.suffix == ".png" for p in splits.train.examples)
    assert data.task == "segmentation" and data.class_names == CLASSES


def test_split_folders_are_the_datas_own_splits(tmp_path):
    data = load({"path": mask_folder(tmp_path, splits=("train", "test")), "classes": CLASSES}, tmp_path)
    assert len(data.files["train"]) == 12 and len(data.files["test"]) == 12
    splits = data.splits(0)
    assert {p.parent.parent.name for p in splits.test.examples} == {"test"}


def test_an_edited_mask_changes_the_content_hash(tmp_path):
    from PIL import Image

    from tlbench.hashing import splits_content_hash
    from tlbench_builtin.segmentation import Segmentation

    root = Path(mask_folder(tmp_path))
    params = {"path": str(root), "classes": CLASSES, "n_train": 10, "n_val": 4}
    before = splits_content_hash(load(params, tmp_path).splits(0), Segmentation().label_bytes)[0]
    mask_path = sorted((root / "masks").iterdir())[0]
    mask = np.asarray(Image.open(mask_path)).copy()
    mask[0, 0] = 3 if mask[0, 0] != 3 else 1
    Image.fromarray(mask).save(mask_path)
    assert splits_content_hash(load(params, tmp_path).splits(0), Segmentation().label_bytes)[0] != before


def test_mistakes_are_one_line(tmp_path):
    from PIL import Image

    root = Path(mask_folder(tmp_path, n=6))
    with pytest.raises(ParamError, match="has class id 3, but classes names 3"):
        load({"path": str(root), "classes": CLASSES[:3]}, tmp_path)
    Image.new("RGB", (16, 16)).save(root / "masks" / "scene000.png")
    with pytest.raises(ParamError, match="scene000.png is a RGB image; expected a single-channel mask"):
        load({"path": str(root), "classes": CLASSES}, tmp_path)
    Image.new("L", (10, 16)).save(root / "masks" / "scene000.png")
    with pytest.raises(ParamError, match="scene000.png is 10x16 but its image scene000.png is 16x16"):
        load({"path": str(root), "classes": CLASSES}, tmp_path)
    (root / "masks" / "scene000.png").unlink()
    with pytest.raises(ResourceUnavailable, match="1 image\\(s\\) in .* have no mask masks/<stem>.png"):
        load({"path": str(root), "classes": CLASSES}, tmp_path)
    with pytest.raises(ParamError, match="shots"):
        load({"path": str(root), "classes": CLASSES, "shots": 2}, tmp_path)
