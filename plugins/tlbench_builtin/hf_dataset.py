"""Target `hf-dataset`: a Hugging Face data set from the hub or from local files.

`path` is a hub id (``org/name``, at `revision`) or a local file or directory
(parquet, csv, json, arrow, or an image folder). A hub data set is fetched once into
the hub cache (``HF_HOME``) when the suite is planned and then loaded from that local snapshot, so
workers and later offline runs read the very same files, and the snapshot's commit
sha is the recorded revision. A local file's revision is its sha256; a directory's is a
digest of its listing. A cached snapshot counts only when it holds every file of its own
listing the target reads (the `data_files`, or all); a partial one is fetched again when
the hub can be reached and named as partial when it cannot. A local `path` resolves
against the suite's folder and stays out of run identities (`Param.path`): the content
hash and the revision identify the data wherever they lie. `tlbench run --dry-run`
loads local files and cached snapshots (`load_offline`), never a download.

Columns: `input_column` (an image, audio or text column) and `label_column` are found
when they are unambiguous (an Image column, an Audio column; text/sentence/content;
label/labels, or the only ClassLabel, or for multilabel the only list of ClassLabel). Split mapping, few-shot
draws and carving follow `split_sampling`.

Task types (`task`): the labels of a data set are not only class ids, and the data set
says which only in part (a float column may be a class code or a value to predict), so
the suite says it:

- `classification` (the default, and tlbench 0.1's behaviour, unchanged): one class per
  example from `label_column`: a ClassLabel's names, or the sorted distinct plain values
  (missing values and negative integers mark unlabelled examples, which a split used for
  training or scoring may not have).
- `multilabel`: `label_column` holds a list per example (a ``Sequence(ClassLabel)``, whose
  names are the classes, or a list of values, whose sorted distinct values are), or
  `label_columns` names one 0/1 column per class (the class names are the column names).
- `regression`: `label_column` names one numeric column, or `label_columns` several (one
  predicted value each, named after its column).
- `token-classification` (named-entity recognition, CoNLL-2003's layout): `input_column`
  holds a list of words per example (default: ``tokens``, or ``words``) and `label_column`
  a list of tags, one per word (default: ``ner_tags``, or the only list of ClassLabel): a
  ``Sequence(ClassLabel)``, whose names are the tags (B-PER, I-PER, O ...), or a list of
  tag strings, whose sorted distinct values are. Examples are the word lists and labels
  int64 arrays of tag ids; a row whose tags and words differ in number is an error
  naming the split and the row.
- `detection` (an ``objects`` column of boxes and categories, as ``cppe-5``) and
  `segmentation` (a mask image column, as ``scene_parse_150``, with the class names in
  `classes`): see `hf_dense`.

Multilabel and regression labels are read by `table_labels`; a missing label (None or
NaN) there is an error naming the split and how many, never an unlabelled example.
Per-class draws (`shots`, `val_shots`) are classification's alone; the other tasks draw
by count (`n_train`, `n_val`, `protocol`).

Image examples are files: images stored inside the data set (parquet bytes) are
written once, content-addressed, under ``<tlbench cache>/hf-dataset/images/``, so a
run's content hash is a hash of the encoded bytes and nothing is decoded before a model
needs it. Text examples are the strings themselves.

Audio examples are `Waveform`s decoded by soundfile (`decoded_audio`), not by `datasets`:
its Audio feature decodes through torchcodec and FFmpeg, which tlbench does not install,
so the column is read undecoded (``Audio(decode=False)``: the stored bytes, or a path)
and decoded with libsndfile as tlbench decodes audio files everywhere else, at the rate
and channel count stored. The feature's own `sampling_rate` (a resampling `datasets`
would do on decoding) is not applied: tlbench resamples each example to the rate the
source takes, and records it. Parquet data sets (the hub's usual form, with the bytes
embedded) load as they are; `datasets`' own audiofolder builder encodes through
torchcodec while loading, so use the `audiofolder` target for a folder of audio files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from pathlib import Path

import tlbench
from tlbench.api import Env, Splits, Target, TargetData, Waveform
from tlbench.errors import ParamError, ResourceUnavailable, first_line
from tlbench.params import Param

from .hf_dense import (DENSE_TASKS, DETECTION, MASK_COLUMNS, OBJECT_COLUMNS, SEGMENTATION, check_dense_params,
                       mask_labels, object_labels)
from .hf_extra import require_hf_extra
from .row_selection import check_class_map, check_split_by, remap_classes, split_by_column
from .split_sampling import SAMPLING_PARAMS, check_sampling, sampled_splits
from .table_labels import (TASK_PARAM, TASKS, LabelTable, TaskLabels, check_label_columns, multi_hot_columns,
                           multi_hot_lists, value_columns)

FORMATS = ("parquet", "csv", "json", "arrow", "imagefolder")
_SUFFIX_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}
_TEXT_COLUMNS = ("text", "sentence", "content", "review", "document", "question")
_LABEL_COLUMNS = ("label", "labels")
_WORD_COLUMNS = ("tokens", "words")
_TAG_COLUMNS = ("ner_tags", "tags")
TOKEN_CLASSIFICATION = "token-classification"
_AUTO_SPLITS = {"train": ("train",), "val": ("validation", "valid", "val", "dev"), "test": ("test",)}
_OFFLINE_HOW = "set path to local files (parquet, csv, json or an image folder)"


# ---------------------------------------------------------------------------- loading


@contextlib.contextmanager
def _quiet_datasets():
    """No progress bars or logs from `datasets` while tlbench loads: a file it cannot
    read raises, and tlbench reports that in one line of its own."""
    from datasets.utils import (are_progress_bars_disabled, disable_progress_bars, enable_progress_bars,
                                logging)

    was_disabled = are_progress_bars_disabled()
    level = logging.get_verbosity()
    disable_progress_bars()
    logging.set_verbosity(logging.CRITICAL)
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if not was_disabled:
            enable_progress_bars()


def _hub_repo(params: dict):
    from .hub_cache import HubRepo

    return HubRepo(params["path"], "dataset", params["revision"])


def _is_local(params: dict) -> bool:
    from .hub_cache import looks_like_path

    return Path(params["path"]).expanduser().exists() or looks_like_path(params["path"])


def _patterns(params: dict) -> list[str] | None:
    """The files of a hub data set the target reads: its card and the `data_files`, or all (None)."""
    if not params["data_files"]:
        return None
    values = params["data_files"].values()
    return ["README.md", *[v for value in values for v in ([value] if isinstance(value, str) else value)]]


def _missing(params: dict) -> list[str]:
    """What the cached snapshot lacks of the files the target reads, by its own listing."""
    from huggingface_hub.utils import filter_repo_objects

    repo = _hub_repo(params)
    snapshot = repo.cached_snapshot()
    if snapshot is None:
        return []
    return repo.missing(snapshot, lambda files: list(filter_repo_objects(files, allow_patterns=_patterns(params))))


def _cached(params: dict) -> Path | None:
    """The hub data set's snapshot folder when it is whole for what the target reads."""
    snapshot = _hub_repo(params).cached_snapshot()
    return snapshot if snapshot is not None and not _missing(params) else None


def _load(params: dict):
    """(DatasetDict, revision) for `params`, downloading a hub data set only when online."""
    import datasets

    from .hub_cache import datasets_cache_dir, hub_online, snapshot_revision
    from .local_files import path_revision

    options = {"cache_dir": str(datasets_cache_dir())}
    if params["name"]:
        options["name"] = params["name"]
    if params["data_files"]:
        options["data_files"] = params["data_files"]
    if _is_local(params):
        path = Path(params["path"]).expanduser().resolve()
        if not path.exists():
            raise ResourceUnavailable(f"path: no such file or directory {str(path)!r}")
        fmt = params["format"] or (_SUFFIX_FORMATS.get(path.suffix.lower()) if path.is_file() else None)
        if path.is_file():
            if fmt is None:
                raise ParamError(f"format: cannot tell the format of {str(path)!r}; set format to one of "
                                 f"{', '.join(FORMATS)}")
            options.setdefault("data_files", {"train": str(path)})
            where = fmt
        elif fmt is not None:
            options["data_dir"] = str(path)
            where = fmt
        else:
            where = str(path)
        revision = path_revision(path)
    else:
        repo = _hub_repo(params)
        snapshot = _cached(params)
        if snapshot is None:
            if not hub_online():
                raise repo.unavailable(_OFFLINE_HOW, _missing(params))
            snapshot = repo.download_snapshot(_OFFLINE_HOW, allow_patterns=_patterns(params))
        where = str(snapshot)
        revision = f"hf:{repo.repo_id}@{snapshot_revision(snapshot) or repo.ref}"
        if params["name"]:
            revision += f":{params['name']}"
    with _quiet_datasets():
        try:
            loaded = datasets.load_dataset(where, **options)
        except (FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as exc:
            raise ResourceUnavailable(f"data set {params['path']!r} cannot be loaded: {first_line(exc)}") from None
        except datasets.exceptions.DatasetGenerationError as exc:
            cause = exc
            while cause.__cause__ is not None or cause.__context__ is not None:
                cause = cause.__cause__ or cause.__context__
            raise ResourceUnavailable(f"data set {params['path']!r} cannot be read: {type(cause).__name__}: "
                                      f"{first_line(cause, 300)}") from None
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    return loaded, revision


def _split_map(params: dict, available: list[str]) -> dict[str, str]:
    """Our split -> the data set's split; only 'train' is required."""
    if params["splits"]:
        mapping = dict(params["splits"])
        for ours, theirs in mapping.items():
            if theirs not in available:
                raise ParamError(f"splits.{ours}: the data set has no split {theirs!r}; it has "
                                 f"{', '.join(available)}")
    else:
        mapping = {}
        for ours, names in _AUTO_SPLITS.items():
            found = next((n for n in names if n in available), None)
            if found is not None:
                mapping[ours] = found
    if "train" not in mapping:
        raise ParamError(f"splits.train: the data set has no 'train' split; map one of "
                         f"{', '.join(available)} with splits = {{ train = \"...\" }}")
    return mapping


def _list_item(feature):
    """The item feature of a list feature (``Sequence``, ``List``, ``LargeList`` or a
    plain ``[feature]``), or None for any other feature."""
    import datasets

    if isinstance(feature, list):
        return feature[0] if len(feature) == 1 else None
    kinds = tuple(kind for kind in (getattr(datasets, name, None) for name in ("Sequence", "List", "LargeList"))
                  if isinstance(kind, type))
    return getattr(feature, "feature", None) if isinstance(feature, kinds) else None


def _typical_label(feature, task: str) -> bool:
    """Whether a column's feature is what the task's labels usually are (found when alone)."""
    import datasets

    if task == "classification":
        return isinstance(feature, datasets.ClassLabel)
    if task in ("multilabel", TOKEN_CLASSIFICATION):
        return isinstance(_list_item(feature), datasets.ClassLabel)
    return False


def _pick_labels(params: dict, features) -> list[str]:
    """The label columns: `label_columns`, or `label_column` given or found."""
    columns = list(features)
    if params["label_columns"]:
        missing = [c for c in params["label_columns"] if c not in features]
        if missing:
            raise ParamError(f"label_columns: no column {missing[0]!r}; the data set has {', '.join(columns)}")
        return list(params["label_columns"])
    label = params["label_column"]
    if label is None:
        names = {TOKEN_CLASSIFICATION: _TAG_COLUMNS, DETECTION: OBJECT_COLUMNS,
                 SEGMENTATION: MASK_COLUMNS}.get(params["task"], _LABEL_COLUMNS)
        label = next((c for c in names if c in features), None)
        typical = [c for c, f in features.items() if _typical_label(f, params["task"])]
        if label is None and len(typical) == 1:
            label = typical[0]
        if label is None:
            or_columns = "" if params["task"] == "classification" else " (or set label_columns)"
            raise ParamError(f"label_column: cannot tell which column holds the labels; set it to one of "
                             f"{', '.join(columns)}{or_columns}")
    elif label not in features:
        raise ParamError(f"label_column: no column {label!r}; the data set has {', '.join(columns)}")
    return [label]


def _pick_columns(params: dict, features) -> tuple[str, list[str], str]:
    """(input column, label columns, modality)."""
    import datasets

    columns = list(features)
    labels = _pick_labels(params, features)
    column = params["input_column"]
    if params["task"] == TOKEN_CLASSIFICATION:
        return _pick_words(column, labels, features), labels, "text"
    if column is None:
        media = [c for kind in (datasets.Image, datasets.Audio) for c, f in features.items()
                 if isinstance(f, kind) and c not in labels]
        texts = [c for c in _TEXT_COLUMNS if c in features and c not in labels]
        column = media[0] if len(media) == 1 else (texts[0] if not media and texts else None)
        if column is None:
            raise ParamError(f"input_column: cannot tell which column holds the inputs; set it to one of "
                             f"{', '.join(c for c in columns if c not in labels)}")
    elif column not in features:
        raise ParamError(f"input_column: no column {column!r}; the data set has {', '.join(columns)}")
    feature = features[column]
    if isinstance(feature, datasets.Image):
        return column, labels, "image"
    if params["task"] in DENSE_TASKS:
        raise ParamError(f"input_column: column {column!r} holds {feature}; the {params['task']} task needs images")
    if isinstance(feature, datasets.Audio):
        return column, labels, "audio"
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        return column, labels, "text"
    raise ParamError(f"input_column: column {column!r} holds {feature}, expected images, audio or text")


def _pick_words(column: str | None, labels: list[str], features) -> str:
    """The column of word lists of a token-classification target."""
    import datasets

    columns = list(features)
    if column is None:
        column = next((c for c in _WORD_COLUMNS if c in features), None)
        if column is None:
            raise ParamError(f"input_column: cannot tell which column holds the word lists; set it to one of "
                             f"{', '.join(c for c in columns if c not in labels)}")
    elif column not in features:
        raise ParamError(f"input_column: no column {column!r}; the data set has {', '.join(columns)}")
    item = _list_item(features[column])
    if not (isinstance(item, datasets.Value) and item.dtype in ("string", "large_string")):
        raise ParamError(f"input_column: column {column!r} holds {features[column]}; the token-classification task "
                         f"needs a list of words (strings) per example")
    return column


# ---------------------------------------------------------------------------- labels


def _tag_labels(datasets_by_split: dict, words: str, tags: str, feature, split_map: dict[str, str]
                ) -> tuple[list[str], dict]:
    """(tag names, per split an object array of int64 tag-id arrays) of a token-classification
    target: a Sequence(ClassLabel)'s names, or the sorted distinct tag strings."""
    import datasets
    import numpy as np

    item = _list_item(feature)
    if item is None:
        raise ParamError(f"label_column: column {tags!r} holds {feature}; the token-classification task needs a list "
                         f"of tags per example (one per word)")
    raw = {ours: ds.select_columns([words, tags]).to_dict() for ours, ds in datasets_by_split.items()}
    if isinstance(item, datasets.ClassLabel):
        names = list(item.names)
    else:
        names = sorted({str(tag) for columns in raw.values() for row in columns[tags] for tag in row or ()})
    index = {name: i for i, name in enumerate(names)}
    labels = {}
    for ours, columns in raw.items():
        rows = np.empty(len(columns[tags]), dtype=object)
        for row, (sentence, sequence) in enumerate(zip(columns[words], columns[tags])):
            sentence, sequence = sentence or [], sequence or []
            where = f"splits.{ours}: split {split_map[ours]!r}, row {row}"
            if len(sentence) != len(sequence):
                raise ParamError(f"{where} has {len(sentence)} words but {len(sequence)} tags in {tags!r}; "
                                 f"expected one tag per word")
            if isinstance(item, datasets.ClassLabel):
                ids = np.asarray(sequence, dtype=np.int64)
                bad = ids[(ids < 0) | (ids >= len(names))]
                if len(bad):
                    raise ParamError(f"{where} has tag id {int(bad[0])}; {tags!r} has {len(names)} tags")
            else:
                ids = np.asarray([index[str(tag)] for tag in sequence], dtype=np.int64)
            rows[row] = ids
        labels[ours] = rows
    if len(names) < 2:
        raise ParamError(f"label_column: {tags!r} has {len(names)} tag; expected at least 2")
    return names, labels


def _class_labels(raw: dict, feature, label_column: str, split_map: dict[str, str]) -> tuple[list[str], dict]:
    """(class names, class ids per split) of a classification target: tlbench 0.1's rules,
    kept as they were so classification content hashes do not change. `raw` maps our
    split to the label column's values."""
    import datasets
    import numpy as np

    if _list_item(feature) is not None:
        raise ParamError(f"label_column: {label_column!r} holds a list per example; set task = \"multilabel\"")
    if isinstance(feature, datasets.ClassLabel):
        class_names = list(feature.names)
        labels = {ours: np.asarray(values, dtype=np.int64) for ours, values in raw.items()}
    else:  # plain values: classes are the sorted distinct values over the splits used;
        # missing values and negative integers (the usual -1) mark unlabelled examples
        def plain(value):
            value = value.item() if hasattr(value, "item") else value
            unlabelled = value is None or (isinstance(value, float) and value != value) or \
                (isinstance(value, int) and value < 0)
            return None if unlabelled else value

        values = sorted({v for arr in raw.values() for v in map(plain, arr) if v is not None},
                        key=lambda v: (str(type(v)), v))
        index = {v: i for i, v in enumerate(values)}
        class_names = [str(v) for v in values]
        labels = {ours: np.asarray([index.get(plain(v), -1) for v in arr], dtype=np.int64)
                  for ours, arr in raw.items()}
    for ours, ids in labels.items():
        bad = ids[(ids < 0) | (ids >= len(class_names))]
        if len(bad):
            raise ParamError(f"splits.{ours}: split {split_map[ours]!r} has {len(bad)} examples "
                             f"without a valid label (e.g. {int(bad[0])}); map a labelled split to "
                             f"{ours}, e.g. splits = {{ train = \"train\", test = \"validation\" }}")
    if len(class_names) < 2:
        raise ParamError(f"label_column: {label_column!r} has {len(class_names)} class; expected at least 2")
    return class_names, labels


def _task_labels(task: str, table: LabelTable, columns: list[str], features, several: bool) -> TaskLabels:
    """Multilabel or regression labels from the data set's label `columns` (`several`:
    named by `label_columns`, else one `label_column`)."""
    import datasets

    class_columns = [c for c in columns if isinstance(features[c], datasets.ClassLabel)]
    list_columns = [c for c in columns if _list_item(features[c]) is not None]
    if task == "regression" and (class_columns or list_columns):
        held = "class labels" if class_columns else "a list per example"
        raise ParamError(f"{table.param}: column {(class_columns or list_columns)[0]!r} holds {held}; the "
                         f"regression task needs numbers")
    if task == "regression":
        return value_columns(table, columns)
    if several:
        return multi_hot_columns(table, columns)
    item = _list_item(features[columns[0]])
    if item is None:
        raise ParamError(f"label_column: column {columns[0]!r} holds one value per example; the multilabel task "
                         f"needs a list of classes per example, or label_columns (one 0/1 column per class)")
    return multi_hot_lists(table, columns[0], list(item.names) if isinstance(item, datasets.ClassLabel) else None)


# ---------------------------------------------------------------------------- images


def _suffix(data: bytes, original: str | None) -> str:
    if original and Path(original).suffix:
        return Path(original).suffix.lower()
    for magic, suffix in ((b"\x89PNG", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"),
                          (b"BM", ".bmp"), (b"II*\x00", ".tif"), (b"MM\x00*", ".tif")):
        if data.startswith(magic):
            return suffix
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".img"


def stored_image(value: dict, folder: Path) -> Path:
    """A data set image cell ({'bytes', 'path'}) as a file: the original file when it is
    on disk, else its bytes written once under `folder`, named by their hash."""
    data, original = value.get("bytes"), value.get("path")
    if not data:
        if original and Path(original).is_file():
            return Path(original)
        raise ResourceUnavailable(f"an image cell has neither bytes nor a readable file ({original!r})")
    name = hashlib.blake2b(data, digest_size=16).hexdigest()
    target = folder / name[:2] / (name + _suffix(data, original))
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return target


# ---------------------------------------------------------------------------- audio


def decoded_audio(value: dict) -> Waveform:
    """A data set audio cell ({'bytes', 'path'}, read with ``Audio(decode=False)``) as a
    `Waveform` of float32 samples, (frames,) or (channels, frames), decoded by soundfile.

    Not by `datasets`: its Audio feature decodes through torchcodec (and FFmpeg), which
    tlbench does not install; libsndfile reads WAV, FLAC and OGG from the bytes as it
    reads audio files."""
    import io

    import numpy as np
    import soundfile

    data, original = value.get("bytes"), value.get("path")
    if not data and not (original and Path(original).is_file()):
        raise ResourceUnavailable(f"an audio cell has neither bytes nor a readable file ({original!r})")
    try:
        samples, rate = soundfile.read(io.BytesIO(data) if data else original, dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile's "Format not recognised", a damaged stream
        raise ResourceUnavailable(f"an audio cell ({original!r}) cannot be decoded by soundfile: "
                                  f"{type(exc).__name__}: {first_line(exc, 200)}") from None
    samples = np.ascontiguousarray(samples.T)  # (channels, frames)
    return Waveform(samples[0] if samples.shape[0] == 1 else samples, int(rate))


# ---------------------------------------------------------------------------- the target


class HFDatasetData(TargetData):
    def __init__(self, loaded, revision: str, params: dict, image_folder: Path):
        import datasets

        self.params = params
        self.task = params["task"]
        self.revision = revision
        self.image_folder = image_folder
        self.split_map = _split_map(params, list(loaded))
        first = loaded[self.split_map["train"]]
        self.column, self.label_columns, self.modality = _pick_columns(params, first.features)
        self.label_column = None if params["label_columns"] else self.label_columns[0]
        self.datasets = {ours: loaded[theirs] for ours, theirs in self.split_map.items()}
        if params["split_by"]:
            self.datasets = split_by_column(self.datasets, params["split_by"], f"splits {self.split_map}")
            self.split_map = {ours: f"{self.split_map['train']}[{params['split_by']['column']}]"
                              for ours in self.datasets}
        if self.modality == "image":  # read images as stored (bytes or a path), never decoded here
            self.datasets = {ours: ds.cast_column(self.column, datasets.Image(decode=False))
                             for ours, ds in self.datasets.items()}
        if self.modality == "audio":  # read as stored, decoded by soundfile (`decoded_audio`)
            self.datasets = {ours: ds.cast_column(self.column, datasets.Audio(decode=False))
                             for ours, ds in self.datasets.items()}
        if self.task == DETECTION:
            self.class_names, self.labels = object_labels(self.datasets, self.column, self.label_column,
                                                          first.features[self.label_column], params["bbox_format"],
                                                          self.split_map)
        elif self.task == SEGMENTATION:
            self.datasets = {ours: ds.cast_column(self.label_column, datasets.Image(decode=False))
                             for ours, ds in self.datasets.items()}
            self.class_names = list(params["classes"])
            self.labels = mask_labels(self.datasets, self.column, self.label_column, self.class_names,
                                      params["reduce_zero_label"], self.split_map)
        elif self.task == TOKEN_CLASSIFICATION:
            self.class_names, self.labels = _tag_labels(self.datasets, self.column, self.label_column,
                                                        first.features[self.label_column], self.split_map)
        elif self.task == "classification":
            raw = {ours: ds.with_format("numpy", columns=[self.label_column])[self.label_column]
                   for ours, ds in self.datasets.items()}
            self.class_names, self.labels = _class_labels(raw, first.features[self.label_column],
                                                          self.label_column, self.split_map)
            if params["class_map"]:
                self.class_names, self.labels, kept = remap_classes(self.class_names, self.labels,
                                                                    params["class_map"])
                self.datasets = {ours: ds.select(kept[ours]) for ours, ds in self.datasets.items()}
        else:
            table = LabelTable(frames={ours: ds.select_columns(self.label_columns).to_pandas()
                                       for ours, ds in self.datasets.items()},
                               param="label_columns" if params["label_columns"] else "label_column",
                               places={ours: f"split {theirs!r}" for ours, theirs in self.split_map.items()})
            read = _task_labels(self.task, table, self.label_columns, first.features,
                                several=bool(params["label_columns"]))
            self.class_names, self.labels = read.class_names, read.by_split
        self.num_classes = len(self.class_names)

    def _examples(self, split: str, indices) -> list:
        rows = self.datasets[split].select(indices.tolist())
        if self.task == TOKEN_CLASSIFICATION:
            return [[str(word) for word in value or ()] for value in rows[self.column]]
        if self.modality == "text":
            return [value if value is not None else "" for value in rows[self.column]]
        if self.modality == "audio":
            return [decoded_audio(value) for value in rows[self.column]]
        return [stored_image(value, self.image_folder) for value in rows[self.column]]

    def splits(self, seed: int) -> Splits:
        return sampled_splits(self.labels, self.params, seed, self.class_names, self._examples)


def _check_labelling(params: dict) -> None:
    """The task, its label parameters and the sampling agree (cheap; no data read)."""
    task, columns = params["task"], params["label_columns"]
    if task == TOKEN_CLASSIFICATION and columns is not None:
        raise ParamError("label_columns: the token-classification task reads one label_column (a list of tags per "
                         "example)")
    if columns is not None:
        if task == "classification":
            raise ParamError("label_columns: the classification task reads one label_column; label_columns is "
                             "for task = \"multilabel\" (0/1 columns) or \"regression\" (numeric columns)")
        if params["label_column"] is not None:
            raise ParamError("label_column and label_columns: give one (a single column, or several)")
        check_label_columns(columns, task)
    check_dense_params(params)
    check_sampling(params, task)


class HFDataset(Target):
    name = "hf-dataset"
    version = "1"
    description = ("a Hugging Face data set (hub id or local parquet/csv/json/image folder) of images, audio or "
                   "texts: classification, multilabel, regression, token classification (NER), detection or "
                   "segmentation, few-shot ready")
    params = {
        "path": Param(str, help="hub data set id (org/name), or a local file or directory (relative to the "
                                "suite's folder)", path="local-or-id"),
        "name": Param(str, None, "the data set's configuration (subset) name"),
        "revision": Param(str, None, "hub revision: branch, tag or commit sha (default: main)"),
        "data_files": Param(dict, None, "split name -> file or glob (list of them), relative to path; "
                                        "for a hub id, only these files are downloaded"),
        "format": Param(str, None, "builder for local files (default: from the file's suffix)",
                        choices=FORMATS),
        "input_column": Param(str, None, "column with the images, audio or texts (default: found when "
                                         "unambiguous); token-classification: the lists of words (default: "
                                         "tokens or words)"),
        "task": dataclasses.replace(TASK_PARAM, choices=(*TASKS, TOKEN_CLASSIFICATION, *DENSE_TASKS),
                                    help=TASK_PARAM.help + ", 'token-classification' (a tag per word: named "
                                                           "entities, a list of words per example), 'detection' "
                                                           "(boxes: an objects column) or 'segmentation' (a mask "
                                                           "image column)"),
        "label_column": Param(str, None, "column with the labels: class ids or values (classification), a list "
                                         "of classes per example (multilabel), a number (regression); default: "
                                         "label, labels or the only ClassLabel (multilabel: list of ClassLabel); "
                                         "token-classification: a list of tags per example (default: ner_tags, "
                                         "tags or the only list of ClassLabel)"),
        "bbox_format": Param(str, "xywh", "detection: the boxes of the objects column, COCO's x, y, width, "
                                          "height ('xywh') or corners ('xyxy'), in pixels",
                             choices=("xywh", "xyxy"), omit_default=True),
        "classes": Param(list, None, "segmentation: the names of the mask values 0...K-1 (after "
                                     "reduce_zero_label)", items=str, omit_default=True),
        "reduce_zero_label": Param(bool, False, "segmentation: mask value 0 is 'not labelled' (ignored) and k is "
                                                "class k - 1 (ADE20K / scene_parse_150)", omit_default=True),
        "label_columns": Param(list, None, "instead of label_column, for multilabel: one 0/1 column per class "
                                           "(named after it); for regression: numeric columns, one predicted "
                                           "value each", items=str, omit_default=True),
        "splits": Param(dict, {}, "our split -> the data set's split, e.g. { train = \"train\", test = "
                                  "\"validation\" }; unmapped val/test are carved from train "
                                  "(default: train, validation/valid/val/dev, test when present)"),
        "split_by": Param(dict, None, "split the train split by a column instead, e.g. { column = \"fold\", "
                                      "test = [5], val = [4] } (ESC-50's folds): rows with those values are the "
                                      "test and validation splits, the rest the training pool",
                          omit_default=True),
        "class_map": Param(dict, None, "classification: the data set's class -> ours, to rename, merge or drop "
                                       "classes, \"*\" for every class not named (SUPERB's keyword spotting: ten "
                                       "words, _silence_, \"*\" = \"_unknown_\"); classes not mapped are "
                                       "dropped with their rows", omit_default=True),
        **SAMPLING_PARAMS,
    }

    def check(self, params: dict, env: Env) -> None:
        from .hub_cache import hub_online

        require_hf_extra("target 'hf-dataset'", "datasets")
        for key, value in (params["splits"] or {}).items():
            if key not in _AUTO_SPLITS:
                raise ParamError(f"splits.{key}: expected keys train, val and test")
            if not isinstance(value, str):
                raise ParamError(f"splits.{key}: expected the name of a split of the data set, got {value!r}")
        if len(set((params["splits"] or {}).values())) != len(params["splits"] or {}):
            raise ParamError(f"splits: each split of the data set may be used once, got {params['splits']}")
        for key, value in (params["data_files"] or {}).items():
            if not isinstance(value, str) and not (isinstance(value, list) and
                                                   all(isinstance(v, str) for v in value)):
                raise ParamError(f"data_files.{key}: expected a file name, a glob or a list of them")
        _check_labelling(params)
        check_split_by(params["split_by"])
        check_class_map(params["class_map"])
        if params["class_map"] and params["task"] != "classification":
            raise ParamError("class_map: maps the classes of a classification task; this target's task is "
                             f"{params['task']!r}")
        if _is_local(params):
            path = Path(params["path"]).expanduser()
            if not path.exists():
                raise ResourceUnavailable(f"path: no such file or directory {os.path.abspath(path)!r}; point path "
                                          f"at local files or give a hub data set id")
            return
        if _cached(params) is None and not hub_online():
            raise _hub_repo(params).unavailable(_OFFLINE_HOW, _missing(params))

    def task(self, params: dict) -> str:
        return params["task"]

    def modality(self, params: dict) -> str | None:
        """None: an image, audio or text column, which only the data tells."""
        return None

    def load(self, params: dict, env: Env) -> HFDatasetData:
        self.check(params, env)
        loaded, revision = _load(params)
        return HFDatasetData(loaded, revision, params, Path(env.cache_dir) / "hf-dataset" / "images")

    def load_offline(self, params: dict, env: Env) -> HFDatasetData | None:
        """Local files, or a whole cached snapshot; None for a hub data set still to download."""
        if not _is_local(params) and _cached(params) is None:
            return None
        return self.load(params, env)


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(HFDataset())
