"""Conformance of targets: the task type they declare is the one they load, every split
of every seed is non-empty, disjoint from the others and labelled as its task accepts,
image files are `pathlib.Path`, audio is `Waveform`s of finite samples or audio files
(`pathlib.Path`) that soundfile reads, and the same parameters give the same content
hash on every call and load."""

from __future__ import annotations

from pathlib import Path

from ..api import MODALITIES, SPLITS, Split, Splits, Target, TargetData, Task, Waveform
from ..plugins import PluginRegistry, Registered
from .items import ItemRef, fail, installed_plugins, kit_env, resolve


def check_target(target: ItemRef, params: dict | None = None, *, seeds: tuple[int, ...] = (0, 1),
                 registry: PluginRegistry | None = None, cache_dir: str | Path | None = None) -> TargetData:
    """Load the target and check its splits for every seed in `seeds`: non-empty, disjoint,
    labels that its task's `check_labels` accepts, image files given as `pathlib.Path`
    (not `str`), audio as `Waveform`s or readable audio files, and the same examples and
    labels (content hash) on every call and load."""
    from ..hashing import splits_content_hash

    reg, params = resolve("target", target, params, registry)
    item, env = reg.item, kit_env(registry, cache_dir)
    item.check(params, env)
    task = declared_task(reg, params, registry)
    data = item.load(params, env)
    check_target_data(reg, data, task, item.modality(params))
    reloaded = item.load(params, env)
    for seed in seeds:
        splits = data.splits(seed)
        check_splits(reg, data, splits, seed, task)
        content_hash = splits_content_hash(splits, task.label_bytes)[0]
        if splits_content_hash(data.splits(seed), task.label_bytes)[0] != content_hash:
            fail(reg, f"splits({seed}) gave other examples or labels on a second call: splits must depend only "
                      f"on the seed")
        if splits_content_hash(reloaded.splits(seed), task.label_bytes)[0] != content_hash:
            fail(reg, f"splits({seed}) of a second load() gave other examples or labels: the content hash must "
                      f"be stable, or every run would be redone")
    return data


def declared_task(reg: Registered, params: dict, registry: PluginRegistry | None) -> Task:
    """The task item the target declares for `params` (which must be registered)."""
    item: Target = reg.item
    name = item.task(params)
    try:
        return (registry or installed_plugins()).get("task", name).item
    except Exception:
        fail(reg, f"task({params!r}) is {name!r}, which no installed plugin registers as a task type")


def check_target_data(reg: Registered, data: TargetData, task: Task | None = None,
                      modality: str | None = None) -> None:
    if not isinstance(data, TargetData):
        fail(reg, f"load() must return a tlbench.api.TargetData, got {type(data).__name__}")
    if task is not None and data.task != task.name:
        fail(reg, f"declares a {task.name!r} task (Target.task) but loaded data of task {data.task!r}")
    if not isinstance(data.num_classes, int) or data.num_classes < 1:
        fail(reg, f"num_classes must be a positive int, got {getattr(data, 'num_classes', None)!r}")
    if data.modality not in MODALITIES:
        fail(reg, f"modality must be one of {MODALITIES}, got {data.modality!r}")
    if modality is not None and data.modality != modality:
        fail(reg, f"declares {modality!r} inputs (Target.modality) but loaded {data.modality!r} ones")
    if len(data.class_names) != data.num_classes:
        fail(reg, f"class_names has {len(data.class_names)} names for {data.num_classes} classes")
    if data.revision is not None and not isinstance(data.revision, str):
        fail(reg, "revision must be a string or None")


def check_splits(reg: Registered, data: TargetData, splits: Splits, seed: int, task: Task | None = None) -> None:
    import numpy as np

    from ..hashing import examples_digests

    if not isinstance(splits, Splits):
        fail(reg, f"splits({seed}) must return tlbench.api.Splits, got {type(splits).__name__}")
    info = data.info()
    digests: dict[str, set[bytes]] = {}
    seen_ids: set[int] = set()
    for name, split in splits.items():
        where = f"splits({seed}).{name}"
        if not isinstance(split, Split):
            fail(reg, f"{where} must be a tlbench.api.Split")
        if split.labels is None or len(split.examples) != len(split.labels):
            got = "no labels" if split.labels is None else f"{len(split.labels)} labels"
            fail(reg, f"{where} has {len(split.examples)} examples but {got}")
        if data.modality == "image":
            text = next((example for example in split.examples if isinstance(example, str)), None)
            if text is not None:
                fail(reg, f"{where} gives an image example as a str ({text!r}); give image files as "
                          f"pathlib.Path: a str is hashed as text, so an edited image would never redo "
                          f"its runs, while a Path is hashed by the file's bytes")
        if data.modality == "audio":
            check_audio(reg, where, split.examples)
        if len(split.examples) == 0:
            fail(reg, f"{where} is empty")
        if task is not None:
            try:
                task.check_labels(split.labels, info, name)
            except (ValueError, TypeError) as exc:
                fail(reg, f"{where}: its {task.name} labels are refused: {exc}")
        ids = np.asarray(split.labels)
        if ids.ndim == 1 and ids.dtype.kind in "iu":  # class ids: every declared class should be used
            seen_ids.update(int(label) for label in np.unique(ids))
        digests[name] = set(examples_digests(split.examples))
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1:]:
            shared = digests[first] & digests[second]
            if shared:
                fail(reg, f"splits({seed}) overlap: {len(shared)} examples of {second!r} are also in "
                          f"{first!r}")
    missing = sorted(set(range(data.num_classes)) - seen_ids) if seen_ids else []
    if missing:
        fail(reg, f"splits({seed}) never use classes {missing[:10]} of the declared {data.num_classes}")


def check_audio(reg: Registered, where: str, examples) -> None:
    """Audio examples are `Waveform`s (finite float samples, (frames,) or (channels,
    frames), a positive rate) or audio files as `pathlib.Path` that soundfile reads."""
    import numpy as np
    import soundfile

    for i, example in enumerate(examples):
        at = f"{where}.examples[{i}]"
        if isinstance(example, str):
            fail(reg, f"{at} gives an audio file as a str ({example!r}); give audio files as pathlib.Path: a str "
                      f"is hashed as text, so an edited file would never redo its runs, while a Path is hashed "
                      f"by the file's bytes")
        if isinstance(example, Path):
            try:
                info = soundfile.info(str(example))
            except Exception as exc:
                fail(reg, f"{at}: soundfile cannot read {str(example)!r}: {type(exc).__name__}: {exc}")
            if info.samplerate <= 0 or info.frames <= 0:
                fail(reg, f"{at}: {str(example)!r} holds no audio ({info.frames} frames at {info.samplerate} Hz)")
            continue
        if not isinstance(example, Waveform):
            fail(reg, f"{at} is a {type(example).__name__}; audio examples are tlbench.api.Waveform(samples, rate) "
                      f"or audio files as pathlib.Path")
        samples = example.samples
        if not isinstance(samples, np.ndarray) or samples.dtype.kind != "f" or samples.ndim not in (1, 2):
            got = (f"{samples.dtype} samples of shape {samples.shape}" if isinstance(samples, np.ndarray)
                   else type(samples).__name__)
            fail(reg, f"{at}: Waveform.samples must be a float array of (frames,) or (channels, frames), got {got}")
        if samples.size == 0 or not np.isfinite(samples).all():
            fail(reg, f"{at}: Waveform.samples must be non-empty and finite")
        if isinstance(example.rate, bool) or not isinstance(example.rate, (int, np.integer)) or example.rate <= 0:
            fail(reg, f"{at}: Waveform.rate must be a positive int (samples per second), got {example.rate!r}")
