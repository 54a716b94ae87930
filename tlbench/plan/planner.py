"""Planning a suite: check every source and target, and give every run its identity.

Everything that can fail before a run starts fails here, with one line naming the
suite entry: a model or data set that is not available offline, a target that cannot
load, labels that cannot be valid for the target's task. Targets are loaded once per
entry to check and hash the examples and labels each seed uses (with the task's label
encoding), so a run is redone when its data changes and skipped when it does not.
"""

from __future__ import annotations

import os
from typing import Callable

from ..api import Env
from ..errors import ResourceUnavailable, UserError, first_line
from ..hashing import splits_content_hash
from .compatibility import Plan
from .matrix import expand, with_identity
from ..plugins import PluginRegistry
from .suite import Entry, Suite


def planning_env(suite: Suite, registry: PluginRegistry, log: Callable[[str], None]) -> Env:
    return Env(cache_dir=suite.cache_dir, device="cpu", registry=registry, log=log)


def _guard(suite: Suite, section: str, index: int, entry: Entry, action: str, call):
    """Run a plugin call; turn any failure into one line naming the suite entry."""
    where = f"{suite.path}: {section}[{index}] ({entry.id})"
    try:
        return call()
    except ResourceUnavailable as exc:
        raise ResourceUnavailable(f"{where}: {exc}") from None
    except UserError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    except Exception as exc:
        if os.environ.get("TLBENCH_DEBUG"):
            raise
        message = first_line(str(exc))
        raise UserError(f"{where}: {entry.plugin} {action} failed: {type(exc).__name__}: {message} "
                        f"(TLBENCH_DEBUG=1 shows the traceback)") from None


def check_recipes(suite: Suite, registry: PluginRegistry, log: Callable[[str], None] = print) -> None:
    """Let strategies and estimators check their parameters together (cheap, no data):
    e.g. two options that exclude each other. Done for dry runs too."""
    env = planning_env(suite, registry, log)
    sections = [("strategies", "strategy", suite.strategies), ("estimators", "estimator", suite.estimators)]
    for section, kind, entries in sections:
        for i, entry in enumerate(entries):
            item = registry.get(kind, entry.plugin).item
            _guard(suite, section, i, entry, "check", lambda: item.check(entry.params, env))
    if suite.baseline is not None:
        item = registry.get("strategy", suite.baseline.plugin).item
        _guard(suite, "baseline", 0, suite.baseline, "check", lambda: item.check(suite.baseline.params, env))


def plan(suite: Suite, registry: PluginRegistry, log: Callable[[str], None] = print) -> Plan:
    """All runs of `suite` with their run ids, and what is left out (reads target data,
    builds no model)."""
    check_recipes(suite, registry, log)
    env = planning_env(suite, registry, log)
    fingerprints: dict[str, str | None] = {}
    for i, source in enumerate(suite.sources):
        item = registry.get("source", source.plugin).item
        _guard(suite, "sources", i, source, "check", lambda: item.check(source.params, env))
        fingerprints[source.id] = _guard(suite, "sources", i, source, "fingerprint",
                                         lambda: item.fingerprint(source.params, env))
    hashes: dict[tuple[str, int], str] = {}
    for i, target in enumerate(suite.targets):
        item = registry.get("target", target.plugin).item
        _guard(suite, "targets", i, target, "check", lambda: item.check(target.params, env))
        data = _guard(suite, "targets", i, target, "load", lambda: item.load(target.params, env))
        task = _task_of(suite, i, target, item, data, registry)
        info = data.info()
        for seed in suite.seeds:
            splits = _guard(suite, "targets", i, target, "split",
                            lambda: data.splits(seed))
            for name, split in splits.items():
                _check_labels(suite, i, target, task, split, name, info, seed)
            hashes[(target.id, seed)] = splits_content_hash(splits, task.label_bytes)[0]
    planned = expand(suite, registry)
    planned.specs = with_identity(planned.specs, hashes, fingerprints)
    return planned


def _task_of(suite: Suite, index: int, target: Entry, item, data, registry: PluginRegistry):
    """The task of a loaded target, which must be the one its parameters declared."""
    declared = item.task(target.params)
    if data.task != declared:
        raise UserError(f"{suite.path}: targets[{index}] ({target.id}): {target.plugin} declared a "
                        f"{declared!r} task but loaded {data.task!r} labels (a bug in the target plugin)")
    return registry.get("task", declared).item


def _check_labels(suite: Suite, index: int, target: Entry, task, split, name: str, info, seed: int) -> None:
    """Labels that cannot be valid for the task stop the suite with one line."""
    where = f"{suite.path}: targets[{index}] ({target.id})"
    if split.labels is None or len(split.labels) != len(split.examples):
        got = "no labels" if split.labels is None else f"{len(split.labels)} labels"
        raise UserError(f"{where}: seed {seed}, {name} split: {len(split.examples)} examples but {got}")
    try:
        task.check_labels(split.labels, info, name)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{where}: seed {seed}: {first_line(str(exc))} (the {task.name} task)") from None
