"""What is checked before anything runs, and how the problems found are told.

A suite is checked entry by entry (each recipe, source and target). Within an entry the
first problem ends its checks, since the later ones build on the earlier (a target that
cannot load has no classes to check shots against); across entries every problem is
collected, so one `--dry-run` names everything wrong with a suite, one line each,
instead of one per attempt.

Besides what plugins check themselves (`check`, `load`, `splits`), the core checks what
it can for any plugin: labels the target's task cannot accept, and the files the seeds'
splits draw (`pathlib.Path` examples of image and audio targets), by their headers only:
an unreadable image or audio file is named before it fails every run that draws it, and
a folder of them is never decoded in full.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import NeedsNetwork, ResourceUnavailable, SuiteError, UserError, first_line
from ..plugins import PluginRegistry
from .suite import Entry, Suite


class SuiteProblems(UserError):
    """Several problems, one line each. The command line prints its own prefix before
    the first line only, so every further line carries the same prefix here."""

    def __init__(self, problems: list[UserError]):
        self.problems = list(problems)
        super().__init__("\ntlbench: error: ".join(str(problem) for problem in self.problems))


@dataclass
class Guard:
    """Calls into one suite entry's plugin, each failure turned into one line naming the entry."""

    where: str
    plugin: str

    def __call__(self, action: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except NeedsNetwork as exc:
            raise NeedsNetwork(f"{self.where}: {first_line(exc)}", exc.declared_offline) from None
        except UserError as exc:
            raise _located(exc, f"{self.where}: {first_line(exc)}") from None
        except Exception as exc:
            if os.environ.get("TLBENCH_DEBUG"):
                raise
            raise UserError(f"{self.where}: {self.plugin} {action} failed: {type(exc).__name__}: {first_line(exc)} "
                            f"(TLBENCH_DEBUG=1 shows the traceback)") from None


def _located(error: UserError, message: str) -> UserError:
    """`error` again, as one line saying where (of its own class when that takes a message)."""
    try:
        return type(error)(message)
    except TypeError:
        return UserError(message)


@dataclass
class Problems:
    """The problems of a suite's entries, collected so that all of them are reported."""

    suite: Suite
    found: list[UserError] = field(default_factory=list)

    def where(self, section: str, index: int, entry: Entry) -> str:
        return f"{self.suite.path}: {section}[{index}] ({entry.id})"

    downloads: list[str] = field(default_factory=list)
    """What a dry run notes instead of refusing: content not on this machine yet, which a
    run would download (`NeedsNetwork`, when the machine is not declared offline)."""
    dry: bool = False

    @contextmanager
    def entry(self, section: str, index: int, entry: Entry) -> Iterator[Guard]:
        """Check one entry: the first problem ends its block and is remembered."""
        try:
            yield Guard(self.where(section, index, entry), entry.plugin)
        except NeedsNetwork as exc:
            if self.dry and not exc.declared_offline:
                self.downloads.append(str(exc))
            else:
                self.found.append(exc)
        except UserError as exc:
            self.found.append(exc)

    def raise_if_any(self) -> None:
        """One problem as it was raised; several as `SuiteProblems`, one line each."""
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise SuiteProblems(self.found)


def check_recipes(suite: Suite, registry: PluginRegistry, env, problems: Problems) -> None:
    """Let strategies and estimators check their parameters together (cheap, no data):
    e.g. two options that exclude each other."""
    sections = [("strategies", "strategy", suite.strategies), ("estimators", "estimator", suite.estimators)]
    if suite.baseline is not None:
        sections.append(("baseline", "strategy", (suite.baseline,)))
    for section, kind, entries in sections:
        for i, entry in enumerate(entries):
            item = registry.get(kind, entry.plugin).item
            with problems.entry(section, i, entry) as guard:
                for params in entry.configurations():  # every configuration a search would try
                    guard("check", lambda: item.check(params, env))


def check_search_splits(where: str, suite: Suite, by_seed: dict) -> None:
    """A suite with searches scores its trials on validation: every target needs a
    validation split at every search seed."""
    if not suite.searched:
        return
    for seed in suite.search_seeds:
        if seed in by_seed and not len(by_seed[seed].val):
            raise UserError(f"{where}: seed {seed}: no validation examples, and the suite's searches choose "
                            f"their configurations on validation (give the target a val split, e.g. val_shots)")


def task_of(where: str, target: Entry, item, data, registry: PluginRegistry):
    """The task of a loaded target, which must be the one its parameters declared."""
    declared = item.task(target.params)
    if data.task != declared:
        raise UserError(f"{where}: {target.plugin} declared a {declared!r} task but loaded {data.task!r} labels "
                        f"(a bug in the target plugin)")
    return registry.get("task", declared).item


def check_labels(where: str, task, split, name: str, info, seed: int) -> None:
    """Labels that cannot be valid for the task stop the suite with one line."""
    if split.labels is None or len(split.labels) != len(split.examples):
        got = "no labels" if split.labels is None else f"{len(split.labels)} labels"
        raise UserError(f"{where}: seed {seed}, {name} split: {len(split.examples)} examples but {got}")
    try:
        task.check_labels(split.labels, info, name)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{where}: seed {seed}: {first_line(str(exc))} (the {task.name} task)") from None


def image_files(splits_by_seed: dict) -> list[Path]:
    """The distinct files (`pathlib.Path` examples) the seeds' splits draw, in the order first drawn."""
    files: dict[Path, None] = {}
    for splits in splits_by_seed.values():
        for _, split in splits.items():
            files.update((example, None) for example in split.examples if isinstance(example, Path))
    return list(files)


def unreadable_image(path: Path) -> str | None:
    """Why `path` cannot be read as an image, from its header alone (PIL reads no pixels
    when it opens a file), or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
        return None if width > 0 and height > 0 else f"its header gives a size of {width}x{height}"
    except FileNotFoundError:
        return "no such file"
    except UnidentifiedImageError:
        return "not an image format PIL can identify"
    except Exception as exc:  # a damaged header: any error its format's parser raises
        return f"{type(exc).__name__}: {first_line(exc, 200)}"


def unreadable_audio(path: Path) -> str | None:
    """Why `path` cannot be read as audio, from its header alone (soundfile's `info`
    decodes no samples), or None."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except FileNotFoundError:
        return "no such file"
    except Exception as exc:  # libsndfile's "Format not recognised", a damaged header
        return f"{type(exc).__name__}: {first_line(exc, 200)}"
    if info.samplerate <= 0 or info.channels <= 0:
        return f"its header gives {info.samplerate} Hz and {info.channels} channels"
    return None if info.frames > 0 else "it holds no samples"


HEADER_READERS: dict[str, tuple[str, Callable[[Path], str | None]]] = {
    "image": ("image", unreadable_image),
    "audio": ("audio file", unreadable_audio),
}
"""Modality -> (what its files are called, why one cannot be read from its header or None)."""


def check_images(where: str, modality: str, splits_by_seed: dict) -> None:
    """The files an image or audio target's splits use, each opened by its header: one
    line naming the first that cannot be read, and how many more cannot."""
    if modality not in HEADER_READERS:
        return
    noun, unreadable = HEADER_READERS[modality]
    bad = [(path, reason) for path in image_files(splits_by_seed)
           if (reason := unreadable(path)) is not None]
    if bad:
        path, reason = bad[0]
        more = f" (and {len(bad) - 1} more of the {noun}s the seeds' splits use)" if len(bad) > 1 else ""
        raise ResourceUnavailable(f"{where}: {noun} {os.path.abspath(path)} cannot be read: {reason}{more}")


def check_shared_inputs(suite: Suite, splits: dict[str, dict], problems: Problems) -> None:
    """A task group sampled 'shared' runs the backbone once per batch for all its members,
    so their examples must be the same, split by split and seed by seed. `splits`: target
    id → seed → its splits (targets that could not be loaded are absent)."""
    from ..hashing import examples_digests

    for i, group in enumerate(suite.groups):
        if group.sampling != "shared":
            continue
        first, *others = group.tasks
        for other in others:
            if first not in splits or other not in splits:
                continue
            for seed, made in splits[first].items():
                differ = next((name for name in ("train", "val", "test")
                               if examples_digests(getattr(made, name).examples)
                               != examples_digests(getattr(splits[other][seed], name).examples)), None)
                if differ is not None:
                    problems.found.append(SuiteError(
                        f"{suite.path}: groups[{i}] ({group.id}): sampling 'shared' needs members with the same "
                        f"examples, but {first} and {other} differ in their {differ} split (seed {seed}); use "
                        f"sampling = \"round-robin\" or \"proportional\""))
                    break
