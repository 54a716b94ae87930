"""What every check starts from: looking an item up (by name, which also proves its
entry point works, or as an instance), validating its parameters, and the fields every
item needs."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..api import Env
from ..params import Param, check_value, resolve_params
from ..plugins import Origin, PluginRegistry, Registered

HEAVY_MODULES = ("torch", "timm", "transformers", "datasets", "peft")
"""What a plugin module must not import at module level (``tlbench list`` stays light)."""

ItemRef = Any
"""A registered name, an item instance, or a (name or instance, params) pair."""


def fail(reg: Registered, message: str) -> None:
    raise AssertionError(f"{reg.item.kind} {reg.name!r} ({reg.origin}): {message}")


@functools.lru_cache(maxsize=1)
def installed_plugins() -> PluginRegistry:
    """The installed plugins, loaded once (problems are kept, not raised)."""
    return PluginRegistry.load(strict=False)


def resolve(kind: str, ref: ItemRef, params: dict | None = None,
            registry: PluginRegistry | None = None) -> tuple[Registered, dict]:
    """The registered item `ref` names, and `params` validated against its schema."""
    if isinstance(ref, tuple):
        ref, params = ref
    if isinstance(ref, str):
        reg = (registry or installed_plugins()).get(kind, ref)
    else:  # an instance: not imported through a plugin module, so no import check
        reg = Registered(ref, Origin(plugin=type(ref).__module__))
    check_item(reg)
    where = f"{kind} {reg.name!r} params"
    return reg, resolve_params(reg.item.params, dict(params or {}), where)


def check_item(reg: Registered) -> None:
    """Fields every item needs: a name, a version, one line for `tlbench list`, a schema
    whose defaults pass their own checks."""
    item = reg.item
    if not isinstance(item.version, str) or not item.version.strip():
        fail(reg, "version must be a non-empty string (bump it when results would change)")
    if not isinstance(item.description, str) or not item.description.strip() or "\n" in item.description:
        fail(reg, "description must be one non-empty line (shown by `tlbench list`)")
    for key, param in item.params.items():
        if not isinstance(param, Param):
            fail(reg, f"params[{key!r}] must be a tlbench.params.Param")
        if not param.help.strip():
            fail(reg, f"params[{key!r}] has no help text (shown by `tlbench list --json`)")
        if not param.required:
            try:
                check_value(param, param.default, f"params[{key!r}].default")
            except Exception as exc:
                fail(reg, f"its default does not pass its own schema: {exc}")
    if reg.origin.module:
        heavy = heavy_imports(reg.origin.module.split(":")[0])
        if heavy:
            fail(reg, f"importing {reg.origin.module} imports {', '.join(heavy)}; import them inside "
                      f"methods so `tlbench list` stays light")


@functools.lru_cache(maxsize=None)
def heavy_imports(module: str) -> tuple[str, ...]:
    """The heavy libraries that importing `module` in a fresh interpreter pulls in."""
    code = ("import importlib, json, sys; importlib.import_module(sys.argv[1]); "
            f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, env=env,
                         timeout=300)
    if out.returncode != 0:
        raise AssertionError(f"importing plugin module {module} failed: {out.stderr.strip()[-500:]}")
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def kit_env(registry: PluginRegistry | None, cache_dir: str | Path | None, device: str = "cpu") -> Env:
    """The `Env` checks run in: a cache directory (a fresh one unless given), no logging."""
    root = cache_dir or os.environ.get("TLBENCH_CACHE_DIR") or tempfile.mkdtemp(prefix="tlbench-testing-")
    return Env(cache_dir=Path(root), device=device, registry=registry or installed_plugins(),
               log=lambda message: None)




def module_state(module) -> dict:
    """Every parameter and buffer of `module`, copied to the CPU."""
    return {name: tensor.detach().cpu().clone() for name, tensor in module.state_dict().items()}


def state_differences(before: dict, after: dict) -> list[str]:
    """Names whose tensors differ (or exist in one state only) between two `module_state`s."""
    import torch

    changed = sorted(set(before) ^ set(after))
    changed += [name for name in sorted(set(before) & set(after))
                if before[name].shape != after[name].shape or before[name].dtype != after[name].dtype
                or not torch.equal(before[name], after[name])]
    return changed
