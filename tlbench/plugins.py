"""Plugin discovery and the registry of sources, targets and strategies.

Built-in plugins and third-party ones are found the same way: the ``tlbench``
entry-point group (plus modules named by a suite or ``TLBENCH_PLUGINS``). Core code
asks the `PluginRegistry` for items and never calls ``pm.hook`` itself.

A plugin that fails to import, implements a misspelled hook, raises while registering
or registers a name that is taken is reported by name and distribution and skipped;
``TLBENCH_STRICT_PLUGINS=1`` turns each of these into an error, and
``TLBENCH_DISABLE_PLUGINS=a,b`` keeps plugins from loading at all.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType

import pluggy

from . import PROJECT, hookspecs
from .api import ITEM_KINDS, Item
from .errors import PluginError
from .params import Param, closest

HOOK_KINDS = {
    "tlbench_register_sources": "source",
    "tlbench_register_targets": "target",
    "tlbench_register_strategies": "strategy",
}
"""Registration hook -> kind of item it registers. Extended as kinds are added."""

PLURAL = {"source": "sources", "target": "targets", "strategy": "strategies"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MARKER = f"{PROJECT}_impl"


@dataclass(frozen=True)
class Origin:
    """Where a plugin came from: an entry point of a distribution, or a module."""

    plugin: str
    distribution: str | None = None
    dist_version: str | None = None
    builtin: bool = False

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
                "version": self.dist_version, "builtin": self.builtin}


@dataclass(frozen=True)
class Registered:
    """An item and the plugin that registered it."""

    item: Item
    origin: Origin

    @property
    def name(self) -> str:
        return self.item.name


@dataclass
class PluginProblem:
    origin: Origin
    message: str

    def __str__(self) -> str:
        return f"{self.origin.describe()}: {self.message}"


def _env_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def strict_from_env() -> bool:
    return os.environ.get("TLBENCH_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes")


@dataclass
class PluginRegistry:
    """Every registered item by kind and name, and the problems met while loading."""

    strict: bool = False
    disabled: frozenset[str] = frozenset()
    problems: list[PluginProblem] = field(default_factory=list)
    plugins: list[Origin] = field(default_factory=list)
    _items: dict[str, dict[str, Registered]] = field(
        default_factory=lambda: {kind: {} for kind in ITEM_KINDS})

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, modules: tuple[str, ...] | list[str] = (), *, use_entry_points: bool = True,
             strict: bool | None = None) -> "PluginRegistry":
        """Load entry-point plugins (built-ins first), then `modules` and ``TLBENCH_PLUGINS``."""
        registry = cls(strict=strict_from_env() if strict is None else strict,
                       disabled=frozenset(_env_list("TLBENCH_DISABLE_PLUGINS")))
        manager = pluggy.PluginManager(PROJECT)
        manager.add_hookspecs(hookspecs)
        loaded: list[tuple[object, Origin]] = []
        if use_entry_points:
            for ep, origin in registry._entry_points():
                module = registry._import(origin, ep.load)
                if module is not None:
                    loaded.append((module, origin))
        for name in [*modules, *_env_list("TLBENCH_PLUGINS")]:
            origin = Origin(plugin=name)
            if name in registry.disabled or any(o.plugin == name for _, o in loaded):
                continue
            module = registry._import(origin, lambda name=name: importlib.import_module(name))
            if module is not None:
                loaded.append((module, origin))
        for module, origin in loaded:
            if registry._hooks_valid(module, origin):
                manager.register(module, name=origin.plugin)
                registry.plugins.append(origin)
        registry._collect(manager)
        return registry

    def _entry_points(self):
        found = []
        for ep in entry_points(group=PROJECT):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            origin = Origin(plugin=ep.name, distribution=dist_name,
                            dist_version=dist.version if dist is not None else None,
                            builtin=_normalise(dist_name or "") == PROJECT)
            if ep.name in self.disabled or (dist_name and dist_name in self.disabled):
                continue
            if any(o.plugin == ep.name for _, o in found):
                continue  # the same distribution seen twice on sys.path
            found.append((ep, origin))
        found.sort(key=lambda pair: not pair[1].builtin)  # built-ins claim their names first
        return found

    def _problem(self, origin: Origin, message: str) -> None:
        problem = PluginProblem(origin, message)
        if self.strict:
            raise PluginError(f"{problem} (TLBENCH_STRICT_PLUGINS is set)")
        self.problems.append(problem)

    def _import(self, origin: Origin, load) -> ModuleType | None:
        try:
            return load()
        except Exception as exc:  # a broken plugin must not break tlbench
            self._problem(origin, f"failed to import: {type(exc).__name__}: {exc}; skipped")
            return None

    def _hooks_valid(self, module: object, origin: Origin) -> bool:
        """Refuse a plugin that implements a hook tlbench does not have (a misspelling)."""
        for attr, value in inspect.getmembers(module, callable):
            if attr in HOOK_KINDS:
                continue
            if hasattr(value, _MARKER) or attr.startswith(f"{PROJECT}_register"):
                self._problem(origin, f"implements unknown hook {attr!r}"
                                      f"{closest(attr, HOOK_KINDS)}; skipped")
                return False
        return True

    def _collect(self, manager: pluggy.PluginManager) -> None:
        order = {origin.plugin: i for i, origin in enumerate(self.plugins)}
        origins = {origin.plugin: origin for origin in self.plugins}
        for hook_name, kind in HOOK_KINDS.items():
            impls = getattr(manager.hook, hook_name).get_hookimpls()
            for impl in sorted(impls, key=lambda impl: order.get(impl.plugin_name, 0)):
                self._register_from(impl, kind, origins[impl.plugin_name])

    def _register_from(self, impl, kind: str, origin: Origin) -> None:
        """Call one plugin's hook and commit its items only if all of them are valid."""
        pending: list[Item] = []
        try:
            impl.function(register=pending.append)
            for item in pending:
                self._validate(item, kind)
        except Exception as exc:
            self._problem(origin, f"{impl.function.__name__} failed: {type(exc).__name__}: {exc}; "
                                  f"its {PLURAL[kind]} are skipped")
            return
        for item in pending:
            taken = self._items[kind].get(item.name)
            if taken is not None:
                self._problem(origin, f"{kind} name {item.name!r} is already registered by "
                                      f"{taken.origin.describe()}; this one is skipped")
                continue
            self._items[kind][item.name] = Registered(item, origin)

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
            raise PluginError(f"unknown {kind} plugin {name!r}{hint}") from None

    def to_json(self) -> dict:
        """Everything `tlbench list --json` prints."""
        out: dict = {}
        for kind in ITEM_KINDS:
            out[PLURAL[kind]] = [
                {"name": reg.name, "version": reg.item.version,
                 "description": reg.item.description, "origin": str(reg.origin),
                 "plugin": reg.origin.to_json(),
                 "params": {key: p.to_json() for key, p in reg.item.params.items()}}
                for reg in self.items(kind)]
        out["problems"] = [{"plugin": p.origin.to_json(), "message": p.message} for p in self.problems]
        return out


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()

