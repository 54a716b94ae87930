"""Every domain-adaptation strategy end to end from a suite with groups (the CLI), and
what it may not read.

One tiny suite runs `erm`, `dann`, `cdan`, `mcc` and `coral` — each with another
selection rule, so every rule runs too — on four groups whose labelled domain is clean
digits and whose unlabelled domain is rotated and blurred digits:

- `true`: the data as it is;
- `train-shuffled` and `train-constant`: the unlabelled domain's *training* labels
  permuted, or all replaced by class 0;
- `test-shuffled`: both domains' *test* labels permuted.

The target domain's training labels never reach a strategy, so the first three give
bitwise the same numbers: every metric, the strategy's whole record (training history,
selection scores) and the labelled domain's scores — all but the unlabelled domain's
train metrics, which tlbench scores after the run against whatever labels the target
gives (they are what changed). Test labels reach no strategy either, so permuting them
changes the test metrics alone. Content hashes, and so run ids, differ between the
groups: the data differs; the comparison is of numbers, never of ids.
"""

from __future__ import annotations

import copy
import json
import textwrap

import pytest

VARIANT_PLUGIN = '''
"""A `digit-domains` whose labels can be permuted or replaced, split by split."""

import numpy as np

import tlbench
from tlbench.api import Split, Splits, TargetData
from tlbench.params import Param
from tlbench_builtin.digit_domains import DigitDomains


class Relabelled(TargetData):
    def __init__(self, data, params):
        self.data, self.params = data, params
        for name in ("task", "num_classes", "class_names", "modality", "revision"):
            setattr(self, name, getattr(data, name))

    def info(self):
        return self.data.info()

    def splits(self, seed):
        splits = self.data.splits(seed)

        def change(split, how):
            labels = split.labels
            if how == "permuted":
                labels = np.random.default_rng(99).permutation(labels)
            elif how == "constant":
                labels = np.zeros_like(labels)
            return Split(split.examples, labels)

        return Splits(train=change(splits.train, self.params["train_labels"]), val=splits.val,
                      test=change(splits.test, self.params["test_labels"]))


class RelabelledDigitDomains(DigitDomains):
    name = "relabelled-digit-domains"
    params = {**DigitDomains.params,
              "train_labels": Param(str, "true", "", choices=("true", "permuted", "constant")),
              "test_labels": Param(str, "true", "", choices=("true", "permuted"))}

    def load(self, params, env):
        base = {k: v for k, v in params.items() if k in DigitDomains.params}
        return Relabelled(super().load(base, env), params)


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(RelabelledDigitDomains())
'''

DOMAIN = """
[[targets]]
id = "{id}"
plugin = "relabelled-digit-domains"
domain = "{domain}"
pool = "{pool}"
classes = [0, 1, 2]
shots = 4
val_shots = 3
size = 16
train_labels = "{train}"
test_labels = "{test}"
"""

GROUP = """
[[groups]]
id = "{id}"
labelled = "{labelled}"
unlabelled = "{unlabelled}"
"""

SMALL = "epochs = 2\nbatch_size = 4\n"
STRATEGIES = f"""
[[strategies]]
plugin = "erm"
{SMALL}
[[strategies]]
plugin = "dann"
selection = "dev"
discriminator_hidden = 16
{SMALL}
[[strategies]]
plugin = "cdan"
selection = "snd"
entropy_conditioning = true
randomized_above = 100
randomized_dim = 32
discriminator_hidden = 16
{SMALL}
[[strategies]]
plugin = "mcc"
selection = "last"
{SMALL}
[[strategies]]
plugin = "coral"
selection = "oracle"
{SMALL}
"""

METHODS = ("erm", "dann", "cdan", "mcc", "coral")
RULES = {"erm": "source-val", "dann": "dev", "cdan": "snd", "mcc": "last", "coral": "oracle"}


def suite_text() -> str:
    text = textwrap.dedent("""
        [suite]
        name = "adaptation"
        seeds = [0]
        device = "cpu"
        plugins = ["relabelled_plugin"]

        [[sources]]
        id = "rn"
        plugin = "timm"
        model = "test_resnet"
        pretrained = false
        input_size = 16

        [baseline]
        enabled = false
        """)
    domains = {"clean": ("clean", "source", "true", "true"),
               "clean-test-shuffled": ("clean", "source", "true", "permuted"),
               "rotated": ("rotate-blur", "target", "true", "true"),
               "rotated-train-shuffled": ("rotate-blur", "target", "permuted", "true"),
               "rotated-train-constant": ("rotate-blur", "target", "constant", "true"),
               "rotated-test-shuffled": ("rotate-blur", "target", "true", "permuted")}
    for id, (domain, pool, train, test) in domains.items():
        text += DOMAIN.format(id=id, domain=domain, pool=pool, train=train, test=test)
    groups = {"true": ("clean", "rotated"), "train-shuffled": ("clean", "rotated-train-shuffled"),
              "train-constant": ("clean", "rotated-train-constant"),
              "test-shuffled": ("clean-test-shuffled", "rotated-test-shuffled")}
    for id, (labelled, unlabelled) in groups.items():
        text += GROUP.format(id=id, labelled=labelled, unlabelled=unlabelled)
    return text + STRATEGIES


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    from conftest import run_cli

    root = tmp_path_factory.mktemp("adaptation")
    (root / "relabelled_plugin.py").write_text(textwrap.dedent(VARIANT_PLUGIN), encoding="utf-8")
    suite = root / "suite.toml"
    suite.write_text(suite_text(), encoding="utf-8")
    out = root / "out"
    result = run_cli("run", str(suite), "--out", str(out), env={"TLBENCH_CACHE_DIR": str(root / "cache")})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = {}
    for path in (out / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        found[(record["spec"]["group"], record["spec"]["strategy"]["id"])] = record
    return found


def test_every_method_runs_on_the_groups_and_is_scored_on_the_unlabelled_domain(records):
    assert sorted(records) == sorted((g, m) for g in ("true", "train-shuffled", "train-constant", "test-shuffled")
                                     for m in METHODS)
    for (group, method), record in records.items():
        assert record["status"] == "ok", (group, method, record.get("error"))
        assert record["spec"]["scored"] == "unlabelled"
        metrics = record["metrics"]
        assert metrics["n_test"] > 0 and 0.0 <= metrics["test_accuracy"] <= 1.0
        # the labelled domain's test split is scored too (the domain gap)
        by_role = record["details"]["by_role"]["labelled"]["metrics"]
        assert by_role["n_test"] > 0 and 0.0 <= by_role["test_accuracy"] <= 1.0
        assert record["details"]["selection"]["rule"] == RULES[method]
    cdan = records[("true", "cdan")]["details"]["strategy"]["method"]
    assert cdan["map"] == "randomized" and cdan["map_dim"] == 32 and cdan["entropy_conditioning"] is True
    dann = records[("true", "dann")]["details"]["strategy"]
    assert dann["auxiliary_params"] > 0
    assert all("domain_accuracy" in entry and "reversal" in entry for entry in dann["training"]["history"])


def test_every_method_is_compared_with_erm_run_for_run(records):
    """The negative transfer of the adaptation itself: each method's run is paired with the
    ERM run of its source, group and seed, and records the signed difference."""
    for (group, method), record in records.items():
        erm = records[(group, "erm")]
        if method == "erm":
            assert "paired" not in record["spec"] and "nt_vs_erm" not in record["metrics"]
            continue
        assert record["spec"]["paired"] == {"erm": erm["run_id"]} and erm["run_id"] in record["spec"]["depends_on"]
        assert record["metrics"]["nt_vs_erm"] == pytest.approx(
            record["metrics"]["test_accuracy"] - erm["metrics"]["test_accuracy"], abs=1e-12)


def test_only_the_oracle_reads_the_unlabelled_domain_s_val_labels_and_nothing_reads_test_labels(records):
    expected = {"source-val": ["labelled:val:labels"],
                "dev": ["labelled:train", "unlabelled:train", "labelled:val:labels"],
                "snd": ["unlabelled:train"], "last": [], "oracle": ["unlabelled:val:labels"]}
    for (group, method), record in records.items():
        selection = record["details"]["selection"]
        assert selection["reads"] == expected[selection["rule"]], (group, method)
        assert not any(":test" in item for item in selection["reads"])
    oracle = records[("true", "coral")]["details"]["selection"]
    assert oracle["rule"] == "oracle" and oracle["metric"] == "target_val_accuracy"
    assert oracle["higher_is_better"] is True and oracle["selected_epoch"] in (1, 2)
    assert records[("true", "mcc")]["details"]["selection"]["selected_epoch"] == 2  # last
    assert records[("true", "dann")]["details"]["selection"]["higher_is_better"] is False  # a risk


def _numbers(record, skip: set[str]) -> dict:
    metrics = {k: v for k, v in record["metrics"].items()
               if k not in skip and k not in ("wall_seconds", "peak_memory_mb")}
    details = copy.deepcopy(record["details"])
    return {"metrics": metrics, "strategy": details["strategy"], "selection": details["selection"],
            "by_role": details["by_role"]}


@pytest.mark.parametrize("group", ["train-shuffled", "train-constant"])
def test_the_unlabelled_domain_s_training_labels_are_never_read(records, group):
    # the unlabelled train split is scored after the run against the labels the target
    # gives, which are what changed: its metrics (and the gap) are the only numbers allowed to
    train_scores = {"train_accuracy", "overfitting_gap"}
    for method in METHODS:
        true, variant = records[("true", method)], records[(group, method)]
        assert true["run_id"] != variant["run_id"]  # other data, other identity
        assert _numbers(variant, train_scores) == _numbers(true, train_scores), method


def test_test_labels_change_only_the_test_metrics(records):
    changed = 0
    for method in METHODS:
        true, variant = records[("true", method)], records[("test-shuffled", method)]
        test_scores = {"test_accuracy", "overfitting_gap", "nt_vs_erm"}
        a, b = _numbers(true, test_scores), _numbers(variant, test_scores)
        roles_a, roles_b = a.pop("by_role"), b.pop("by_role")
        assert a == b, method
        for role in (roles_a, roles_b):
            role["labelled"]["metrics"].pop("test_accuracy")
        assert roles_a == roles_b
        changed += true["metrics"]["test_accuracy"] != variant["metrics"]["test_accuracy"]
        changed += (true["details"]["by_role"]["labelled"]["metrics"]["test_accuracy"]
                    != variant["details"]["by_role"]["labelled"]["metrics"]["test_accuracy"])
    assert changed > 0  # the permutation did reach the scoring


def test_dann_coral_and_erm_serve_multilabel_and_regression_domains(tmp_path):
    """The feature-level methods declare the pooled-feature task types: scenes of digits
    from two scene generators, labelled which classes appear (multi-label) or how many
    digits there are (regression); selected by DEV, whose per-example losses are the task's."""
    from conftest import run_cli

    scenes = ('plugin = "digit-scenes"\nn_scenes = 90\nn_test = 30\nn_train = 24\nn_val = 12\ncanvas = 16\n'
              'max_scale = 10\nclasses = [0, 1, 7]\n')
    text = textwrap.dedent("""
        [suite]
        name = "adaptation-tasks"
        seeds = [0]
        device = "cpu"

        [[sources]]
        id = "rn"
        plugin = "timm"
        model = "test_resnet"
        pretrained = false
        input_size = 16

        [baseline]
        enabled = false
        """)
    for task in ("multilabel", "regression"):
        for domain, seed in (("a", 0), ("b", 1)):
            text += f'\n[[targets]]\nid = "{task}-{domain}"\n{scenes}task = "{task}"\nscene_seed = {seed}\n'
        text += f'\n[[groups]]\nid = "{task}"\nlabelled = "{task}-a"\nunlabelled = "{task}-b"\n'
    for method in ("erm", "dann", "coral"):
        text += f'\n[[strategies]]\nplugin = "{method}"\nselection = "dev"\ndiscriminator_hidden = 16\n' \
            if method == "dann" else f'\n[[strategies]]\nplugin = "{method}"\nselection = "dev"\n'
        text += SMALL
    suite = tmp_path / "suite.toml"
    suite.write_text(text, encoding="utf-8")
    result = run_cli("run", str(suite), "--out", str(tmp_path / "out"), env={"TLBENCH_CACHE_DIR": str(tmp_path / "c")})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "runs").glob("*.json")]
    assert sorted((r["spec"]["group"], r["spec"]["strategy"]["id"]) for r in records) == sorted(
        (task, method) for task in ("multilabel", "regression") for method in ("erm", "dann", "coral"))
    for record in records:
        assert record["status"] == "ok", record.get("error")
        headline = record["task"]["headline"]
        assert record["metrics"][f"test_{headline}"] is not None
        assert record["details"]["selection"]["rule"] == "dev"
        assert record["details"]["by_role"]["labelled"]["task"] == record["task"]["name"]
