"""Sources whose architectures are the same network share one from-scratch baseline,
whichever plugin built them; different networks never do, and a plugin that declares no
`network` namespace keeps its architectures (and its baselines' ids) to itself."""

from __future__ import annotations

import sys

import pytest

from tlbench.plan.matrix import expand, with_identity
from tlbench.plan.suite import load_suite

PLUGIN = '''
import tlbench
from tlbench.api import Source
from tlbench.params import Param


class TimmTwin(Source):
    """Builds its networks with timm, from the same architecture dict as the timm source."""
    name = "timm-twin"
    network = "timm"
    params = {"model": Param(str), "input_size": Param(int, None)}

    def architecture(self, params):
        return {"model": params["model"], "input_size": params["input_size"]}


class Lookalike(Source):
    """The same dict, but its own networks: no namespace, so never shared."""
    name = "lookalike"
    params = {"model": Param(str), "input_size": Param(int, None)}

    def architecture(self, params):
        return {"model": params["model"], "input_size": params["input_size"]}


@tlbench.hookimpl
def tlbench_register_sources(register):
    register(TimmTwin())
    register(Lookalike())
'''

SUITE = """
[suite]
name = "shared"
seeds = [0, 1]

{before}

[[sources]]
id = "timm-random"
plugin = "timm"
model = "test_resnet.r160_in1k"
pretrained = false
input_size = 32

{sources}

[[targets]]
id = "d"
plugin = "digits"
classes = [0, 1]

[[strategies]]
id = "lp"
plugin = "linear-probe"

[[strategies]]
id = "ft"
plugin = "full-finetune"
"""


def source(plugin: str, source_id: str, model: str = "test_resnet", input_size: int = 32) -> str:
    return f'[[sources]]\nid = "{source_id}"\nplugin = "{plugin}"\nmodel = "{model}"\ninput_size = {input_size}\n'


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    from tlbench.plugins import PluginRegistry

    folder = tmp_path_factory.mktemp("twin-plugin")
    (folder / "twin_sources.py").write_text(PLUGIN)
    sys.path.insert(0, str(folder))
    try:
        yield PluginRegistry.load(["twin_sources"])
    finally:
        sys.path.remove(str(folder))


def planned(write_suite, registry, sources: str, before: str = ""):
    suite = load_suite(write_suite(SUITE.format(sources=sources, before=before)), registry)
    specs = expand(suite, registry).specs
    hashes = {(t.id, s): f"hash-{t.id}-{s}" for t in suite.targets for s in suite.seeds}
    return with_identity(specs, hashes, {entry.id: f"weights-{entry.id}" for entry in suite.sources})


def test_one_network_built_by_two_plugins_has_one_baseline(write_suite, plugins):
    specs = planned(write_suite, plugins, source("timm-twin", "twin"))
    baselines = [spec for spec in specs if spec.baseline]
    assert len(baselines) == 2  # one per seed, shared by both sources
    assert {spec.baseline_run_id for spec in specs if not spec.baseline} == {b.run_id for b in baselines}
    # defined by the plugin whose name sorts first, whatever the order of the entries
    assert {b.source.id for b in baselines} == {"timm-random"}
    identity = baselines[0].identity()["source"]
    assert identity == {"plugin": "timm", "version": "2", "architecture": {"model": "test_resnet", "input_size": 32}}
    twin_first = planned(write_suite, plugins, "", before=source("timm-twin", "twin"))
    assert {b.run_id for b in twin_first if b.baseline} == {b.run_id for b in baselines}


def test_a_suite_of_one_plugin_keeps_its_baseline_ids(write_suite, registry):
    """The identity of a baseline is what it always was: the source's plugin, version
    and architecture (tlbench 0.1's records are found as done)."""
    [baseline, *_] = planned(write_suite, registry, "")
    assert baseline.baseline and baseline.identity()["source"] == {
        "plugin": "timm", "version": "2", "architecture": {"model": "test_resnet", "input_size": 32}}


def test_different_networks_or_no_namespace_are_never_shared(write_suite, plugins):
    sources = "\n".join([source("timm-twin", "bigger", input_size=64), source("timm-twin", "vit", "test_vit"),
                         source("lookalike", "lookalike")])
    specs = planned(write_suite, plugins, sources)
    baselines = [spec for spec in specs if spec.baseline]
    assert len(baselines) == 4 * 2
    assert len({spec.run_id for spec in baselines}) == len(baselines)
    lookalike = next(spec for spec in baselines if spec.source.plugin == "lookalike").identity()["source"]
    assert lookalike == {"plugin": "lookalike", "version": "1",
                         "architecture": {"model": "test_resnet", "input_size": 32}}


def test_a_pretrained_tag_names_weights_not_a_network(registry):
    item = registry.get("source", "timm").item
    assert item.architecture({"model": "test_resnet.r160_in1k", "input_size": None}) == \
        item.architecture({"model": "test_resnet", "input_size": None})


def test_timm_and_pretrain_on_one_architecture_share_a_baseline(write_suite, registry):
    """The issue's case: timm's test_resnet at 32 px with random weights, and test_resnet at
    32 px pretrained on the spot, got two from-scratch baselines with identical numbers."""
    pretrain = ('[[sources]]\nid = "pre"\nplugin = "pretrain"\nmodel = "test_resnet"\ninput_size = 32\n'
                'target = "digits"\ntarget_params = { classes = [5, 6], shots = 5 }\n')
    specs = planned(write_suite, registry, pretrain)
    assert sum(spec.baseline for spec in specs) == 2
