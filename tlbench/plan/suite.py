"""Suite files: a TOML description of what to run, validated before anything runs.

Every mistake ends with one `SuiteError` line naming the file, the key path and what
was expected. Plugin parameters are checked against each plugin's schema here, so a
misspelled learning rate is caught before the first run, not after the hundredth.

Relative paths written in a suite (`suite.output`, `suite.cache_dir`, and every plugin
parameter whose `Param.path` says it names a file or folder) resolve against the suite
file's folder, as compose and pyproject files do, so a suite runs the same from any
working directory. What is not written in the file keeps to the working directory:
the default output `reports/<name>/`, `--out`, ``TLBENCH_CACHE_DIR``.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ParamError, PluginError, SuiteError
from ..params import Param, closest, resolve_params, resolve_paths
from ..plugins import PLURAL, PluginRegistry
from .grids import LIST_TABLES, SEARCH, SWEEP, configurations, read_search, read_sweep, space_json, value_text

_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")
MAX_SEED = 2**32 - 1
"""The largest seed every generator takes as it is (numpy's legacy seeding stops there)."""
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

SUITE_KEYS: dict[str, Param] = {
    "name": Param(str, help="names the suite and its default output directory reports/<name>/"),
    "description": Param(str, "", "one line shown in reports"),
    "seeds": Param(list, [0], "every combination runs once per seed", items=int),
    "device": Param(str, "auto", "auto, cpu, cuda or cuda:N"),
    "time_budget_s": Param(float, 3600.0, "wall-clock limit of each run", min=0.001),
    "memory_budget_mb": Param(float, None, "peak memory limit of each run (CUDA: allocated; CPU: resident)",
                              min=1),
    "output": Param(str, None, "result directory, relative to the suite file's folder; default reports/<name>/ "
                               "in the working directory", path="local"),
    "cache_dir": Param(str, None, "cache for weights and features, relative to the suite file's folder; default "
                                  "$TLBENCH_CACHE_DIR or ~/.cache/tlbench", path="local"),
    "deterministic": Param(bool, False, "use torch's deterministic algorithms (GPU runs)"),
    "plugins": Param(list, [], "extra plugin modules to load by import name", items=str),
    "save_predictions": Param(bool, False, "every run keeps its test predictions in predictions/ of the result "
                                           "directory, referenced from its record (a strategy's own "
                                           "save_predictions overrides this)"),
    "search_seeds": Param(list, None, "seeds the trials of a [strategies.search] run at (default: the first of "
                                      "seeds)", items=int),
    "refit": Param(str, "train+val", "what the configuration a search chose is retrained on: train+val (as VTAB "
                                     "does; no validation split is left to select a checkpoint on, so the last "
                                     "epoch is kept) or train (selecting on val as untuned runs do)",
                   choices=("train+val", "train")),
}

ENTRY_KEYS = ("id", "plugin", "save_predictions")
"""Keys of an entry's table that are not its plugin's parameters."""
SECTIONS = ("suite", "baseline", "sources", "targets", "groups", "strategies", "estimators")
OPTIONAL_SECTIONS = ("estimators",)
_ROLE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Entry:
    """One [[sources]] / [[targets]] / [[strategies]] entry, parameters resolved."""

    kind: str
    id: str
    plugin: str
    version: str
    params: dict[str, Any]
    settings: tuple[str, ...] = ()
    """Parameters that do not affect results (execution knobs), left out of run identities."""
    implicit: tuple[str, ...] = ()
    """Parameters left out of run identities while at their default (`Param.omit_default`):
    added after runs were recorded, with a default that reproduces them."""
    paths: tuple[str, ...] = ()
    """Parameters holding local paths (`Param.path`), resolved against the suite's folder
    and left out of run identities: where content lies is not what it is (the target's
    content hash and revision, the source's fingerprint say that)."""

    search: tuple[tuple[str, tuple], ...] = ()
    """The search space ([strategies.search]): (parameter, values) pairs, whose
    configurations are tried and one chosen (`tlbench.plan.search`); () when not searched."""
    sweep: tuple[str, str, Any] | None = None
    """(the entry's id as written, the swept parameter, this entry's value) for an entry
    made from a [*.sweep] table."""
    save_predictions: bool | None = None
    """A strategy's own `save_predictions` (None: the suite's); not part of identities."""

    def identity_params(self) -> dict[str, Any]:
        left_out = {*self.settings, *self.implicit, *self.paths}
        return {key: value for key, value in self.params.items() if key not in left_out}

    def configurations(self) -> list[dict[str, Any]]:
        """The parameters of every configuration of its search (one: its own when not searched)."""
        return [{**self.params, **config} for config in configurations(self.search)] if self.search \
            else [dict(self.params)]

    def to_json(self) -> dict:
        out = {"id": self.id, "plugin": self.plugin, "version": self.version, "params": self.params}
        if self.search:
            out["search"] = space_json(self.search)
        if self.sweep is not None:
            out["sweep"] = dict(zip(("family", "param", "value"), self.sweep))
        return out


@dataclass(frozen=True)
class Group:
    """A [[groups]] entry: targets by role, for strategies that take several targets at
    once (a labelled and an unlabelled domain, several tasks)."""

    id: str
    roles: dict[str, str]
    """Role name → target id (for a task group, each member's role is its target id)."""
    tasks: tuple[str, ...] = ()
    """For a task group (multi-task learning): its members' target ids, in the suite's order."""
    sampling: str | None = None
    """For a task group: how its training batches are drawn (`tlbench.api.SAMPLINGS`)."""

    @property
    def multitask(self) -> bool:
        return bool(self.tasks)


@dataclass(frozen=True)
class Suite:
    path: Path
    name: str
    description: str
    seeds: tuple[int, ...]
    device: str
    time_budget_s: float
    memory_budget_mb: float | None
    output: Path
    cache_dir: Path
    deterministic: bool
    plugins: tuple[str, ...]
    sources: tuple[Entry, ...]
    targets: tuple[Entry, ...]
    strategies: tuple[Entry, ...]
    estimators: tuple[Entry, ...] = ()
    """Transferability estimators scored for every source, target and seed."""
    baseline: Entry | None = None
    groups: tuple[Group, ...] = ()
    search_seeds: tuple[int, ...] = ()
    """The seeds search trials run at."""
    save_predictions: bool = False
    """Whether runs keep their test predictions (`tlbench.results.predictions`)."""
    refit: str = "train+val"
    """What a search's chosen configuration is retrained on: 'train+val' or 'train'."""
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def target(self, target_id: str) -> Entry:
        return next(entry for entry in self.targets if entry.id == target_id)

    @property
    def searched(self) -> bool:
        """Whether some strategy (or the baseline) selects its configuration by a search."""
        return any(entry.search for entry in (*self.strategies, *((self.baseline,) if self.baseline else ())))

    @property
    def all_seeds(self) -> tuple[int, ...]:
        """The suite's seeds, then the search seeds it does not already have."""
        extra = tuple(seed for seed in self.search_seeds if seed not in self.seeds) if self.searched else ()
        return (*self.seeds, *extra)


def default_cache_dir() -> Path:
    import os

    env = os.environ.get("TLBENCH_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "tlbench"


def read_toml(path: Path) -> dict:
    """Parse a suite file; a missing file or bad syntax is a one-line SuiteError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(f"{path}: no such suite file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read suite file: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: invalid TOML: {exc}") from None


def suite_plugins(path: Path) -> tuple[str, ...]:
    """The extra plugin modules a suite asks for (needed before the registry loads)."""
    data = read_toml(path)
    section = data.get("suite", {})
    plugins = section.get("plugins", []) if isinstance(section, dict) else []
    return tuple(p for p in plugins if isinstance(p, str)) if isinstance(plugins, list) else ()


def check_device(device: str, where: str) -> None:
    """A device name tlbench can resolve (whether the machine has it is checked later)."""
    if not _DEVICE.match(device):
        raise SuiteError(f"{where}: expected auto, cpu, cuda or cuda:N, got {device!r}")


def suite_folder(path: Path) -> Path:
    """The folder a suite's relative paths resolve against: the suite file's, absolute."""
    return Path(os.path.abspath(Path(path).parent))


def load_suite(path: str | Path, registry: PluginRegistry, output: str | Path | None = None) -> Suite:
    """Read and validate a suite file against the loaded plugins. `output` (``--out``) is
    relative to the working directory; paths in the file, to the file's folder."""
    path = Path(path)
    data = read_toml(path)
    where = str(path)
    base = suite_folder(path)
    for key in data:
        if key not in SECTIONS:
            raise SuiteError(f"{where}: {key}: unknown section{closest(key, SECTIONS)}; "
                             f"expected {', '.join(SECTIONS)}")
    suite_table = _table(data, "suite", where, required=True)
    try:
        settings = resolve_params(SUITE_KEYS, suite_table, f"{where}: suite")
    except ParamError as exc:
        raise SuiteError(str(exc)) from None
    if not _ID.match(settings["name"]):
        raise SuiteError(f"{where}: suite.name: expected letters, digits, '.', '_' or '-', "
                         f"got {settings['name']!r}")
    if not settings["seeds"] or len(set(settings["seeds"])) != len(settings["seeds"]) \
            or min(settings["seeds"]) < 0 or max(settings["seeds"]) > MAX_SEED:
        raise SuiteError(f"{where}: suite.seeds: expected a non-empty list of distinct integers in "
                         f"0..{MAX_SEED} (2^32-1), got {settings['seeds']!r}")
    search_seeds = settings["search_seeds"] if settings["search_seeds"] is not None else settings["seeds"][:1]
    if not search_seeds or len(set(search_seeds)) != len(search_seeds) or min(search_seeds) < 0 \
            or max(search_seeds) > MAX_SEED:
        raise SuiteError(f"{where}: suite.search_seeds: expected a non-empty list of distinct integers in "
                         f"0..{MAX_SEED}, got {search_seeds!r}")
    check_device(settings["device"], f"{where}: suite.device")
    settings, _ = resolve_paths(SUITE_KEYS, settings, base)

    entries = {kind: _entries(data, kind, where, registry, base)
               for kind in ("source", "target", "strategy", "estimator")}
    entries["strategy"] = _with_compared(entries["strategy"], registry)
    baseline = _baseline(data, where, registry, entries["strategy"], base)
    baseline = _equal_budget(baseline, entries["strategy"], registry, where)
    groups = _groups(data, where, entries["target"])
    out = Path(output) if output else Path(settings["output"] or Path("reports") / settings["name"])
    cache = Path(settings["cache_dir"]) if settings["cache_dir"] else default_cache_dir()
    return Suite(path=path, name=settings["name"], description=settings["description"],
                 seeds=tuple(settings["seeds"]), device=settings["device"],
                 time_budget_s=settings["time_budget_s"], memory_budget_mb=settings["memory_budget_mb"],
                 output=out, cache_dir=cache, deterministic=settings["deterministic"],
                 plugins=tuple(settings["plugins"]), sources=entries["source"],
                 targets=entries["target"], strategies=entries["strategy"],
                 estimators=entries["estimator"], baseline=baseline, groups=groups,
                 search_seeds=tuple(search_seeds), refit=settings["refit"],
                 save_predictions=settings["save_predictions"], raw=data)


def _table(data: dict, key: str, where: str, required: bool = False) -> dict:
    if key not in data:
        if required:
            raise SuiteError(f"{where}: [{key}]: missing section")
        return {}
    value = data[key]
    if not isinstance(value, dict):
        raise SuiteError(f"{where}: {key}: expected a table [{key}], got {type(value).__name__}")
    return value


def _entries(data: dict, kind: str, where: str, registry: PluginRegistry, base: Path) -> tuple[Entry, ...]:
    section = PLURAL[kind]
    raw = data.get(section)
    if raw is None and section in OPTIONAL_SECTIONS:
        return ()
    if raw is None:
        raise SuiteError(f"{where}: [[{section}]]: missing section, expected at least one entry")
    if not isinstance(raw, list) or not raw or not all(isinstance(e, dict) for e in raw):
        raise SuiteError(f"{where}: {section}: expected one or more [[{section}]] tables")
    entries: list[tuple[int, Entry]] = []
    for i, table in enumerate(raw):
        entries += [(i, entry) for entry in _swept_entries(table, kind, f"{where}: {section}[{i}]", registry, base)]
    seen: dict[str, int] = {}
    for i, entry in entries:
        if entry.id in seen:
            raise SuiteError(f"{where}: {section}[{i}].id: duplicate id {entry.id!r} "
                             f"(also {section}[{seen[entry.id]}]); give each entry its own id")
        seen[entry.id] = i
    return tuple(entry for _, entry in entries)


def _swept_entries(table: dict, kind: str, where: str, registry: PluginRegistry, base: Path) -> list[Entry]:
    """The entry a table describes, or one entry per value of its [*.sweep]."""
    if SWEEP not in table:
        return [_entry(table, kind, where, registry, base)]
    first = _entry({k: v for k, v in table.items() if k != SWEEP}, kind, where, registry, base)
    schema = registry.get(kind, first.plugin).item.params
    given = {k: v for k, v in table.items() if k not in (*ENTRY_KEYS, *LIST_TABLES)}
    key, values = read_sweep(table[SWEEP], schema, given, where)
    entries = []
    for value in values:
        entry = _entry({**{k: v for k, v in table.items() if k != SWEEP}, key: value}, kind, where, registry, base)
        entries.append(replace(entry, id=f"{first.id}[{key}={value_text(value)}]", sweep=(first.id, key, value)))
    return entries


def _entry(table: dict, kind: str, where: str, registry: PluginRegistry, base: Path) -> Entry:
    if "plugin" not in table:
        raise SuiteError(f"{where}.plugin: missing key, expected the name of a {kind} plugin")
    plugin = table["plugin"]
    if not isinstance(plugin, str):
        raise SuiteError(f"{where}.plugin: expected a string, got {plugin!r} ({type(plugin).__name__})")
    entry_id = table.get("id", plugin)
    if not isinstance(entry_id, str) or not _ID.match(entry_id):
        raise SuiteError(f"{where}.id: expected letters, digits, '.', '_' or '-', got {entry_id!r}")
    save = table.get("save_predictions")
    if save is not None and (kind != "strategy" or not isinstance(save, bool)):
        raise SuiteError(f"{where}.save_predictions: " + ("expected true or false" if kind == "strategy" else
                         f"a strategy's setting (or [suite]'s), not a {kind}'s"))
    try:
        registered = registry.get(kind, plugin)
    except PluginError as exc:
        raise SuiteError(f"{where}.plugin: {exc}") from None
    given = {k: v for k, v in table.items() if k not in (*ENTRY_KEYS, *LIST_TABLES)}
    schema = registered.item.params
    search = ()
    if SEARCH in table:
        if kind != "strategy":
            raise SuiteError(f"{where}.{SEARCH}: only a strategy (or the baseline) selects its parameters by a "
                             f"search; to run every value of a {kind}'s parameter, use [{PLURAL[kind]}.{SWEEP}]")
        search = read_search(table[SEARCH], schema, given, where)
    try:
        params = resolve_params(schema, given, where)
        for config in configurations(search):
            resolve_params(schema, {**given, **config}, f"{where}.{SEARCH}")
    except ParamError as exc:
        raise SuiteError(str(exc)) from None
    settings = tuple(sorted(key for key, param in schema.items() if not param.affects_results))
    implicit = tuple(sorted(key for key, param in schema.items()
                            if param.omit_default and params[key] == param.default))
    params, paths = resolve_paths(schema, params, base)
    if kind == "target":
        _check_task(registered.item.task(params), where, registry)
    return Entry(kind=kind, id=entry_id, plugin=plugin, version=registered.version, params=params,
                 settings=settings, implicit=implicit, paths=paths, search=search, save_predictions=save)


def _with_compared(strategies: tuple[Entry, ...], registry: PluginRegistry) -> tuple[Entry, ...]:
    """The strategy entries, plus an entry for each recipe a strategy is compared with
    (`Strategy.compared_with`) that the suite does not have: that plugin's defaults, with
    the knobs it shares with the first entry asking for it, so the comparison is between
    like recipes."""
    have = {entry.plugin for entry in strategies}
    added: list[Entry] = []
    for entry in strategies:
        plugin = getattr(registry.get("strategy", entry.plugin).item, "compared_with", None)
        if plugin is None or plugin in have:
            continue
        registered = registry.get("strategy", plugin)
        schema = registered.item.params
        shared = {key: value for key, value in entry.params.items() if key in schema and key not in entry.paths}
        params = resolve_params(schema, shared, f"the {plugin} entry {entry.id} is compared with")
        added.append(Entry("strategy", plugin, plugin, registered.version, params,
                           settings=tuple(sorted(k for k, p in schema.items() if not p.affects_results)),
                           implicit=tuple(sorted(k for k, p in schema.items() if p.omit_default
                                                 and params[k] == p.default))))
        have.add(plugin)
    return (*strategies, *added)


def _check_task(task: str, where: str, registry: PluginRegistry) -> None:
    try:
        registry.get("task", task)
    except PluginError as exc:
        raise SuiteError(f"{where}: its labels are a {task!r} task, which no plugin registers ({exc})") from None


def _groups(data: dict, where: str, targets: tuple[Entry, ...]) -> tuple[Group, ...]:
    """[[groups]]: each an id and either role = "<target id>" pairs (at least two roles),
    or, for multi-task learning, ``tasks = ["<target id>", ...]`` (at least two) and an
    optional ``sampling`` (`tlbench.api.SAMPLINGS`, 'shared' by default)."""
    raw = data.get("groups")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(g, dict) for g in raw):
        raise SuiteError(f"{where}: groups: expected one or more [[groups]] tables")
    target_ids = [entry.id for entry in targets]
    groups: list[Group] = []
    for i, table in enumerate(raw):
        at = f"{where}: groups[{i}]"
        group_id = table.get("id")
        if not isinstance(group_id, str) or not _ID.match(group_id):
            raise SuiteError(f"{at}.id: expected letters, digits, '.', '_' or '-', got {group_id!r}")
        if group_id in target_ids or group_id in [g.id for g in groups]:
            raise SuiteError(f"{at}.id: {group_id!r} is already the id of a target or group")
        if "tasks" in table:
            groups.append(_task_group(table, at, group_id, target_ids))
            continue
        if "sampling" in table:
            raise SuiteError(f"{at}.sampling: only a task group (tasks = [...]) takes a sampling")
        roles = {key: value for key, value in table.items() if key != "id"}
        if len(roles) < 2:
            raise SuiteError(f"{at}: expected at least two roles, each role = \"<target id>\" "
                             f"(e.g. labelled = \"photos\", unlabelled = \"drawings\"), or tasks = [...]")
        for role, target_id in roles.items():
            if not _ROLE.match(role):
                raise SuiteError(f"{at}.{role}: a role name is letters, digits, '_' or '-'")
            _known_target(f"{at}.{role}", target_id, target_ids)
        groups.append(Group(group_id, roles))
    return tuple(groups)


def _known_target(at: str, target_id, target_ids: list[str]) -> None:
    if target_id not in target_ids:
        raise SuiteError(f"{at}: no target with id {target_id!r}{closest(str(target_id), target_ids)}; "
                         f"known ids: {', '.join(target_ids)}")


def _task_group(table: dict, at: str, group_id: str, target_ids: list[str]) -> Group:
    """A multi-task group: ``tasks`` (two or more distinct target ids) and ``sampling``."""
    from ..api import SAMPLINGS

    extra = sorted(set(table) - {"id", "tasks", "sampling"})
    if extra:
        raise SuiteError(f"{at}.{extra[0]}: a task group takes id, tasks and sampling only (roles are the "
                         f"targets' ids)")
    tasks = table["tasks"]
    if not isinstance(tasks, list) or len(tasks) < 2 or len(set(map(str, tasks))) != len(tasks):
        raise SuiteError(f"{at}.tasks: expected a list of two or more distinct target ids, got {tasks!r}")
    for k, target_id in enumerate(tasks):
        _known_target(f"{at}.tasks[{k}]", target_id, target_ids)
    sampling = table.get("sampling", "shared")
    if sampling not in SAMPLINGS:
        raise SuiteError(f"{at}.sampling: expected one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    return Group(group_id, {target_id: target_id for target_id in tasks}, tasks=tuple(tasks), sampling=sampling)


def _baseline_id(registry: PluginRegistry, plugin: str) -> str:
    """How reports name a baseline recipe given as a plugin: the plugin's own name when
    it trains from scratch by itself, else 'scratch-<plugin>'."""
    try:
        random_init = getattr(registry.get("strategy", plugin).item, "init", "pretrained") == "random"
    except PluginError:
        random_init = False  # the entry's own check says the plugin is unknown
    return plugin if random_init else f"scratch-{plugin}"


def _baseline(data: dict, where: str, registry: PluginRegistry,
              strategies: tuple[Entry, ...], base: Path) -> Entry | None:
    """The from-scratch baseline recipe: [baseline] names a strategy entry or a plugin.

    Without a [baseline] table, the first strategy entry whose plugin declares
    ``baseline_recipe`` is used, else the first registered plugin that does, with its
    defaults. ``enabled = false`` turns baselines (and negative-transfer scores) off.
    """
    table = _table(data, "baseline", where)
    if table and not {"strategy", "plugin"} & set(table):
        unknown = sorted(set(table) - {"enabled"})
        if unknown:
            raise SuiteError(f"{where}: baseline.{unknown[0]}: unknown key"
                             f"{closest(unknown[0], ['enabled', 'strategy', 'plugin'])}; expected enabled, "
                             f"strategy (an entry's id) or plugin (with its parameters)")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SuiteError(f"{where}: baseline.enabled: expected true or false, got {enabled!r}")
    if not enabled:
        extra = sorted(set(table) - {"enabled"})
        if extra:
            raise SuiteError(f"{where}: baseline.{extra[0]}: baseline is disabled; remove this key")
        return None
    if "strategy" in table:
        ref = table["strategy"]
        others = sorted(set(table) - {"strategy", "enabled"})
        if others:
            raise SuiteError(f"{where}: baseline.{others[0]}: with baseline.strategy the recipe is "
                             f"that entry's; set parameters there or use baseline.plugin")
        for entry in strategies:
            if entry.id == ref:
                return replace(entry, id=f"scratch-{entry.id}")
        ids = [e.id for e in strategies]
        raise SuiteError(f"{where}: baseline.strategy: no strategy entry with id {ref!r}"
                         f"{closest(str(ref), ids)}; known ids: {', '.join(ids)}")
    if "plugin" in table:
        given = {k: v for k, v in table.items() if k != "enabled"}
        given.setdefault("id", _baseline_id(registry, str(given["plugin"])))
        return _entry(given, "strategy", f"{where}: baseline", registry, base)
    for entry in strategies:
        if getattr(registry.get("strategy", entry.plugin).item, "baseline_recipe", False):
            return replace(entry, id=f"scratch-{entry.id}")
    for reg in registry.items("strategy"):
        if getattr(reg.item, "baseline_recipe", False):
            return _entry({"plugin": reg.name, "id": f"scratch-{reg.name}"}, "strategy",
                          f"{where}: baseline", registry, base)
    raise SuiteError(f"{where}: [baseline]: no strategy plugin declares a baseline recipe; "
                     f"set baseline.plugin or baseline.enabled = false")


def _grid_size(entry: Entry) -> int:
    return len(entry.configurations())


def _equal_budget(baseline: Entry | None, strategies: tuple[Entry, ...], registry: PluginRegistry,
                  where: str) -> Entry | None:
    """When strategies are tuned, the from-scratch baseline is tuned at least as much (He
    et al. 2019: a scratch baseline on a short, untuned recipe inflates every
    negative-transfer score): without a search of its own it searches every value the
    strategies search of the parameters it has, and it must end up with at least as many
    configurations as the most searched strategy and an epoch budget at least each
    tuned strategy's largest."""
    tuned = [entry for entry in strategies if entry.search]
    if baseline is None or not tuned:
        return baseline
    schema = registry.get("strategy", baseline.plugin).item.params
    if not baseline.search:
        space: dict[str, list] = {}
        for entry in tuned:
            for key, values in entry.search:
                if key in schema and key not in baseline.settings and key not in baseline.paths:
                    space.setdefault(key, [])
                    space[key] += [value for value in values if value not in space[key]]
        baseline = replace(baseline, search=tuple((key, tuple(values)) for key, values in space.items()))
    widest = max(tuned, key=_grid_size)
    if _grid_size(baseline) < _grid_size(widest):
        raise SuiteError(f"{where}: baseline: its search has {_grid_size(baseline)} configuration(s), fewer than "
                         f"strategy {widest.id!r}'s {_grid_size(widest)}: a from-scratch baseline tuned less than "
                         f"the strategies inflates every negative-transfer score; give [baseline.search] at least "
                         f"as many")
    if "epochs" in schema:
        own = max(config["epochs"] for config in baseline.configurations())
        for entry in tuned:
            epochs = [config.get("epochs") for config in entry.configurations()]
            most = max((e for e in epochs if isinstance(e, (int, float))), default=None)
            if most is not None and own < most:
                raise SuiteError(f"{where}: baseline: trains at most {own} epochs, fewer than tuned strategy "
                                 f"{entry.id!r}'s {most}: a from-scratch baseline needs at least the budget of "
                                 f"what it is compared with; raise baseline epochs (or [baseline.search] epochs)")
    return baseline
