"""Target `maskfolder`: images and their segmentation masks, two folders side by side.

The layout labelling tools export for semantic segmentation: ``root/images/<name>.<ext>``
and ``root/masks/<name>.png`` (the same stem, any image suffix for the image), or the
same pair under ``root/train/``, ``root/val/`` (``validation/``, ``valid/``) and
``root/test/`` as the data's own splits. A mask is a single-channel image (8-bit grey
or palette) of class ids, the size of its image: pixel value i is ``classes[i]``, and
255 marks pixels that count for nothing (borders, void). Colour (RGB) masks are refused:
their colours would need a palette to become ids.

The masks are read when the target loads (they are the labels, and hashed with them:
an edited mask reruns what used it); the images stay files (`pathlib.Path`) until a
model encodes them. Train / val / test are drawn by `split_sampling` by count (`n_train`,
`n_val`, ...: a per-class draw means nothing for masks).
"""

from __future__ import annotations

import os
from pathlib import Path

import tlbench
from tlbench.api import Env, Splits, Target, TargetData
from tlbench.errors import ParamError, ResourceUnavailable
from tlbench.params import Param

from .imagefolder import IMAGE_SUFFIXES, split_folders
from .local_files import listing_digest
from .split_sampling import SAMPLING_PARAMS, check_sampling, sampled_splits

IGNORE = 255


def _pairs(folder: Path, images: str, masks: str) -> list[tuple[Path, Path]]:
    """(image, mask) of every image in `folder/images` with a mask of the same stem."""
    image_dir, mask_dir = folder / images, folder / masks
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise ResourceUnavailable(f"path: expected {images}/ and {masks}/ folders in {os.path.abspath(folder)!r}")
    by_stem = {p.stem: p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() == ".png" and p.is_file()}
    pairs, missing = [], []
    for image in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        if image.stem in by_stem:
            pairs.append((image, by_stem[image.stem]))
        else:
            missing.append(image.name)
    if missing:
        raise ResourceUnavailable(f"path: {len(missing)} image(s) in {image_dir} have no mask {masks}/<stem>.png, "
                                  f"e.g. {missing[0]!r}")
    if not pairs:
        raise ResourceUnavailable(f"path: no images in {image_dir}")
    return pairs


def read_mask(path: Path, image: Path, num_classes: int):
    """A mask file as a (height, width) uint8 array of class ids, checked against its image."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as mask:
        if mask.mode not in ("L", "P", "I;16", "I"):
            raise ParamError(f"masks: {path.name} is a {mask.mode} image; expected a single-channel mask of class "
                             f"ids (8-bit grey or palette)")
        array = np.asarray(mask)
    with Image.open(image) as picture:
        if picture.size != (array.shape[1], array.shape[0]):
            raise ParamError(f"masks: {path.name} is {array.shape[1]}x{array.shape[0]} but its image {image.name} is "
                             f"{picture.size[0]}x{picture.size[1]}")
    bad = array[(array != IGNORE) & (array >= num_classes)]
    if len(bad):
        raise ParamError(f"masks: {path.name} has class id {int(bad[0])}, but classes names {num_classes} "
                         f"(0...{num_classes - 1}; {IGNORE} is ignored)")
    return array.astype(np.uint8)


class MaskFolderData(TargetData):
    modality = "image"
    task = "segmentation"

    def __init__(self, root: Path, params: dict):
        import numpy as np

        self.params = params
        self.class_names = list(params["classes"])
        self.num_classes = len(self.class_names)
        layout = split_folders(root) or {"train": root}
        if "train" not in layout:
            raise ResourceUnavailable(f"path: split folders without train/ in {os.path.abspath(root)!r}")
        self.files, self.labels = {}, {}
        listed = []
        for split, folder in layout.items():
            pairs = _pairs(folder, params["images"], params["masks"])
            self.files[split] = [image for image, _ in pairs]
            masks = np.empty(len(pairs), dtype=object)
            masks[:] = [read_mask(mask, image, self.num_classes) for image, mask in pairs]
            self.labels[split] = masks
            listed += [p for pair in pairs for p in pair]
        self.revision = "listing-sha256:" + listing_digest(root, sorted(listed))

    def splits(self, seed: int) -> Splits:
        return sampled_splits(self.labels, self.params, seed, self.class_names,
                              lambda split, indices: [self.files[split][i] for i in indices])


class MaskFolder(Target):
    name = "maskfolder"
    version = "1"
    description = "a local folder of images and their segmentation masks (images/ and masks/, same stems)"
    params = {
        "path": Param(str, help="root directory (relative to the suite's folder): root/images and root/masks, "
                                "or the same under root/train|val|test", path="local"),
        "classes": Param(list, help="class names: mask value i is classes[i] (255: ignored pixels)", items=str),
        "images": Param(str, "images", "the images' folder name"),
        "masks": Param(str, "masks", "the masks' folder name (PNG, same stem as the image)"),
        **SAMPLING_PARAMS,
    }

    def task(self, params: dict) -> str:
        return "segmentation"

    def modality(self, params: dict) -> str:
        return "image"

    def check(self, params: dict, env: Env) -> None:
        root = Path(params["path"]).expanduser()
        if not root.is_dir():
            raise ResourceUnavailable(f"path: no directory {os.path.abspath(root)!r}; point path at a folder with "
                                      f"{params['images']}/ and {params['masks']}/")
        classes = params["classes"]
        if len(classes) < 2 or len(set(classes)) != len(classes) or len(classes) > IGNORE:
            raise ParamError(f"classes: expected 2 to {IGNORE} distinct names, got {classes!r}")
        check_sampling(params, "segmentation")

    def load(self, params: dict, env: Env) -> MaskFolderData:
        self.check(params, env)
        return MaskFolderData(Path(params["path"]).expanduser().resolve(), params)


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(MaskFolder())
