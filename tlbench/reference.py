"""The reference of plugin schemas: each item's parameters, and what a task reports or a
strategy or estimator needs, as a Markdown page (docs/reference.md) or as text for a
terminal (`tlbench list NAME`).

Both renderings read one description of an item (`describe`), taken from the live
registry, so the page, the terminal and the schemas cannot tell different stories; the
page is built-ins only, in a fixed order (kinds as the registry lists them, items by
name, parameters and metrics as their plugin declares them, which is the order its
author chose to explain them in). tests/test_reference.py fails when the page no longer
matches the schemas. Regenerate it with::

    python -m tlbench.reference > docs/reference.md

This module imports no heavy library: `tlbench list NAME` stays as light as `tlbench list`.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from dataclasses import dataclass
from typing import Any

from .api import Estimator, Item, Requirements, Strategy, Task
from .errors import PluginError
from .params import Param, closest
from .plugins import PLURAL, PluginRegistry, Registered

REGENERATE = "python -m tlbench.reference > docs/reference.md"
"""The command that rewrites the page; the sync test names it."""

_TYPE_WORDS = {int: "integer", float: "number", bool: "boolean", str: "string", list: "list", dict: "table"}
"""Types in the words of TOML, the language suites are written in."""

_KIND_TITLES = {"source": "Sources", "target": "Targets", "task": "Task types", "strategy": "Strategies",
                "estimator": "Estimators"}
_KIND_USE = {
    "source": "Keys of a suite's `[[sources]]` tables, next to `id` and `plugin`.",
    "target": "Keys of a suite's `[[targets]]` tables, next to `id` and `plugin`.",
    "task": ("What a target's labels are, its head and loss, and the metrics its runs report. A target "
             "names its task type; a suite sets none of these itself."),
    "strategy": ("Keys of a suite's `[[strategies]]` tables, next to `id` and `plugin` (and of its "
                 "`[baseline]` table when that names a `plugin`)."),
    "estimator": "Keys of a suite's `[[estimators]]` tables, next to `plugin`.",
}
"""Where a suite gives each kind's parameters; a kind added later gets a plain title."""


# ---------------------------------------------------------------------- description


@dataclass(frozen=True)
class ParamDoc:
    """One parameter in words: what a reader of a suite needs to write it."""

    name: str
    type: str
    default: str
    """'required', 'not set', or the default as a TOML value (then `literal`)."""
    literal: bool
    constraints: str
    identity: str
    """Whether the value is part of run identities: 'yes', or why not."""
    help: str


@dataclass(frozen=True)
class MetricDoc:
    name: str
    direction: str
    range: str
    headline: bool
    description: str


@dataclass(frozen=True)
class ItemDoc:
    """Everything the reference says about one registered item."""

    kind: str
    name: str
    version: str
    origin: str
    description: str
    params: tuple[ParamDoc, ...]
    facts: tuple[tuple[str, str], ...]
    """What the item declares beyond parameters (requirements, head, initialisation)."""
    metrics: tuple[MetricDoc, ...] = ()

    @property
    def anchor(self) -> str:
        """Unique across kinds: a target and a source may share a name."""
        return f"{self.kind}-{self.name}"


def describe(registered: Registered) -> ItemDoc:
    """The reference's view of a registered item: what both renderings show."""
    item = registered.item
    metrics = tuple(_metric_doc(m, m.name == item.headline) for m in item.metrics) if isinstance(item, Task) else ()
    return ItemDoc(kind=item.kind, name=registered.name, version=item.version, origin=str(registered.origin),
                   description=item.description, params=tuple(_param_doc(k, p) for k, p in item.params.items()),
                   facts=_facts(item), metrics=metrics)


def toml_value(value: Any) -> str:
    """A default as a suite would write it (TOML has no null: None is 'not set')."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _type_words(param: Param) -> str:
    if param.path is not None:  # a string, read as a path (`Param.path`)
        if param.path_prefix:
            return f"string ({param.path_prefix}… for a path)"
        return "path" if param.path == "local" else "path or identifier"
    words = _TYPE_WORDS.get(param.type, param.type.__name__)
    if param.type is list and param.items is not None:
        words += f" of {_TYPE_WORDS.get(param.items, param.items.__name__)}s"
    return words


def _constraints(param: Param) -> str:
    parts = []
    if param.choices:
        parts.append("one of " + ", ".join(toml_value(c) for c in param.choices))
    if param.min is not None:
        parts.append(f"≥ {param.min}")
    if param.max is not None:
        parts.append(f"≤ {param.max}")
    if param.relative_to:
        parts.append(f"relative to {param.relative_to}")
    return ", ".join(parts)


def _identity(param: Param) -> str:
    """The ways a value can enter a run's identity (see `tlbench.params.Param` and the
    suite's `Entry.identity_params`): execution knobs never do; local paths never do,
    their content being identified instead; parameters added later not at their default."""
    if not param.affects_results:
        return "no: execution only"
    content = "whose content is identified instead"
    if param.path is not None and param.path_prefix:
        return f"yes; no for {param.path_prefix}… paths, {content}"
    if param.path == "local":
        return f"no: a path, {content}"
    if param.path is not None:
        return f"yes for an identifier; no for a local path, {content}"
    if param.omit_default:
        return "yes, except at its default"
    return "yes"


def _param_doc(name: str, param: Param) -> ParamDoc:
    default = "required" if param.required else toml_value(param.default)
    literal = not param.required and param.default is not None
    return ParamDoc(name=name, type=_type_words(param), default=default, literal=literal,
                    constraints=_constraints(param),
                    identity=_identity(param), help=" ".join(param.help.split()))


def _bound(value: float | None, infinity: str) -> str:
    return infinity if value is None else f"{value:g}"


def _metric_doc(metric, headline: bool) -> MetricDoc:
    low, high = _bound(metric.low, "−∞"), _bound(metric.high, "∞")
    return MetricDoc(name=metric.name, direction="higher is better" if metric.higher_is_better else "lower is better",
                     range=f"{'(' if metric.low is None else '['}{low}, {high}{')' if metric.high is None else ']'}",
                     headline=headline, description=" ".join(metric.description.split()))


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _facts(item: Item) -> tuple[tuple[str, str], ...]:
    facts: list[tuple[str, str]] = []
    if isinstance(item, Task):
        facts += [("headline metric", item.headline), ("head reads", item.representation + (", one per word (`words`)" if item.words else "")),
                  ("closed-form linear head (`linear_loss`)", item.linear_loss or "none")]
    if isinstance(item, (Strategy, Estimator)):
        facts += _requirement_facts(item.requires)
    if isinstance(item, Strategy):
        facts += [("initialisation", item.init), ("frozen features only", _yes_no(item.frozen_features_only)),
                  ("a suite's default baseline recipe", _yes_no(item.baseline_recipe))]
    return tuple(facts)


def _requirement_facts(requires: Requirements) -> list[tuple[str, str]]:
    """`requires` in words: what the planner checks before it plans a combination."""
    roles = ", ".join(f"{role.name} ({'labelled' if role.labelled else 'unlabelled'}, "
                      f"{'scored' if role.scored else 'not scored'})" for role in requires.roles)
    if requires.multitask:
        roles = f"a task group's members, each labelled and scored (samplings: {', '.join(requires.samplings)})"
    return [("task types", ", ".join(requires.tasks) if requires.tasks is not None else "any"),
            ("modalities", ", ".join(requires.modalities) if requires.modalities is not None else "any"),
            ("targets by role", roles),
            ("needs a task with a closed-form linear head", _yes_no(requires.linear_head)),
            ("needs the source's own classifier", _yes_no(requires.source_head))]


# ---------------------------------------------------------------------- lookup


def kind_title(kind: str) -> str:
    return _KIND_TITLES.get(kind, PLURAL.get(kind, kind).capitalize())


def builtin_docs(registry: PluginRegistry) -> dict[str, list[ItemDoc]]:
    """Every built-in item described, by kind (the registry's order) and name."""
    return {kind: [describe(reg) for reg in registry.items(kind) if reg.origin.builtin] for kind in PLURAL}


def find(registry: PluginRegistry, name: str, kinds: tuple[str, ...] = tuple(PLURAL)) -> list[Registered]:
    """The items named `name` among `kinds` (one per kind at most: names are unique
    within a kind); an unknown name is a `PluginError` naming the closest ones."""
    found = [reg for kind in kinds for reg in registry.items(kind) if reg.name == name]
    if found:
        return found
    known = sorted({known for kind in kinds for known in registry.names(kind)})
    elsewhere = [PLURAL[kind] for kind in PLURAL if kind not in kinds and name in registry.names(kind)]
    hint = (f"; there is one among the {_either(elsewhere, 'and')}" if elsewhere
            else closest(name, known) or "; `tlbench list` shows them all")
    raise PluginError(f"no {_either(list(kinds), 'or')} named {name!r}{hint}")


def _either(words: list[str], conjunction: str) -> str:
    """'a, b or c'."""
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}" if len(words) > 1 else words[0]


def item_json(registry: PluginRegistry, registered: Registered) -> dict:
    """One item as `tlbench list --json` shows it, with its kind."""
    entries = registry.to_json()[PLURAL[registered.item.kind]]
    [entry] = [entry for entry in entries if entry["name"] == registered.name]
    return {"kind": registered.item.kind, **entry}


# ---------------------------------------------------------------------- Markdown


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
                      *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)])


def _code(text: str) -> str:
    return f"`{text}`"


def item_markdown(doc: ItemDoc) -> str:
    """One item's section: its heading, a table of parameters, a table of metrics (task
    types) and what it declares."""
    blocks = [f'<a id="{doc.anchor}"></a>\n\n### `{doc.name}`',
              f"{doc.kind}, version {doc.version}: {_cell(doc.description)}"]
    if doc.params:
        blocks.append(_table(["parameter", "type", "default", "constraints", "run identity", "help"],
                             [[_code(p.name), p.type, _code(p.default) if p.literal else p.default,
                               p.constraints, p.identity, p.help] for p in doc.params]))
    else:
        blocks.append("No parameters.")
    if doc.metrics:
        blocks.append(_table(["metric", "direction", "range", "headline", "description"],
                             [[_code(m.name), m.direction, m.range, _yes_no(m.headline), m.description]
                              for m in doc.metrics]))
    if doc.facts:
        blocks.append("\n".join(f"- {label}: {_cell(value)}" for label, value in doc.facts))
    return "\n\n".join(blocks)


INTRO = f"""\
<!-- Generated from the plugin schemas by `{REGENERATE}`; do not edit by hand. -->

# Built-in plugins: parameters and contracts

Every source, target, task type, strategy and estimator that comes with tlbench, with
its version (part of every run's identity), its parameters, the metrics of each task
type and what each strategy and estimator requires of a source and a target. The
same for one item, third-party ones included: `tlbench list NAME` (`--json` for its
schema as JSON). Writing your own: [plugins.md](plugins.md).

Parameters: **type** in TOML's words (a *path* relative to the suite file's folder
unless said otherwise); **default** as a suite would write it (*required*: no default;
*not set*: absent unless given); **constraints** are checked before anything runs;
**run identity** says whether the value is part of each run's identity, so that
changing it reruns: *no: execution only* is recorded but reruns nothing; a path is left
out because the content it points at is identified instead (moving the data reruns
nothing); *yes, except at its default* leaves the records made before the parameter
existed their ids.
"""


def reference_markdown(registry: PluginRegistry) -> str:
    """docs/reference.md: the built-in items of `registry`, deterministic."""
    docs = {kind: items for kind, items in builtin_docs(registry).items() if items}
    contents = "\n".join(f"- {kind_title(kind)}: " + ", ".join(f"[`{doc.name}`](#{doc.anchor})" for doc in items)
                         for kind, items in docs.items())
    blocks = [INTRO.rstrip("\n"), contents]
    for kind, items in docs.items():
        blocks += [f"## {kind_title(kind)}", _KIND_USE.get(kind, ""), *map(item_markdown, items)]
    return "\n\n".join(block for block in blocks if block) + "\n"


# ---------------------------------------------------------------------- terminal


def _wrapped(text: str, indent: int, width: int) -> list[str]:
    return textwrap.wrap(text, width=max(width, indent + 40), initial_indent=" " * indent,
                         subsequent_indent=" " * indent, break_on_hyphens=False) if text else []


def _param_text(param: ParamDoc, name_width: int, width: int) -> list[str]:
    default = f"default {param.default}" if param.literal else (
        param.default if param.default == "required" else f"{param.default} by default")
    summary = " · ".join(part for part in (param.type, default, param.constraints) if part)
    if param.identity != "yes":
        summary += f" · run identity: {param.identity}"
    first, *rest = _wrapped(summary, 4 + name_width + 2, width) or [""]
    return [f"    {param.name:<{name_width}}  {first.lstrip()}", *rest, *_wrapped(param.help, 8, width)]


def item_text(doc: ItemDoc, width: int | None = None) -> str:
    """One item for a terminal: the reference page's section, in plain text."""
    width = width or min(shutil.get_terminal_size((100, 24)).columns, 100)
    lines = [f"{doc.kind} {doc.name}  v{doc.version}  [{doc.origin}]", *_wrapped(doc.description, 2, width), ""]
    if doc.params:
        name_width = max(len(p.name) for p in doc.params)
        lines.append(f"  parameters ({len(doc.params)}):")
        for param in doc.params:
            lines += _param_text(param, name_width, width)
    else:
        lines.append("  parameters: none")
    if doc.metrics:
        lines += ["", "  metrics:"]
        name_width = max(len(m.name) for m in doc.metrics)
        for metric in doc.metrics:
            headline = " · headline" if metric.headline else ""
            lines += [f"    {metric.name:<{name_width}}  {metric.direction} · range {metric.range}{headline}",
                      *_wrapped(metric.description, 8, width)]
    if doc.facts:
        label_width = max(len(label) for label, _ in doc.facts)
        lines += ["", *(f"  {label:<{label_width}}  {value}" for label, value in doc.facts)]
    return "\n".join(lines)


def main() -> int:
    """Print docs/reference.md (see the module docstring for the command)."""
    sys.stdout.write(reference_markdown(PluginRegistry.load()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
