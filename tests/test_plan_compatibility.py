"""What can run is decided before anything runs: strategies and estimators declare what
they need, the plan leaves out every combination that cannot meet it (one line each in
the dry run and in a real run), a suite left with nothing to run is refused, and
strategies that take several targets run on the suite's groups, with the labels of an
unlabelled role never reaching them."""

from __future__ import annotations

import json
import textwrap

import pytest

from conftest import RANDOM_RESNET

SCENES = """
[[targets]]
id = "count"
plugin = "digit-scenes"
task = "regression"
n_scenes = 140
n_test = 40
n_train = 30
n_val = 20
"""

PLUGIN = '''
"""Test strategies: one for classification only, one that takes a labelled and an
unlabelled target (the shape of domain adaptation)."""

import tlbench
from tlbench.api import FitResult, Requirements, Role, SPLITS, Strategy
from tlbench.training import ENGINE_PARAMS


class PriorOnly(Strategy):
    name = "prior-only"
    version = "1"
    description = "class frequencies of the training split (classification only, the default)"
    frozen_features_only = True

    def fit(self, params, run):
        import numpy as np

        counts = np.bincount(run.split("train").labels, minlength=run.num_classes) + 1.0
        logits = {name: np.tile(np.log(counts / counts.sum()), (len(run.split(name)), 1)) for name in SPLITS}
        return FitResult(predictions=logits, trainable_params=0,
                         total_params=sum(p.numel() for p in run.source.backbone.parameters()))


class TwoDomains(Strategy):
    name = "two-domains"
    version = "1"
    description = "train on a labelled domain with an entropy term on an unlabelled one"
    requires = Requirements(tasks=None, roles=(Role("labelled", scored=False),
                                               Role("unlabelled", labelled=False, scored=True)))
    params = dict(ENGINE_PARAMS)

    def fit(self, params, run):
        from tlbench.training import TaskModel, evaluate, param_groups, train

        labelled, unlabelled = run.role("labelled"), run.role("unlabelled")
        assert run.roles == ("labelled", "unlabelled") and run.target is unlabelled.target
        assert all(unlabelled.split(name).labels is None for name in SPLITS), "unlabelled labels reached us"
        assert labelled.split("test").labels is None and labelled.split("train").labels is not None
        assert unlabelled.objective is None
        model = TaskModel(run.source.backbone, labelled.objective.head(run.source))
        seen = []

        def entropy(step):
            inputs, targets = step.extra["unlabelled"]
            assert targets is None
            seen.append(len(inputs))
            probabilities = model(inputs).softmax(1)
            return 0.1 * -(probabilities * probabilities.clamp_min(1e-8).log()).sum(1).mean()

        outcome = train(labelled, model, param_groups(model.named_parameters(), params["lr"], 0.0), params,
                        loss_hook=entropy, extra={"unlabelled": unlabelled.batches("train", 4)})
        result = evaluate(unlabelled, model, params, {"training": outcome.to_json(), "extra_batches": len(seen)},
                          objective=labelled.objective)
        return result


@tlbench.hookimpl
def tlbench_register_strategies(register):
    register(PriorOnly())
    register(TwoDomains())
'''


@pytest.fixture
def plugin_suite(write_suite, tmp_path):
    (tmp_path / "compat_plugin.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")

    def write(body: str):
        return write_suite('[suite]\nname = "compat"\nseeds = [0, 1]\nplugins = ["compat_plugin"]\n' + body)

    return write


def test_a_classification_only_recipe_is_left_out_of_other_tasks(plugin_suite, cli, tmp_path):
    suite = plugin_suite(RANDOM_RESNET + SCENES + """
[[targets]]
id = "digits"
plugin = "digits"
classes = [0, 1, 2]
shots = 4
val_shots = 2

[[strategies]]
plugin = "prior-only"

[[strategies]]
plugin = "linear-probe"

[[estimators]]
plugin = "logme"
""")
    dry = cli("run", str(suite), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    left_out = [line for line in dry.stdout.splitlines() if line.startswith("left out")]
    assert left_out == ["left out  rn → count · prior-only: prior-only supports classification tasks; target count "
                        "is a regression task",
                        "left out  rn → count · logme: logme supports classification tasks; target count is a "
                        "regression task"]
    assert "2 left out" in dry.stdout
    assert not [line for line in dry.stdout.splitlines() if "count · prior-only" in line and line.startswith("run")]

    out = tmp_path / "out"
    run = cli("run", str(suite), "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "tlbench: left out: rn → count · prior-only" in run.stderr
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    by_target = {(r["spec"]["target"]["id"], r["spec"]["strategy"]["id"]) for r in records}
    assert ("count", "prior-only") not in by_target and ("count", "linear-probe") in by_target
    assert ("digits", "prior-only") in by_target
    regression = next(r for r in records if r["spec"]["target"]["id"] == "count")
    assert regression["task"]["name"] == "regression" and regression["task"]["headline"] == "r2"


def test_a_suite_that_would_run_nothing_is_refused(plugin_suite, cli, tmp_path):
    suite = plugin_suite(RANDOM_RESNET + SCENES + '\n[[strategies]]\nplugin = "prior-only"\n')
    for args in (["--dry-run"], ["--out", str(tmp_path / "out")]):
        result = cli("run", str(suite), *args)
        assert result.returncode == 2, result.stdout + result.stderr
        [line] = [line for line in result.stderr.splitlines() if line.startswith("tlbench: error")]
        assert line.endswith("nothing to run: every combination of source, target and strategy is left out as "
                             "impossible (1 reasons; e.g. rn → count · prior-only: prior-only supports "
                             "classification tasks; target count is a regression task)")
    assert not (tmp_path / "out").exists()


def test_a_task_head_that_needs_what_the_source_cannot_give_is_left_out(registry, write_suite):
    """A head reading token sequences is left out for an image source (which gives none)."""
    from tlbench.api import MetricSpec, Task
    from tlbench.plan.matrix import expand
    from tlbench.plan.suite import load_suite
    from tlbench.plugins import Origin, PluginRegistry

    class Tagging(Task):
        name = "tagging"
        description = "a tag per token"
        metrics = (MetricSpec("f1"),)
        headline = "f1"
        representation = "tokens"

    from tlbench_builtin.digits import Digits

    class TaggedDigits(Digits):
        name = "tagged-digits"

        def task(self, params):
            return "tagging"

    private = PluginRegistry()
    for kind in ("source", "strategy", "task"):
        for reg in registry.items(kind):
            private.add(reg.item, reg.origin)
    private.add(Tagging(), Origin(plugin="test"))
    private.add(TaggedDigits(), Origin(plugin="test"))
    suite = load_suite(write_suite('[suite]\nname = "t"\n' + RANDOM_RESNET +
                                   '[[targets]]\nid = "tags"\nplugin = "tagged-digits"\n'
                                   '[[strategies]]\nplugin = "full-finetune"\n'), private)
    planned = expand(suite, private)
    assert planned.specs == []
    # (no baseline is planned for a target on which nothing transfers)
    assert [str(e) for e in planned.exclusions] == [
        "rn → tags · full-finetune: source rn gives no token sequences, which the tagging head of target tags reads"]


GROUPS = """
[[targets]]
id = "clean"
plugin = "digits"
classes = [0, 1, 2]
shots = 5
val_shots = 2

[[targets]]
id = "other-seed"
plugin = "digits"
classes = [0, 1, 2]
shots = 6
val_shots = 3

[[groups]]
id = "clean-to-other"
labelled = "clean"
unlabelled = "other-seed"

[[strategies]]
plugin = "two-domains"
epochs = 2
batch_size = 8

[[strategies]]
plugin = "prior-only"
"""


def test_a_strategy_with_roles_runs_on_the_groups_with_those_roles(plugin_suite, cli, tmp_path):
    suite = plugin_suite(RANDOM_RESNET + GROUPS)
    dry = cli("run", str(suite), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    runs = [line for line in dry.stdout.splitlines() if line.startswith("run")]
    assert sum("rn → clean-to-other · two-domains" in line for line in runs) == 2  # one per seed
    assert not [line for line in runs if "two-domains" in line and "clean-to-other" not in line]
    assert sum("prior-only" in line for line in runs) == 4  # each plain target, each seed

    out = tmp_path / "out"
    result = cli("run", str(suite), "--out", str(out))
    assert result.returncode == 0, result.stderr + result.stdout
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    adapted = [r for r in records if r["spec"]["strategy"]["id"] == "two-domains"]
    assert len(adapted) == 2 and all(r["status"] == "ok" for r in adapted)
    record = adapted[0]
    assert record["spec"]["group"] == "clean-to-other" and record["spec"]["scored"] == "unlabelled"
    assert set(record["spec"]["targets"]) == {"labelled", "unlabelled"}
    assert record["spec"]["target"]["id"] == "other-seed"  # scored on the unlabelled target's test split
    assert set(record["spec"]["identity"]["targets"]) == {"labelled", "unlabelled"}
    assert record["details"]["strategy"]["extra_batches"] > 0
    assert record["metrics"]["test_accuracy"] is not None and record["metrics"]["n_test"] > 0
    summary = json.loads((out / "summary.json").read_text())
    assert any(cell["target_label"] == "clean-to-other" and cell["strategy"] == "two-domains"
               for cell in summary["cells"])


def test_a_strategy_with_roles_and_no_matching_group_is_said_so(plugin_suite, cli):
    suite = plugin_suite(RANDOM_RESNET + GROUPS.split("[[groups]]")[0] + """
[[strategies]]
plugin = "two-domains"

[[strategies]]
plugin = "prior-only"
""")
    dry = cli("run", str(suite), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert ("left out  * → * · two-domains: takes targets in the roles labelled, unlabelled; the suite has no "
            "[[groups]] entry with exactly these roles") in dry.stdout.splitlines()


@pytest.mark.parametrize("table, message", [
    ('[[groups]]\nid = "g"\nlabelled = "clean"\n', "groups[0]: expected at least two roles"),
    ('[[groups]]\nid = "g"\nlabelled = "clean"\nunlabelled = "nope"\n',
     "groups[0].unlabelled: no target with id 'nope'"),
    ('[[groups]]\nid = "clean"\nlabelled = "clean"\nunlabelled = "other-seed"\n',
     "groups[0].id: 'clean' is already the id of a target or group"),
])
def test_bad_groups_are_one_line(plugin_suite, cli, table, message):
    suite = plugin_suite(RANDOM_RESNET + GROUPS.split("[[groups]]")[0] + table +
                         '\n[[strategies]]\nplugin = "prior-only"\n')
    result = cli("run", str(suite), "--dry-run")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert message in line


def test_an_adaptation_method_brings_its_erm_run_and_the_group_s_scratch_baseline(write_suite, registry):
    """A suite with DANN alone: tlbench plans ERM with DANN's knobs, pairs each DANN run
    with the ERM run of its source, group and seed, and gives both the group's
    from-scratch baseline (ERM's recipe from a random initialisation)."""
    from tlbench.plan.matrix import expand, with_identity
    from tlbench.plan.suite import load_suite

    domains = "".join(f'[[targets]]\nid = "{id}"\nplugin = "digit-domains"\ndomain = "{domain}"\npool = "{pool}"\n'
                      f'classes = [0, 1, 2]\nshots = 4\nval_shots = 2\nsize = 16\n'
                      for id, domain, pool in (("clean", "clean", "source"), ("thick", "thick", "target")))
    suite = load_suite(write_suite('[suite]\nname = "da"\nseeds = [0, 1]\n' + RANDOM_RESNET + domains +
                                   '[[groups]]\nid = "clean-to-thick"\nlabelled = "clean"\nunlabelled = "thick"\n'
                                   '[[strategies]]\nplugin = "dann"\nepochs = 3\nlr = 0.01\n'), registry)
    erm = [entry for entry in suite.strategies if entry.plugin == "erm"]
    assert len(erm) == 1 and erm[0].params["epochs"] == 3 and erm[0].params["lr"] == 0.01
    planned = expand(suite, registry)
    hashes = {(target.id, seed): f"{target.id}-{seed}" for target in suite.targets for seed in suite.seeds}
    specs = with_identity(planned.specs, hashes, {})
    by = {(spec.recipe.id, spec.seed, spec.baseline): spec for spec in specs}
    assert sorted(by) == sorted((recipe, seed, baseline) for seed in (0, 1)
                                for recipe, baseline in (("dann", False), ("erm", False), ("scratch-erm", True)))
    for seed in (0, 1):
        dann, erm_run, scratch = by[("dann", seed, False)], by[("erm", seed, False)], by[("scratch-erm", seed, True)]
        assert dann.paired == (("erm", erm_run.run_id),) and erm_run.paired == ()
        assert dann.baseline_run_id == erm_run.baseline_run_id == scratch.run_id
        assert scratch.init == "random" and scratch.group == "clean-to-thick" and scratch.recipe.plugin == "erm"
        assert set(dann.depends_on) == {scratch.run_id, erm_run.run_id}
