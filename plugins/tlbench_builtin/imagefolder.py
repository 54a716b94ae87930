"""Target `imagefolder`: a local directory of class folders.

Either ``root/<class>/<image>`` (train, val and test are then drawn from it), or
``root/train/<class>/<image>`` with optional ``val/`` (or ``validation/``, ``valid/``)
and ``test/`` beside it. Classes are the folder names in sorted order; images are found
recursively and kept in sorted path order. Examples are the image files themselves, so
their content hash is a hash of the bytes on disk, and nothing is decoded until a
model encodes them.
"""

from __future__ import annotations

from pathlib import Path

import tlbench
from tlbench.api import Env, Splits, Target, TargetData
from tlbench.errors import ResourceUnavailable
from tlbench.params import Param

from .local_files import listing_digest
from .split_sampling import SAMPLING_PARAMS, check_sampling, sampled_splits

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation", "valid"), "test": ("test",)}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _class_folders(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")}


class ImageFolderData(TargetData):
    modality = "image"

    def __init__(self, root: Path, params: dict):
        self.params = params
        layout = {}
        for split, names in SPLIT_FOLDERS.items():
            found = next((root / n for n in names if (root / n).is_dir()), None)
            if found is not None:
                layout[split] = found
        if "train" not in layout:
            layout = {"train": root}
        classes = sorted({name for folder in layout.values() for name in _class_folders(folder)})
        if not classes:
            raise ResourceUnavailable(f"path: {str(root)!r} has no class folders "
                                      f"(expected root/<class>/<image> or root/train/<class>/<image>)")
        self.class_names = classes
        self.num_classes = len(classes)
        self.files: dict[str, list[Path]] = {}
        self.labels: dict[str, "object"] = {}
        import numpy as np

        for split, folder in layout.items():
            files, labels = [], []
            for label, name in enumerate(classes):
                class_folder = folder / name
                members = _images(class_folder) if class_folder.is_dir() else []
                files += members
                labels += [label] * len(members)
            if not files:
                raise ResourceUnavailable(f"path: {str(folder)!r} holds no images "
                                          f"({', '.join(sorted(IMAGE_SUFFIXES))})")
            self.files[split] = files
            self.labels[split] = np.asarray(labels, dtype=np.int64)
        self.split_folders = {split: str(folder.relative_to(root)) or "." for split, folder in layout.items()}
        self.revision = "listing-sha256:" + listing_digest(root, [f for files in self.files.values()
                                                                   for f in files])
        """Digest of the file listing (paths and sizes); the run's content hash covers the bytes."""

    def splits(self, seed: int) -> Splits:
        return sampled_splits(self.labels, self.params, seed, self.class_names,
                              lambda split, indices: [self.files[split][i] for i in indices])


class ImageFolder(Target):
    name = "imagefolder"
    version = "1"
    description = "a local directory of class folders (optionally in train/ val/ test/ folders)"
    params = {
        "path": Param(str, help="root directory: root/<class>/<image> or root/train|val|test/<class>/<image>"),
        **SAMPLING_PARAMS,
    }

    def check(self, params: dict, env: Env) -> None:
        root = Path(params["path"]).expanduser()
        if not root.is_dir():
            raise ResourceUnavailable(f"path: no directory {params['path']!r}; point path at a local "
                                      f"directory of class folders")
        check_sampling(params)

    def load(self, params: dict, env: Env) -> ImageFolderData:
        self.check(params, env)
        return ImageFolderData(Path(params["path"]).expanduser().resolve(), params)


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(ImageFolder())
