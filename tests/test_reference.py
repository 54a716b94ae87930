"""docs/reference.md is the built-in plugins' schemas, regenerated from the code, and
`tlbench list NAME` shows one item's schema: as text, as JSON, for every kind that has
an item of that name, and an unknown name in one line with the closest ones."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

from tlbench.api import Requirements, Role, Strategy
from tlbench.cli import main
from tlbench.params import Param
from tlbench.plugins import PLURAL, Origin, PluginRegistry
from tlbench.reference import (
    REGENERATE,
    describe,
    item_markdown,
    item_text,
    reference_markdown,
)

PAGE = REPO / "docs" / "reference.md"


@pytest.fixture
def plain_env(monkeypatch):
    """The registry as a user's shell without plugin switches loads it."""
    for name in ("TLBENCH_DISABLE_PLUGINS", "TLBENCH_PLUGINS", "TLBENCH_STRICT_PLUGINS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def builtin_registry(plain_env) -> PluginRegistry:
    return PluginRegistry.load()


def test_the_reference_page_matches_the_schemas(builtin_registry):
    expected = reference_markdown(builtin_registry)
    assert PAGE.read_text(encoding="utf-8") == expected, (
        f"{PAGE.relative_to(REPO)} is out of date with the plugin schemas; regenerate it with: {REGENERATE}")


def section(page: str, kind: str, name: str) -> str:
    """The text of one item's section of the page."""
    start = page.index(f'<a id="{kind}-{name}"></a>')
    following = [page.find(mark, start + 1) for mark in ('<a id="', "\n## ")]
    return page[start:min([i for i in following if i > 0], default=len(page))]


def test_every_builtin_item_parameter_and_metric_is_on_the_page(builtin_registry):
    """Read against the registry, not the generator: nothing built-in is left out."""
    page = reference_markdown(builtin_registry)
    for kind in PLURAL:
        builtins = [reg for reg in builtin_registry.items(kind) if reg.origin.builtin]
        assert builtins, f"no built-in {kind}"
        for reg in builtins:
            text = section(page, kind, reg.name)
            assert f"### `{reg.name}`" in text and f"version {reg.version}" in text
            for param in reg.item.params:
                assert f"| `{param}` |" in text, f"{kind} {reg.name}: parameter {param} missing"
            for metric in getattr(reg.item, "metrics", ()):
                assert f"| `{metric.name}` |" in text, f"{kind} {reg.name}: metric {metric.name} missing"
            if hasattr(reg.item, "requires"):
                assert "- task types: " in text


def test_third_party_items_stay_off_the_page(builtin_registry):
    third_party = [reg for kind in PLURAL for reg in builtin_registry.items(kind) if not reg.origin.builtin]
    assert third_party, "the example plugin is installed in tests (pip install -e plugins/example)"
    page = reference_markdown(builtin_registry)
    for reg in third_party:
        assert f'<a id="{reg.item.kind}-{reg.name}">' not in page


def test_the_page_does_not_depend_on_registration_order(builtin_registry):
    items = [reg for kind in PLURAL for reg in builtin_registry.items(kind) if reg.origin.builtin]
    reversed_registry = PluginRegistry()
    for reg in reversed(items):
        reversed_registry.add(reg.item, reg.origin)
    assert reference_markdown(reversed_registry) == reference_markdown(builtin_registry)


class Knobs(Strategy):
    name = "knobs"
    version = "3"
    description = "a strategy with every sort of parameter"
    requires = Requirements(tasks=None, roles=(Role("labelled", scored=False), Role("unlabelled", labelled=False)))
    params = {
        "path": Param(str, help="a | b, escaped in tables"),
        "grid": Param(list, [0.1, 0.01], "strengths", items=float),
        "workers": Param(int, 0, "loader workers", min=0, affects_results=False),
        "mode": Param(str, "fast", "new in v3", choices=("fast", "exact"), omit_default=True),
        "limit": Param(float, None, "off unless given", min=0.0, max=1.0),
        "data": Param(str, help="a folder", path="local"),
        "labels": Param(str, None, "a file in it", path="local", relative_to="data", omit_default=True),
        "model": Param(str, "org/name", "a hub id or a folder", path="local-or-id"),
        "weights": Param(str, "tag", "a tag or dir:<folder>", path="local", path_prefix="dir:"),
    }


def test_a_schema_in_words():
    doc = describe(PluginRegistry().add(Knobs(), Origin("knobs-plugin", "knobs-dist", "0.2")))
    rows = {p.name: p for p in doc.params}
    assert (rows["path"].type, rows["path"].default, rows["path"].identity) == ("string", "required", "yes")
    assert (rows["grid"].type, rows["grid"].default) == ("list of numbers", "[0.1, 0.01]")
    assert rows["workers"].identity == "no: execution only" and rows["workers"].constraints == "≥ 0"
    assert rows["mode"].identity == "yes, except at its default"
    assert rows["mode"].constraints == 'one of "fast", "exact"' and rows["mode"].default == '"fast"'
    assert (rows["limit"].default, rows["limit"].constraints) == ("not set", "≥ 0.0, ≤ 1.0")
    assert (doc.version, doc.origin) == ("3", "knobs-dist 0.2")
    facts = dict(doc.facts)
    assert facts["task types"] == "any"
    assert facts["targets by role"] == "labelled (labelled, not scored), unlabelled (unlabelled, scored)"
    # paths: out of run identities (their content is identified), whatever else they are
    assert (rows["data"].type, rows["data"].identity) == ("path", "no: a path, whose content is identified instead")
    assert rows["labels"].identity == rows["data"].identity and rows["labels"].constraints == "relative to data"
    assert rows["model"].type == "path or identifier"
    assert rows["model"].identity.startswith("yes for an identifier; no for a local path")
    assert rows["weights"].type == "string (dir:… for a path)"
    assert rows["weights"].identity.startswith("yes; no for dir:… paths")

    markdown = item_markdown(doc)
    assert "| `path` | string | required |  | yes | a \\| b, escaped in tables |" in markdown
    assert "| `grid` | list of numbers | `[0.1, 0.01]` |" in markdown
    assert "| `limit` | number | not set | ≥ 0.0, ≤ 1.0 | yes |" in markdown

    text = item_text(doc, width=100)
    assert text.splitlines()[0] == "strategy knobs  v3  [knobs-dist 0.2]"
    assert "workers  integer · default 0 · ≥ 0 · run identity: no: execution only" in text
    assert "limit    number · not set by default · ≥ 0.0, ≤ 1.0" in text


# ---------------------------------------------------------------------- tlbench list NAME


def test_list_name_shows_the_items_schema(plain_env, builtin_registry, capsys):
    assert main(["list", "imagefolder"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("target imagefolder  v1  [built-in]")
    for param in builtin_registry.get("target", "imagefolder").item.params:
        assert re.search(rf"^    {param} +\S", out, re.M), f"parameter {param} not shown"
    assert "run identity: yes, except at its default" in out  # `task` and `labels` keep old ids


def test_list_name_of_a_task_and_of_an_estimator(plain_env, builtin_registry, capsys):
    [task] = [reg for reg in builtin_registry.items("task") if reg.origin.builtin][:1]
    assert main(["list", task.name]) == 0
    out = capsys.readouterr().out
    for metric in task.item.metrics:
        assert re.search(rf"^    {metric.name} +(higher|lower) is better", out, re.M)
    [estimator] = [reg for reg in builtin_registry.items("estimator") if reg.item.requires.source_head][:1]
    assert main(["list", estimator.name]) == 0
    assert re.search(r"needs the source's own classifier +yes", capsys.readouterr().out)


def test_an_unknown_name_is_one_line_with_the_closest_names(plain_env, capsys):
    assert main(["list", "imagefolde"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == ["tlbench: error: no source, target, task, strategy or estimator named "
                                         "'imagefolde' (did you mean 'imagefolder', 'maskfolder', 'audiofolder'?)"]
    assert main(["list", "imagefolder", "--kind", "strategy"]) == 2
    assert capsys.readouterr().err == "tlbench: error: no strategy named 'imagefolder'; there is one among the targets\n"


def test_list_name_json_is_that_items_entry_of_list_json(plain_env, capsys):
    assert main(["list", "--json"]) == 0
    [entry] = [e for e in json.loads(capsys.readouterr().out)["targets"] if e["name"] == "imagefolder"]
    assert main(["list", "imagefolder", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"kind": "target", **entry}


TWINS = '''
import tlbench
from tlbench.api import Source, Target
from tlbench.params import Param


class TwinSource(Source):
    name = "twin"
    description = "a source called twin"
    params = {"width": Param(int, 8, "channels")}


class TwinTarget(Target):
    name = "twin"
    description = "a target called twin"
    params = {"shots": Param(int, 5, "examples per class")}


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(TwinSource())


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(TwinTarget())
'''


def test_a_name_shared_by_two_kinds_shows_each(plain_env, tmp_path, monkeypatch, capsys):
    (tmp_path / "twins_plugin.py").write_text(TWINS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("TLBENCH_PLUGINS", "twins_plugin")
    assert main(["list", "twin"]) == 0
    out = capsys.readouterr().out
    assert "source twin  v1  [module twins_plugin]" in out and "target twin  v1  [module twins_plugin]" in out
    assert out.index("source twin") < out.index("width") < out.index("target twin") < out.index("shots")

    assert main(["list", "twin", "--json"]) == 0
    assert [item["kind"] for item in json.loads(capsys.readouterr().out)] == ["source", "target"]
    assert main(["list", "twin", "--json", "--kind", "target"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == {
        "shots": {"type": "int", "help": "examples per class", "required": False, "default": 5}}


def test_kind_without_a_name_is_a_usage_error(plain_env, capsys):
    assert main(["list", "--kind", "target"]) == 2
    assert capsys.readouterr().err.startswith("tlbench: error: --kind: ")


def test_list_name_imports_no_heavy_library():
    code = textwrap.dedent("""
        import contextlib, io, json, sys
        from tlbench.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["list", "timm"])
        heavy = ("numpy", "torch", "timm", "transformers", "datasets", "pandas")
        print(json.dumps({"code": code, "heavy": [m for m in heavy if m in sys.modules]}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"code": 0, "heavy": []}


def test_the_regenerate_command_writes_the_page(plain_env):
    """`python -m tlbench.reference` is what the out-of-date message tells people to run."""
    assert REGENERATE == "python -m tlbench.reference > docs/reference.md"
    out = subprocess.run([sys.executable, "-m", "tlbench.reference"], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout == reference_markdown(PluginRegistry.load())

