"""The domain-adaptation strategies as plugins: what they declare, their parameters,
what they ask to be revealed, and that registering them stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tlbench.api import Role, TargetInfo
from tlbench.errors import ParamError
from tlbench.params import resolve_params

METHODS = ("erm", "dann", "cdan", "mcc", "coral")


@pytest.mark.parametrize("name", METHODS)
def test_each_method_takes_a_labelled_and_a_scored_unlabelled_domain(registry, name):
    item = registry.get("strategy", name).item
    assert item.requires.roles == (Role("labelled", scored=False), Role("unlabelled", labelled=False, scored=True))
    assert "select" not in item.params and item.params["selection"].default == "source-val"
    assert item.params["selection"].choices == ("source-val", "dev", "snd", "last", "oracle")
    assert not item.frozen_features_only and item.init == "pretrained"


def test_tasks_each_method_serves(registry):
    tasks = {name: registry.get("strategy", name).item.requires.tasks for name in METHODS}
    assert tasks == {"erm": None, "dann": ("classification", "multilabel", "regression"),
                     "cdan": ("classification",), "mcc": ("classification",),
                     "coral": ("classification", "multilabel", "regression")}


@pytest.mark.parametrize("name", METHODS)
def test_only_the_oracle_asks_for_withheld_labels(registry, name):
    item = registry.get("strategy", name).item
    for rule in ("source-val", "dev", "snd", "last", "oracle"):
        params = resolve_params(item.params, {"selection": rule}, "strategy")
        assert item.reveals(params) == (("unlabelled:val",) if rule == "oracle" else ())


def test_patience_with_the_last_epoch_is_refused(registry):
    item = registry.get("strategy", "mcc").item
    with pytest.raises(ParamError, match="patience"):
        item.check(resolve_params(item.params, {"selection": "last", "patience": 2}, "strategy"), None)
    item.check(resolve_params(item.params, {"selection": "dev", "patience": 2}, "strategy"), None)


def test_both_domains_must_share_their_classes():
    from tlbench_builtin.adaptation import same_classes

    digits = TargetInfo("classification", 3, ("0", "1", "2"), "image")
    same_classes(digits, TargetInfo("classification", 3, ("0", "1", "2"), "image"))
    with pytest.raises(ValueError, match="share their task and classes"):
        same_classes(digits, TargetInfo("classification", 3, ("0", "1", "7"), "image"))
    with pytest.raises(ValueError, match="share their task and classes"):
        same_classes(digits, TargetInfo("classification", 4, ("0", "1", "2", "3"), "image"))


def test_registering_the_adaptation_plugins_imports_no_torch():
    code = ("import sys\n"
            "import tlbench_builtin.adaptation, tlbench_builtin.domain_selection, tlbench_builtin.digit_domains\n"
            "import tlbench_builtin.erm, tlbench_builtin.dann, tlbench_builtin.cdan, tlbench_builtin.mcc\n"
            "import tlbench_builtin.coral\n"
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_single_unlabelled_example_adds_no_term():
    from types import SimpleNamespace

    import torch

    from tlbench_builtin.adaptation import skipping_single_examples

    calls = []
    guarded = skipping_single_examples(lambda step: calls.append(step) or torch.tensor(2.0))
    one = SimpleNamespace(extra={"unlabelled": (torch.zeros(1, 3, 8, 8), None)}, outputs=torch.zeros(4, 2))
    two = SimpleNamespace(extra={"unlabelled": (torch.zeros(2, 3, 8, 8), None)}, outputs=torch.zeros(4, 2))
    assert float(guarded(one)) == 0.0 and calls == []
    assert float(guarded(two)) == 2.0 and calls == [two]
    assert skipping_single_examples(None) is None
