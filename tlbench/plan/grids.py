"""Lists of values in suites: a search space to select from, or a sweep to run through.

A suite gives most parameters one value. Two tables under an entry give lists, and
the table says what a list means, so that a parameter whose value is itself a list
(``classes = [5, 6]``) stays unambiguous: outside these tables a list is one value;
inside them every element of the list is one value.

``[strategies.search]`` (and ``[baseline.search]``): a search space. Its configurations
are the Cartesian product of the lists, in the order written; each is tried on the
validation split and one is chosen (the selection protocol, `tlbench.plan.search`):

    [[strategies]]
    plugin = "full-finetune"
    [strategies.search]
    lr = [1e-2, 1e-3, 1e-4]
    weight_decay = [0.0, 1e-4]    # 6 configurations

``[targets.sweep]``, ``[strategies.sweep]``, ``[sources.sweep]``: an axis. Every value
is run and reported, none is selected; the entry becomes one entry per value, with the
id ``<id>[<param>=<value>]``, and reports draw the axis (a learning curve for a data
size, the headline against the number of trainable layer groups):

    [[targets]]
    plugin = "digits"
    [targets.sweep]
    shots = [5, 10, 20, 50]

A sweep varies one parameter (use several entries for more); a parameter is given
once: as a value, in the search, or in the sweep.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from ..errors import ParamError, SuiteError
from ..params import Param, check_value, closest

SEARCH = "search"
SWEEP = "sweep"
LIST_TABLES = (SEARCH, SWEEP)
"""Keys of an entry's table that hold lists of values, not a parameter."""


def value_text(value: Any) -> str:
    """A value as an entry id shows it: 5, 0.001, true, a string as it is, lists as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _lists(table: Any, name: str, schema: dict[str, Param], given: dict, where: str) -> dict[str, list]:
    """The parameter → list-of-values table `name` of an entry, checked against `schema`."""
    at = f"{where}.{name}"
    if not isinstance(table, dict) or not table:
        raise SuiteError(f"{at}: expected a table of parameter = [values...], e.g. [{name}] lr = [1e-3, 1e-4]")
    space: dict[str, list] = {}
    for key, values in table.items():
        if key not in schema:
            raise SuiteError(f"{at}.{key}: unknown parameter{closest(key, schema)}; known: {', '.join(schema)}")
        if key in given:
            raise SuiteError(f"{at}.{key}: also given as a value ({where}.{key}); give it once")
        param = schema[key]
        if not isinstance(values, list) or not values:
            raise SuiteError(f"{at}.{key}: expected a non-empty list of values, each one value of {key} "
                             f"(a list-valued parameter takes a list of lists), got {values!r}")
        if not param.affects_results or param.path is not None:
            what = "an execution setting" if not param.affects_results else "a path"
            raise SuiteError(f"{at}.{key}: {what}, not something results depend on; give it one value")
        checked = []
        for i, value in enumerate(values):
            try:
                value = check_value(param, value, f"{at}.{key}[{i}]")
            except ParamError as exc:
                raise SuiteError(str(exc)) from None
            if value in checked:
                raise SuiteError(f"{at}.{key}[{i}]: {value!r} is given twice")
            checked.append(value)
        space[key] = checked
    return space


def read_search(table: Any, schema: dict[str, Param], given: dict, where: str) -> tuple[tuple[str, tuple], ...]:
    """An entry's search space: (parameter, values) in the order written."""
    return tuple((key, tuple(values)) for key, values in _lists(table, SEARCH, schema, given, where).items())


def read_sweep(table: Any, schema: dict[str, Param], given: dict, where: str) -> tuple[str, list]:
    """An entry's sweep: the one parameter it varies and its values."""
    space = _lists(table, SWEEP, schema, given, where)
    if len(space) != 1:
        raise SuiteError(f"{where}.{SWEEP}: a sweep varies one parameter, got {', '.join(space)}; "
                         f"write one entry per swept parameter")
    (key, values), = space.items()
    return key, values


def configurations(space: tuple[tuple[str, tuple], ...]) -> list[dict[str, Any]]:
    """Every configuration of a search space: the Cartesian product of its lists, the
    first parameter varying slowest."""
    keys = [key for key, _ in space]
    return [dict(zip(keys, values)) for values in itertools.product(*(values for _, values in space))]


def space_json(space: tuple[tuple[str, tuple], ...]) -> dict[str, list]:
    return {key: list(values) for key, values in space}


def space_from_json(data: Any) -> tuple[tuple[str, tuple], ...]:
    """A space as JSON gives it back (a dict, or pairs when it crossed a process)."""
    items = data.items() if isinstance(data, dict) else data
    return tuple((key, tuple(values)) for key, values in items)
