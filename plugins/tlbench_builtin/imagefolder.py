"""Target `imagefolder`: a local directory of images, labelled by class folders or by a labels file.

Classification (the default `task`): either ``root/<class>/<image>`` (train, val and
test are then drawn from it), or ``root/train/<class>/<image>`` with optional ``val/``
(or ``validation/``, ``valid/``) and ``test/`` beside it. Classes are the folder names
in sorted order; images are found recursively and kept in sorted path order.

Multilabel and regression: a folder cannot say that an image shows a cat *and* a dog,
or that its value is 3.7, so the `labels` parameter names a table, a CSV or parquet
file (relative to `path`, or absolute), with one row per image:

- a `file` column: the image's path relative to `path`;
- the labels, read by `table_labels`:
  - multilabel: one 0/1 column per class (the class names are the column names), or a
    `labels` column with the image's class names separated by ``;`` (the classes are
    the sorted distinct names; a cell names at least one class, an empty cell is a
    missing label, so an image with none of the classes needs the 0/1 layout);
  - regression: numeric columns, one predicted value each: every column but `file` and
    `split`, or those `label_columns` lists;
- optionally a `split` column: ``train``, ``val`` (or ``validation``, ``valid``) or
  ``test`` per row, used as the data's own splits, as split folders are; without it,
  every row is in the training pool and val and test are carved from it.

The images the table lists are the examples, in sorted path order (so reordering the
table's rows changes nothing); a listed file that does not exist is an error naming
it; images under `path` that the table does not list are ignored, and counted in the
revision (``unlisted=N``). A missing label (an empty cell, NaN) is an error naming the
split and how many. Train / val / test are drawn by `split_sampling`; per-class draws
(`shots`, `val_shots`) are classification's alone, the other tasks draw by count.

Examples are the image files themselves (`pathlib.Path`), so their content hash is a
hash of the bytes on disk, and nothing is decoded until a model encodes them (before
any run, tlbench reads the headers of the images the seeds' splits draw).

The same folder layouts hold other files than images: `audiofolder` reads audio files
through this module, with its own `Media` (the suffixes it lists, the words its
messages use).

`path` and `labels` are paths (`Param.path`): a relative `path` resolves against the
suite's folder, a relative `labels` against `path`, and neither is part of run
identities. The run's content hash and the revision (digests of the listing relative
to `path` and of the labels file) identify the data, so the same folder named another
way, or moved, keeps its runs.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import tlbench
from tlbench.api import Env, Splits, Target, TargetData
from tlbench.errors import ParamError, ResourceUnavailable, first_line
from tlbench.hashing import file_sha256
from tlbench.params import Param

from .local_files import listing_digest
from .split_sampling import SAMPLING_PARAMS, check_sampling, sampled_splits
from .table_labels import (TASK_PARAM, LabelTable, TaskLabels, check_label_columns, multi_hot_columns,
                           multi_hot_lists, value_columns)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation", "valid"), "test": ("test",)}
LABEL_FILE_SUFFIXES = (".csv", ".parquet")
FILE_COLUMN, SPLIT_COLUMN, NAMES_COLUMN = "file", "split", "labels"
"""The labels file's column of image paths, its optional split column, and its column
of ';'-separated class names (multilabel)."""


@dataclass(frozen=True)
class Media:
    """The files a folder target lists as examples, and how its messages name one."""

    noun: str
    """One example, in words: 'image', 'audio file'."""
    suffixes: frozenset[str]
    """Lower-case suffixes of the files listed; others are passed over."""

    @property
    def plural(self) -> str:
        return self.noun + "s"


IMAGES = Media("image", frozenset(IMAGE_SUFFIXES))


@dataclass
class Listing:
    """The images of each of the data's own splits ('train', optionally 'val', 'test'),
    their labels, and where they were listed."""

    class_names: list[str]
    files: dict[str, list[Path]]
    labels: dict[str, "np.ndarray"]
    origins: dict[str, str]
    """Our split -> where its images were listed: a folder relative to `path`, or the
    labels file (with the split column's value)."""
    revision: str


def _images(folder: Path, media: Media = IMAGES) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in media.suffixes and p.is_file())


def _class_folders(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def split_folders(root: Path) -> dict[str, Path]:
    """The data's own split folders under `root` (`SPLIT_FOLDERS`), those that exist."""
    found = {split: next((root / n for n in names if (root / n).is_dir()), None)
             for split, names in SPLIT_FOLDERS.items()}
    return {split: folder for split, folder in found.items() if folder is not None}


# ---------------------------------------------------------------------------- class folders


def folder_listing(root: Path, media: Media = IMAGES) -> Listing:
    """Classification from class folders, with or without split folders above them."""
    import numpy as np

    layout = split_folders(root)
    if "train" not in layout:
        layout = {"train": root}
    classes = sorted({name for folder in layout.values() for name in _class_folders(folder)})
    if not classes:
        raise ResourceUnavailable(f"path: {str(root)!r} has no class folders "
                                  f"(expected root/<class>/<{media.noun}> or root/train/<class>/<{media.noun}>)")
    files: dict[str, list[Path]] = {}
    labels: dict[str, np.ndarray] = {}
    for split, folder in layout.items():
        members_of = [_images(folder / name, media) if (folder / name).is_dir() else [] for name in classes]
        files[split] = [file for members in members_of for file in members]
        labels[split] = np.asarray([label for label, members in enumerate(members_of) for _ in members],
                                   dtype=np.int64)
        if not files[split]:
            raise ResourceUnavailable(f"path: {str(folder)!r} holds no {media.plural} "
                                      f"({', '.join(sorted(media.suffixes))})")
    # the listing's paths and sizes; each run's content hash covers the bytes
    revision = "listing-sha256:" + listing_digest(root, [f for split_files in files.values() for f in split_files])
    return Listing(class_names=classes, files=files, labels=labels, revision=revision,
                   origins={split: str(folder.relative_to(root)) or "." for split, folder in layout.items()})


# ---------------------------------------------------------------------------- a labels file


def labels_path(root: Path, labels: str) -> Path:
    """The labels file: `labels` relative to `root`, or absolute."""
    return root / Path(labels).expanduser()


def _read_table(path: Path, text_columns: tuple[str, ...]) -> "pd.DataFrame":
    """The labels file as a frame; a CSV's `text_columns` are read as strings (else a file
    named '001' or a class named '07' would be read as a number)."""
    import pandas as pd

    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype={column: str for column in text_columns})
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ParamError(f"labels: cannot read {str(path)!r}: {type(exc).__name__}: {first_line(exc)}") from None


def _listed_files(root: Path, table: "pd.DataFrame", name: str) -> list[Path]:
    """The `file` column as paths under `root`: every cell given, relative, unique and
    on disk (one-line errors naming the first that is not)."""
    if FILE_COLUMN not in table:
        raise ParamError(f"labels: {name!r} has no {FILE_COLUMN!r} column (the image paths relative to path); "
                         f"it has {', '.join(map(str, table.columns))}")
    cells = table[FILE_COLUMN]
    if cells.isna().any():
        raise ParamError(f"labels: {name!r} has {int(cells.isna().sum())} row(s) without a file")
    relative = [str(cell) for cell in cells]
    files = [Path(os.path.normpath(root / cell)) for cell in relative]
    outside = next((cell for cell, file in zip(relative, files) if not file.is_relative_to(root)), None)
    if outside is not None:
        raise ParamError(f"labels: {name!r} lists {outside!r}, outside path; give image paths relative to path")
    counts = Counter(files)
    doubled = next((cell for cell, file in zip(relative, files) if counts[file] > 1), None)
    if doubled is not None:
        raise ParamError(f"labels: {name!r} lists {doubled!r} more than once")
    missing = [cell for cell, file in zip(relative, files) if not file.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ResourceUnavailable(f"labels: {name!r} lists {missing[0]!r}, which is not a file under "
                                  f"{str(root)!r}{more}")
    return files


def _split_frames(table: "pd.DataFrame", name: str) -> dict[str, "pd.DataFrame"]:
    """Our split -> its rows: by the `split` column when there is one, else all in 'train'."""
    if SPLIT_COLUMN not in table:
        return {"train": table}
    values = table[SPLIT_COLUMN]
    if values.isna().any():
        raise ParamError(f"labels: {name!r} has {int(values.isna().sum())} row(s) without a {SPLIT_COLUMN!r} value")
    ours = {value: split for split, names in SPLIT_FOLDERS.items() for value in names}
    unknown = sorted(set(values.astype(str)) - set(ours))
    if unknown:
        raise ParamError(f"labels: the {SPLIT_COLUMN!r} column of {name!r} holds {unknown[0]!r}; expected train, "
                         f"val (or validation, valid) or test")
    frames = {split: table[values.astype(str).map(ours) == split] for split in SPLIT_FOLDERS}
    frames = {split: frame for split, frame in frames.items() if len(frame)}
    if "train" not in frames:
        raise ParamError(f"labels: {name!r} has no row with {SPLIT_COLUMN} = 'train'")
    return frames


def _uses_names_column(table: "pd.DataFrame", params: dict) -> bool:
    """Whether multilabel classes come as ';'-separated names (else 0/1 columns)."""
    return params["task"] == "multilabel" and not params["label_columns"] and NAMES_COLUMN in table


def _file_labels(table: LabelTable, params: dict) -> TaskLabels:
    """The labels of a labels file's rows, by the task and the file's layout."""
    frame = table.frames["train"]
    if _uses_names_column(frame, params):
        return _names_labels(table)
    columns = params["label_columns"] or [c for c in frame.columns if c not in (FILE_COLUMN, SPLIT_COLUMN)]
    missing = [c for c in columns if c not in frame]
    if missing:
        raise ParamError(f"label_columns: the labels file has no column {missing[0]!r}; it has "
                         f"{', '.join(map(str, frame.columns))}")
    if not columns:
        raise ParamError(f"labels: the labels file has no label columns beside {FILE_COLUMN!r}")
    if params["task"] == "regression":
        return value_columns(table, columns)
    return multi_hot_columns(table, columns)


def _names_labels(table: LabelTable) -> TaskLabels:
    """Multilabel rows from the ';'-separated names of the `labels` column. A blank cell
    is a missing label, like an empty one."""
    def names(cell):
        return [part.strip() for part in str(cell).split(";") if part.strip()] or None

    frames = {split: frame.assign(**{NAMES_COLUMN: frame[NAMES_COLUMN].map(names, na_action="ignore")})
              for split, frame in table.frames.items()}
    return multi_hot_lists(LabelTable(frames=frames, param=table.param, places=table.places), NAMES_COLUMN)


def _file_revision(root: Path, path: Path, files: dict[str, list[Path]], media: Media = IMAGES) -> str:
    """The labels file's sha256, a digest of the listed images (paths and sizes: each run's
    content hash covers their bytes), and how many images under `root` are not listed."""
    listed = sorted(file for split_files in files.values() for file in split_files)
    known = set(listed)
    unlisted = sum(1 for image in _images(root, media) if Path(os.path.normpath(image)) not in known)
    return f"labels-sha256:{file_sha256(path)};listing-sha256:{listing_digest(root, listed)};unlisted={unlisted}"


def file_listing(root: Path, params: dict, media: Media = IMAGES) -> Listing:
    """Multilabel or regression from the labels file `params['labels']` (see the module docstring)."""
    name = params["labels"]
    path = labels_path(root, name)
    text_columns = (FILE_COLUMN, SPLIT_COLUMN) + ((NAMES_COLUMN,) if params["task"] == "multilabel" else ())
    table = _read_table(path, text_columns)
    table = table.assign(**{FILE_COLUMN: _listed_files(root, table, name)})
    table = table.sort_values(FILE_COLUMN, key=lambda paths: paths.map(str), kind="stable")
    frames = _split_frames(table, name)
    by_column = SPLIT_COLUMN in table
    places = {split: f"{name!r} (split {split!r})" if by_column else repr(name) for split in frames}
    labels = _file_labels(LabelTable(frames=frames, param="label_columns" if params["label_columns"] else "labels",
                                     places=places), params)
    files = {split: list(frame[FILE_COLUMN]) for split, frame in frames.items()}
    return Listing(class_names=labels.class_names, files=files, labels=labels.by_split,
                   origins={split: f"{name} (split {split})" if by_column else name for split in frames},
                   revision=_file_revision(root, path, files, media))


# ---------------------------------------------------------------------------- the target


class ImageFolderData(TargetData):
    modality = "image"
    media = IMAGES

    def __init__(self, root: Path, params: dict):
        self.params = params
        self.task = params["task"]
        listing = (folder_listing(root, self.media) if params["labels"] is None
                   else file_listing(root, params, self.media))
        self.class_names = listing.class_names
        self.num_classes = len(listing.class_names)
        self.files = listing.files
        self.labels = listing.labels
        self.origins = listing.origins
        self.revision = listing.revision
        """Digest of the listing (paths and sizes) and of the labels file; the run's
        content hash covers the images' bytes."""

    def splits(self, seed: int) -> Splits:
        return sampled_splits(self.labels, self.params, seed, self.class_names,
                              lambda split, indices: [self.files[split][i] for i in indices])


class ImageFolder(Target):
    name = "imagefolder"
    version = "1"
    description = "a local directory of images: class folders, or a labels file (multilabel, regression)"
    params = {
        "path": Param(str, help="root directory (relative to the suite's folder): root/<class>/<image> or "
                                "root/train|val|test/<class>/<image>; with labels, the directory the file "
                                "column is relative to", path="local"),
        "task": TASK_PARAM,
        "labels": Param(str, None, "multilabel and regression: a CSV or parquet file (relative to path, or "
                                   "absolute) with a 'file' column, the label columns (multilabel: 0/1 per "
                                   "class, or 'labels' with ';'-separated names) and optionally 'split'",
                        omit_default=True, path="local", relative_to="path"),
        "label_columns": Param(list, None, "with labels: the label columns of the file (default: every column "
                                           "but file and split; multilabel: 'labels' when there is one)",
                               items=str, omit_default=True),
        **SAMPLING_PARAMS,
    }

    def task(self, params: dict) -> str:
        return params["task"]

    data = ImageFolderData
    """What `load` builds: its `modality` and `media` say which files are examples."""

    def modality(self, params: dict) -> str:
        return self.data.modality

    def check(self, params: dict, env: Env) -> None:
        root = Path(params["path"]).expanduser()
        if not root.is_dir():
            raise ResourceUnavailable(f"path: no directory {os.path.abspath(root)!r}; point path at a local "
                                      f"directory of {self.data.media.plural}")
        _check_labelling(root, params)
        check_sampling(params, params["task"])

    def load(self, params: dict, env: Env) -> ImageFolderData:
        self.check(params, env)
        return self.data(Path(params["path"]).expanduser().resolve(), params)


def _check_labelling(root: Path, params: dict) -> None:
    """`labels` and `label_columns` fit the task (cheap: the labels file is not read)."""
    task, labels = params["task"], params["labels"]
    if task == "classification":
        for key in ("labels", "label_columns"):
            if params[key] is not None:
                raise ParamError(f"{key}: the classification task reads class folders; {key} is for task = "
                                 f"\"multilabel\" or \"regression\"")
        return
    if labels is None:
        raise ParamError(f"labels: the {task} task needs a labels file (CSV or parquet with a 'file' column and "
                         f"the label columns); set labels = \"labels.csv\"")
    if Path(labels).suffix.lower() not in LABEL_FILE_SUFFIXES:
        raise ParamError(f"labels: expected a .csv or .parquet file, got {labels!r}")
    if not labels_path(root, labels).is_file():
        raise ResourceUnavailable(f"labels: no file {os.path.abspath(labels_path(root, labels))!r} (labels is "
                                  f"relative to path, or absolute)")
    if params["label_columns"] is not None:
        check_label_columns(params["label_columns"], task, reserved=(FILE_COLUMN, SPLIT_COLUMN))


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(ImageFolder())
