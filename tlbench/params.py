"""Parameter schemas for plugin items.

Every source, target and strategy declares its parameters as a dict of `Param`s.
A suite's values are checked against it: an unknown key, a wrong type or a value
out of range is an error naming the key path, never a silent default. The resolved
values (defaults filled in) go into a run's identity.

A parameter that names a local file or folder says so (`Param.path`). A suite's
relative paths then resolve against the suite file's folder, as compose and pyproject
files do, so a suite runs the same from any working directory; and the parameter stays
out of run identities, because where data or weights lie is not what they are: a
target's content hash and a source's fingerprint identify the content itself.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ParamError

REQUIRED = object()
"""Default marking a parameter that must be given."""

PATH_KINDS = ("local", "local-or-id")
"""What `Param.path` may say: 'local' (always a local path) or 'local-or-id' (a local path
when the value names one, else an identifier such as a hub id)."""

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               list: "a list", dict: "a table"}
_PLURAL_NAMES = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


@dataclass(frozen=True)
class Param:
    """One parameter: its type, default, help line and optional constraints."""

    type: type
    default: Any = REQUIRED
    help: str = ""
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    items: type | None = None
    """For lists: the type of each item."""
    nullable: bool = False
    """Whether "not given" (None) is a meaningful value; implied by a None default."""
    affects_results: bool = True
    """False for pure execution knobs (data-loader workers): they are recorded but left
    out of run identities, so changing them reruns nothing."""
    omit_default: bool = False
    """True for a parameter added after runs were recorded whose default reproduces them:
    at its default it is left out of run identities, so those runs keep their ids."""
    path: str | None = None
    """For a string naming a local file or folder: 'local' (always a path), or
    'local-or-id' (a path when it is written as one — absolute, ~, ./ or ../ — or names
    something that exists relative to the suite's folder; otherwise an identifier, such
    as a hub id, kept as written). A relative path resolves against the suite file's
    folder (or `relative_to`'s value), and a parameter holding a path is left out of run
    identities: what it points at is identified by content (the target's content hash
    and revision, the source's fingerprint)."""
    path_prefix: str | None = None
    """With `path`: only a value starting with this prefix holds a path, after it (timm's
    'local-dir:<folder>'); other values are identifiers."""
    relative_to: str | None = None
    """With `path`: the parameter whose (resolved) value a relative path is relative to,
    instead of the suite's folder (a labels file inside the data folder)."""

    def __post_init__(self):
        if self.path is not None and self.path not in PATH_KINDS:
            raise ValueError(f"Param.path: expected one of {', '.join(PATH_KINDS)}, got {self.path!r}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        """The expectation in words, for error messages and `tlbench list`."""
        words = _TYPE_NAMES.get(self.type, self.type.__name__)
        if self.type is list and self.items is not None:
            words = f"a list of {_PLURAL_NAMES.get(self.items, self.items.__name__)}"
        if self.choices:
            words = "one of " + ", ".join(repr(c) for c in self.choices)
        bounds = []
        if self.min is not None:
            bounds.append(f">= {self.min}")
        if self.max is not None:
            bounds.append(f"<= {self.max}")
        if bounds:
            words += " " + " and ".join(bounds)
        return words

    def to_json(self) -> dict:
        out = {"type": self.type.__name__, "help": self.help, "required": self.required}
        if not self.required:
            out["default"] = self.default
        if self.choices:
            out["choices"] = list(self.choices)
        for key in ("min", "max", "path", "path_prefix", "relative_to"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def _type_ok(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _got(value: Any) -> str:
    return f"got {value!r} ({type(value).__name__})"


def check_value(param: Param, value: Any, where: str) -> Any:
    """Check one value against its `Param` and return it normalised (ints to floats)."""
    if value is None and (param.nullable or param.default is None):
        return None
    if not _type_ok(value, param.type):
        raise ParamError(f"{where}: expected {param.describe()}, {_got(value)}")
    if param.type is float:
        value = float(value)
        if value != value:  # NaN passes every comparison below, so no range would stop it
            raise ParamError(f"{where}: expected {param.describe()}, got nan")
    if param.type is list and param.items is not None:
        value = [check_value(Param(param.items), item, f"{where}[{i}]") for i, item in enumerate(value)]
    if param.choices and value not in param.choices:
        raise ParamError(f"{where}: expected {param.describe()}, {_got(value)}")
    if param.min is not None and value < param.min:
        raise ParamError(f"{where}: expected {param.describe()}, {_got(value)}")
    if param.max is not None and value > param.max:
        raise ParamError(f"{where}: expected {param.describe()}, {_got(value)}")
    return value


def closest(name: str, candidates, n: int = 3) -> str:
    """' (did you mean a, b?)' for the closest candidates, or ''."""
    matches = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    return f" (did you mean {', '.join(repr(m) for m in matches)}?)" if matches else ""


def resolve_params(schema: dict[str, Param], given: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate `given` against `schema` and fill in defaults.

    `where` names the location for messages, e.g. ``suite.toml: strategies[0]``.
    """
    for key in given:
        if key not in schema:
            known = ", ".join(sorted(schema)) or "none"
            raise ParamError(f"{where}.{key}: unknown parameter{closest(key, schema)}; "
                             f"known parameters: {known}")
    resolved = {}
    for key, param in schema.items():
        if key in given:
            resolved[key] = check_value(param, given[key], f"{where}.{key}")
        elif param.required:
            raise ParamError(f"{where}.{key}: missing required parameter, expected {param.describe()}")
        else:
            resolved[key] = param.default
    return resolved


def _written_as_path(text: str) -> bool:
    """Absolute, from home, or explicitly relative: a path, never an identifier."""
    return text.startswith(("/", "~", "./", "../", ".\\", "..\\")) or text in (".", "..")


def resolve_path(param: Param, value: Any, base: Path) -> tuple[Any, bool]:
    """(value, whether it is a local path) for one value of a path parameter: a relative
    path joined to `base` (an absolute folder), ``~`` expanded, ``..`` folded away;
    identifiers (and values without `param.path_prefix`) returned as they are."""
    if param.path is None or not isinstance(value, str) or not value:
        return value, False
    prefix = param.path_prefix or ""
    if not value.startswith(prefix):
        return value, False
    text = value[len(prefix):]
    if param.path == "local-or-id" and not _written_as_path(text) and not (base / text).exists():
        return value, False
    path = Path(text).expanduser()
    return prefix + os.path.normpath(path if path.is_absolute() else base / path), True


def resolve_paths(schema: dict[str, Param], values: dict[str, Any],
                  base: Path) -> tuple[dict[str, Any], tuple[str, ...]]:
    """`values` with every path parameter resolved (see `resolve_path`), and the names of
    those that hold local paths. Parameters relative to another are resolved after it."""
    out = dict(values)
    local: list[str] = []
    ordered = sorted((key for key, param in schema.items() if param.path is not None and key in out),
                     key=lambda key: schema[key].relative_to is not None)
    for key in ordered:
        param = schema[key]
        anchor = base
        if param.relative_to is not None and isinstance(out.get(param.relative_to), str):
            anchor = Path(out[param.relative_to].removeprefix(schema[param.relative_to].path_prefix or ""))
            anchor = anchor if anchor.is_absolute() else base / anchor
        out[key], is_local = resolve_path(param, out[key], anchor)
        if is_local:
            local.append(key)
    return out, tuple(sorted(local))
