"""Planning a suite: check every entry, and give every run its identity.

Everything that can fail before a run starts fails here, with one line per problem
naming the suite entry, and every wrong entry reported at once (`checks`): a model or
data set that is not available offline, a weights file or data folder that is not
there, a target that cannot load, parameters its data cannot meet (classes out of
range, more shots than a class has), labels that cannot be valid for its task, an
image the splits draw that cannot be read.

Two depths of the same checks:

- `check_suite`, for ``tlbench run --dry-run``: each recipe's and source's `check`
  (cheap: names against registries, files on disk, the hub cache when offline), and
  each target loaded as far as this machine allows without the network
  (`Target.load_offline`), split for every seed, its labels checked and the headers of
  the image files its splits draw read. No model is built, no weights are hashed, no
  content hash is computed, nothing is downloaded, and nothing is written but what
  loading caches anyway (a data set's Arrow files, the images a parquet file holds, the
  listing of a model registry's names that plugins check against).
- `plan`, before every real run: the same, with the targets loaded for real
  (downloading what is missing), the sources' fingerprints, and each seed's content
  hash of the examples and labels (with the task's label encoding), so a run is redone
  when its data changes and skipped when it does not.
"""

from __future__ import annotations

from typing import Callable

from ..api import Env
from ..hashing import splits_content_hash
from ..plugins import PluginRegistry
from .checks import (Guard, Problems, check_images, check_labels, check_recipes, check_search_splits,
                     check_shared_inputs, task_of)
from .compatibility import Plan
from .matrix import expand, identify
from .suite import Entry, Suite


def planning_env(suite: Suite, registry: PluginRegistry, log: Callable[[str], None], device: str = "cpu") -> Env:
    """What plugins see at plan time: `device` is where the runs will execute (a source
    pretrained here names it in its fingerprint), though nothing runs on it yet."""
    return Env(cache_dir=suite.cache_dir, device=device, registry=registry, log=log)


def check_suite(suite: Suite, registry: PluginRegistry, log: Callable[[str], None] = print) -> list[str]:
    """The dry run's checks (see the module docstring); every problem is raised, one line
    each. Returns a line per source or target whose content is not on this machine yet
    (a run would download it; with the machine declared offline that is a problem)."""
    env = planning_env(suite, registry, log)
    problems = Problems(suite, dry=True)
    check_recipes(suite, registry, env, problems)
    for i, source in enumerate(suite.sources):
        item = registry.get("source", source.plugin).item
        with problems.entry("sources", i, source) as guard:
            guard("check", lambda: item.check(source.params, env))
    splits: dict[str, dict] = {}
    for i, target in enumerate(suite.targets):
        item = registry.get("target", target.plugin).item
        with problems.entry("targets", i, target) as guard:
            loaded = _checked_target(suite, registry, env, guard, target, offline=True)
            if loaded is None:
                problems.downloads.append(f"{guard.where}: its data are not on this machine yet; they are loaded "
                                          f"and checked when the suite runs, before any run starts")
            else:
                splits[target.id] = loaded[2]
    check_shared_inputs(suite, splits, problems)
    problems.raise_if_any()
    return problems.downloads


def plan(suite: Suite, registry: PluginRegistry, log: Callable[[str], None] = print, device: str = "cpu") -> Plan:
    """All runs of `suite` with their run ids, and what is left out (reads target data,
    builds no model). Every problem found is raised, one line each. `device`: where the
    runs will execute."""
    env = planning_env(suite, registry, log, device)
    problems = Problems(suite)
    check_recipes(suite, registry, env, problems)
    fingerprints: dict[str, str | None] = {}
    for i, source in enumerate(suite.sources):
        item = registry.get("source", source.plugin).item
        with problems.entry("sources", i, source) as guard:
            guard("check", lambda: item.check(source.params, env))
            fingerprints[source.id] = guard("fingerprint", lambda: item.fingerprint(source.params, env))
    hashes: dict[tuple[str, int], str] = {}
    revisions: dict[str, str | None] = {}
    loaded: dict[str, dict] = {}
    for i, target in enumerate(suite.targets):
        with problems.entry("targets", i, target) as guard:
            data, task, by_seed = _checked_target(suite, registry, env, guard, target, offline=False)
            for seed, splits in by_seed.items():
                hashes[(target.id, seed)] = guard("hash", lambda: splits_content_hash(splits, task.label_bytes)[0])
            revisions[target.id] = data.revision
            loaded[target.id] = by_seed
    check_shared_inputs(suite, loaded, problems)
    problems.raise_if_any()
    return identify(expand(suite, registry), hashes, fingerprints, revisions)


def _checked_target(suite: Suite, registry: PluginRegistry, env: Env, guard: Guard, target: Entry,
                    offline: bool):
    """(data, task, splits by seed) of a target whose parameters, labels and drawn image
    files passed every check; None when `offline` and its data need the network."""
    item = registry.get("target", target.plugin).item
    guard("check", lambda: item.check(target.params, env))
    load = item.load_offline if offline else item.load
    data = guard("load", lambda: load(target.params, env))
    if data is None:
        return None
    task = task_of(guard.where, target, item, data, registry)
    info = data.info()
    by_seed = {}
    for seed in suite.all_seeds:
        splits = guard("split", lambda: data.splits(seed))
        for name, split in splits.items():
            check_labels(guard.where, task, split, name, info, seed)
        by_seed[seed] = splits
    check_search_splits(guard.where, suite, by_seed)
    check_images(guard.where, data.modality, by_seed)
    return data, task, by_seed
