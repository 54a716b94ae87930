"""Parameter schemas for plugin items.

Every source, target and strategy declares its parameters as a dict of `Param`s.
A suite's values are checked against it: an unknown key, a wrong type or a value
out of range is an error naming the key path, never a silent default. The resolved
values (defaults filled in) go into a run's identity.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from .errors import ParamError

REQUIRED = object()
"""Default marking a parameter that must be given."""

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
        for key in ("min", "max"):
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

