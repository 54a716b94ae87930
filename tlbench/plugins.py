"""Plugin discovery and the registry of sources, targets and strategies.

Built-in plugins and third-party ones are found the same way: the ``tlbench``
entry-point group (plus modules named by a suite or ``TLBENCH_PLUGINS``). Core code
asks the `PluginRegistry` for items and never calls ``pm.hook`` itself.

A plugin that fails to import, implements a misspelled hook, raises while registering
or registers a name that is taken is reported by name and distribution and skipped;
the rest of tlbench works. ``TLBENCH_STRICT_PLUGINS=1`` turns each of these into an
error, and ``TLBENCH_DISABLE_PLUGINS=a,b`` keeps plugins (entry-point names, module
names or distribution names) from loading at all.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Callable

import pluggy

from . import PROJECT, hookspecs
from .api import ITEM_KINDS, REPRESENTATIONS, Item, MetricSpec, Task
from .errors import PluginError
from .params import Param, closest

HOOK_KINDS = {
    "tlbench_register_sources": "source",
    "tlbench_register_targets": "target",
    "tlbench_register_tasks": "task",
    "tlbench_register_strategies": "strategy",
    "tlbench_register_estimators": "estimator",
}
"""Registration hook -> kind of item it registers. Extended as kinds are added."""

PLURAL = {"source": "sources", "target": "targets", "task": "tasks", "strategy": "strategies",
          "estimator": "estimators"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_IMPL_MARKER = f"{PROJECT}_impl"
_SPEC_MARKER = f"{PROJECT}_spec"
_HOOK_PREFIX = f"{PROJECT}_"
_NEAR_MISS = 0.85
"""How close an unprefixed name must be to a hook's name to be taken for a misspelling."""


def hook_specs() -> dict[str, inspect.Signature]:
    """Every hook tlbench defines (in `tlbench.hookspecs`) and its signature."""
    return {name: inspect.signature(function) for name, function in vars(hookspecs).items()
            if callable(function) and hasattr(function, _SPEC_MARKER)}


@dataclass(frozen=True)
class Origin:
    """Where a plugin came from: an entry point of a distribution, or a module."""

    plugin: str
    distribution: str | None = None
    dist_version: str | None = None
    builtin: bool = False
    module: str | None = None
    """What is imported: an entry point's value ('pkg.mod' or 'pkg.mod:attr'), or a module name."""

    def __str__(self) -> str:
        if self.builtin:
            return "built-in"
        if self.distribution:
            return f"{self.distribution} {self.dist_version}"
        return f"module {self.plugin}"

    def describe(self) -> str:
        """'plugin x (dist 1.0)' for messages."""
        return f"plugin {self.plugin!r} ({self})"

    def to_json(self) -> dict:
        return {"plugin": self.plugin, "distribution": self.distribution,
                "version": self.dist_version, "builtin": self.builtin, "module": self.module}


@dataclass(frozen=True)
class Registered:
    """An item and the plugin that registered it."""

    item: Item
    origin: Origin

    @property
    def name(self) -> str:
        return self.item.name

    @property
    def version(self) -> str:
        """The version runs record: a third-party item's names its distribution release
        too, so upgrading the plugin package gives its runs new identities (reruns)."""
        if self.origin.builtin or not self.origin.distribution:
            return self.item.version
        return f"{self.item.version} ({self.origin.distribution} {self.origin.dist_version})"


@dataclass
class PluginProblem:
    origin: Origin | None
    message: str

    def __str__(self) -> str:
        return f"{self.origin.describe()}: {self.message}" if self.origin else self.message


def _env_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def strict_from_env() -> bool:
    return os.environ.get("TLBENCH_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class PluginRegistry:
    """Every registered item by kind and name, and the problems met while loading."""

    strict: bool = False
    disabled: frozenset[str] = frozenset()
    problems: list[PluginProblem] = field(default_factory=list)
    plugins: list[Origin] = field(default_factory=list)
    _items: dict[str, dict[str, Registered]] = field(
        default_factory=lambda: {kind: {} for kind in ITEM_KINDS})
    _known_names: set[str] = field(default_factory=set)
    """Every plugin and distribution name seen, disabled or not (to catch typos)."""

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, modules: tuple[str, ...] | list[str] = (), *, use_entry_points: bool = True,
             strict: bool | None = None) -> "PluginRegistry":
        """Load entry-point plugins (built-ins first), then `modules` and ``TLBENCH_PLUGINS``."""
        registry = cls(strict=strict_from_env() if strict is None else strict,
                       disabled=frozenset(_env_list("TLBENCH_DISABLE_PLUGINS")))
        candidates = registry._entry_points() if use_entry_points else []
        for name in dict.fromkeys([*modules, *_env_list("TLBENCH_PLUGINS")]):
            registry._known_names.add(name)
            if not registry._is_disabled(Origin(plugin=name)):
                candidates.append((Origin(plugin=name, module=name),
                                   lambda name=name: importlib.import_module(name)))
        manager = pluggy.PluginManager(PROJECT)
        manager.add_hookspecs(hookspecs)
        specs = hook_specs()
        registered: list[object] = []
        for origin, load in candidates:
            plugin = registry._import(origin, load)
            if plugin is None or any(plugin is other for other in registered):
                continue  # a module named again (by a suite and an entry point) loads once
            if origin.distribution is None:
                origin = _module_origin(origin.plugin, plugin)
            if not registry._hooks_valid(plugin, origin, specs):
                continue
            try:
                manager.register(plugin, name=origin.plugin)
            except Exception as exc:  # pluggy's own validation, a name pluggy already holds
                registry._problem(origin, f"cannot be registered: {_one_line(exc)}")
                continue
            registered.append(plugin)
            registry.plugins.append(origin)
        registry._check_disabled_names()
        registry._collect(manager)
        return registry

    def _entry_points(self) -> list[tuple[Origin, Callable[[], object]]]:
        """Entry points of the ``tlbench`` group: built-ins first, then by distribution."""
        found = []
        for ep in entry_points(group=PROJECT):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            origin = Origin(plugin=ep.name, distribution=dist_name,
                            dist_version=dist.version if dist is not None else None,
                            builtin=_normalise(dist_name or "") == PROJECT, module=ep.value)
            self._known_names.update(name for name in (ep.name, dist_name) if name)
            if self._is_disabled(origin):
                continue
            found.append((origin, ep.load))
        # stable: a distribution seen twice on sys.path keeps the first (the one Python imports)
        found.sort(key=lambda pair: (not pair[0].builtin, _normalise(pair[0].distribution or ""),
                                     pair[0].plugin))
        unique: dict[str, Origin] = {}
        out = []
        for origin, load in found:
            first = unique.get(origin.plugin)
            if first is None:
                unique[origin.plugin] = origin
                out.append((origin, load))
            elif _normalise(first.distribution or "") != _normalise(origin.distribution or ""):
                self._problem(origin, f"plugin name {origin.plugin!r} is already used by "
                                      f"{first.describe()}")
        return out

    def _is_disabled(self, origin: Origin) -> bool:
        names = {_normalise(name) for name in self.disabled}
        return _normalise(origin.plugin) in names or (
            origin.distribution is not None and _normalise(origin.distribution) in names)

    def _check_disabled_names(self) -> None:
        """A name in TLBENCH_DISABLE_PLUGINS that matches nothing is most likely a typo."""
        known = {_normalise(name) for name in self._known_names}
        for name in sorted(self.disabled):
            if _normalise(name) not in known:
                self.problems.append(PluginProblem(None, f"TLBENCH_DISABLE_PLUGINS: no plugin or "
                                                         f"distribution is named {name!r}"
                                                         f"{closest(name, sorted(self._known_names))}"))

    def _problem(self, origin: Origin, message: str, skipped: str = "skipped") -> None:
        """Report a broken plugin: a warning, or with TLBENCH_STRICT_PLUGINS an error."""
        if self.strict:
            raise PluginError(f"{PluginProblem(origin, message)} (TLBENCH_STRICT_PLUGINS is set; "
                              f"TLBENCH_DISABLE_PLUGINS={origin.plugin} would skip this plugin)")
        self.problems.append(PluginProblem(origin, f"{message}; {skipped}"))

    def _import(self, origin: Origin, load: Callable[[], object]) -> object | None:
        try:
            return load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin (even one calling sys.exit) must not break tlbench
            self._problem(origin, f"failed to import: {_one_line(exc)}")
            return None

    def _hooks_valid(self, plugin: object, origin: Origin, specs: dict[str, inspect.Signature]) -> bool:
        """Refuse a plugin whose hooks tlbench would silently never call: a misspelled hook
        name, a hook without the ``@tlbench.hookimpl`` marker, or unknown arguments."""
        for attr in dir(plugin):
            if attr.startswith("_"):
                continue
            try:
                value = getattr(plugin, attr)
            except Exception:
                continue
            if not callable(value) or inspect.isclass(value):
                continue
            options = getattr(value, _IMPL_MARKER, None)
            hook = (options or {}).get("specname") or attr
            if hook in specs:
                message = _hook_signature_problem(hook, value, specs[hook], marked=options is not None)
            elif options is not None or attr.startswith(_HOOK_PREFIX) or difflib.get_close_matches(
                    attr, list(specs), n=1, cutoff=_NEAR_MISS):
                message = f"implements unknown hook {hook!r}{closest(hook, specs, n=1)}"
            else:
                continue
            if message:
                self._problem(origin, message)
                return False
        return True

    def _collect(self, manager: pluggy.PluginManager) -> None:
        order = {origin.plugin: i for i, origin in enumerate(self.plugins)}
        origins = {origin.plugin: origin for origin in self.plugins}
        for hook_name, kind in HOOK_KINDS.items():
            impls = getattr(manager.hook, hook_name).get_hookimpls()
            for impl in sorted(impls, key=lambda impl: order.get(impl.plugin_name, 0)):
                self._register_from(impl, hook_name, kind, origins[impl.plugin_name])

    def _register_from(self, impl, hook_name: str, kind: str, origin: Origin) -> None:
        """Call one plugin's hook and commit its items only if all of them are valid."""
        pending: list[Item] = []

        def register(item: Item) -> None:
            self._validate(item, kind)
            pending.append(item)

        arguments = {"register": register}
        try:
            impl.function(**{name: arguments[name] for name in impl.argnames if name in arguments})
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            self._problem(origin, f"{hook_name} failed: {_one_line(exc)}",
                          skipped=f"its {PLURAL[kind]} are skipped")
            return
        for item in pending:
            taken = self._items[kind].get(item.name)
            if taken is not None:
                self._problem(origin, f"{kind} name {item.name!r} is already registered by "
                                      f"{taken.origin.describe()}", skipped=f"this {kind} is skipped")
                continue
            self._items[kind][item.name] = Registered(item, origin)

    def add(self, item: Item, origin: Origin) -> Registered:
        """Register one item directly, with the same checks as a hook (tests, notebooks)."""
        self._validate(item, item.kind)
        taken = self._items[item.kind].get(item.name)
        if taken is not None:
            raise PluginError(f"{item.kind} name {item.name!r} is already registered by "
                              f"{taken.origin.describe()}")
        self._items[item.kind][item.name] = registered = Registered(item, origin)
        return registered

    @staticmethod
    def _validate(item: object, kind: str) -> None:
        base = ITEM_KINDS[kind]
        if not isinstance(item, base):
            raise TypeError(f"registered {item!r}, expected an instance of tlbench.api.{base.__name__}")
        if not isinstance(item.name, str) or not _NAME.match(item.name):
            raise ValueError(f"{kind} name {item.name!r} must be letters, digits, '.', '_' or '-'")
        if not isinstance(item.version, str) or not item.version:
            raise ValueError(f"{kind} {item.name!r}: version must be a non-empty string")
        if not isinstance(item.params, dict) or not all(
                isinstance(k, str) and isinstance(v, Param) for k, v in item.params.items()):
            raise ValueError(f"{kind} {item.name!r}: params must map names to tlbench.params.Param")
        if isinstance(item, Task):
            _validate_task(item)

    # ------------------------------------------------------------------ lookup

    def items(self, kind: str) -> list[Registered]:
        return sorted(self._items[kind].values(), key=lambda reg: reg.name)

    def names(self, kind: str) -> list[str]:
        return sorted(self._items[kind])

    def get(self, kind: str, name: str) -> Registered:
        """The item registered as `name`; an unknown name suggests the closest ones."""
        try:
            return self._items[kind][name]
        except KeyError:
            known = self.names(kind)
            hint = closest(name, known) or (f"; known: {', '.join(known)}" if known else "")
            if self.disabled:
                hint += f"; TLBENCH_DISABLE_PLUGINS blocks {', '.join(sorted(self.disabled))}"
            if self.problems:
                hint += f"; {len(self.problems)} plugin problem(s) were reported while loading"
            raise PluginError(f"unknown {kind} plugin {name!r}{hint}") from None

    def to_json(self) -> dict:
        """Everything `tlbench list --json` prints."""
        out: dict = {}
        for kind in ITEM_KINDS:
            out[PLURAL[kind]] = [
                {"name": reg.name, "version": reg.item.version, "run_version": reg.version,
                 "description": reg.item.description, "origin": str(reg.origin),
                 "plugin": reg.origin.to_json(),
                 "params": {key: p.to_json() for key, p in reg.item.params.items()},
                 **_contract_json(reg.item)}
                for reg in self.items(kind)]
        out["plugins"] = [origin.to_json() for origin in self.plugins]
        out["problems"] = [{"plugin": p.origin.to_json() if p.origin else None, "message": p.message}
                           for p in self.problems]
        return out


def _contract_json(item: Item) -> dict:
    """What a task or a recipe declares beyond its parameters, for `tlbench list --json`."""
    if isinstance(item, Task):
        return {"metrics": [metric.to_json() for metric in item.metrics], "headline": item.headline,
                "representation": item.representation, "linear_loss": item.linear_loss}
    requires = getattr(item, "requires", None)
    if requires is None:
        return {}
    return {"requires": {"tasks": list(requires.tasks) if requires.tasks is not None else None,
                         "linear_head": requires.linear_head,
                         "modalities": list(requires.modalities) if requires.modalities is not None else None,
                         "roles": [{"name": r.name, "labelled": r.labelled, "scored": r.scored}
                                   for r in requires.roles],
                         "source_head": requires.source_head}}


_METRIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_LINEAR_LOSSES = (None, "softmax", "sigmoid", "squared")


def _validate_task(task: Task) -> None:
    """A task's metrics are described, named as columns can be, and include its headline."""
    where = f"task {task.name!r}"
    metrics = task.metrics
    if not isinstance(metrics, tuple) or not metrics or not all(isinstance(m, MetricSpec) for m in metrics):
        raise ValueError(f"{where}: metrics must be a non-empty tuple of tlbench.api.MetricSpec")
    names = [metric.name for metric in metrics]
    bad = [name for name in names if not isinstance(name, str) or not _METRIC_NAME.match(name)]
    if bad:
        raise ValueError(f"{where}: metric name {bad[0]!r} must be letters, digits and '_', starting with a letter")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: metric names must be distinct, got {names}")
    if task.headline not in names:
        raise ValueError(f"{where}: headline {task.headline!r} is not one of its metrics ({', '.join(names)})")
    if task.representation not in REPRESENTATIONS:
        raise ValueError(f"{where}: representation must be one of {', '.join(REPRESENTATIONS)}, "
                         f"got {task.representation!r}")
    if task.linear_loss not in _LINEAR_LOSSES:
        raise ValueError(f"{where}: linear_loss must be None, 'softmax', 'sigmoid' or 'squared', "
                         f"got {task.linear_loss!r}")


def _hook_signature_problem(hook: str, function, spec: inspect.Signature, marked: bool) -> str | None:
    expected = f"{hook}({', '.join(spec.parameters)})"
    if not marked:
        return f"defines {hook} without the @tlbench.hookimpl marker, so tlbench would never call it"
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return None
    unknown = [name for name in parameters if name not in spec.parameters]
    if unknown:
        return f"{hook} takes unknown argument(s) {', '.join(map(repr, unknown))}; the hook is {expected}"
    return None


def _module_origin(name: str, module: object) -> Origin:
    """The distribution that installed a module named by a suite or TLBENCH_PLUGINS, if any."""
    from importlib.metadata import packages_distributions, version

    top = getattr(module, "__name__", name).split(".")[0]
    dists = packages_distributions().get(top) or []
    if not dists:
        return Origin(plugin=name, module=name)
    dist = dists[0]
    try:
        dist_version = version(dist)
    except Exception:
        dist_version = None
    return Origin(plugin=name, distribution=dist, dist_version=dist_version,
                  builtin=_normalise(dist) == PROJECT, module=name)
