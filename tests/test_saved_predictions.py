"""`save_predictions`: a run's test predictions beside its record, by content, and the
metric recomputed from them equals the recorded one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import RANDOM_RESNET, THREE_DIGITS

from tlbench.errors import SuiteError
from tlbench.plan.suite import load_suite
from tlbench.results.predictions import load

SUITE = """
[suite]
name = "saved"
seeds = [0]
device = "cpu"
""" + RANDOM_RESNET + THREE_DIGITS + """
[[strategies]]
id = "lp"
plugin = "linear-probe"
save_predictions = true

[[strategies]]
id = "ft"
plugin = "full-finetune"
epochs = 2
batch_size = 8
"""


def _records(out):
    return {r["spec"]["strategy"]["id"]: r for r in
            (json.loads(p.read_text()) for p in (out / "runs").glob("*.json"))}


def test_saved_predictions_rescore_to_the_recorded_metric_and_validate(cli, write_suite, tmp_path, registry):
    out = tmp_path / "out"
    result = cli("run", str(write_suite(SUITE)), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(out)
    assert "predictions" not in records["ft"]["details"]  # the suite's default: none
    assert "predictions" not in records["scratch-ft"]["details"]
    reference = records["lp"]["details"]["predictions"]
    assert reference["format"] == "npz" and reference["split"] == "test" and reference["path"].startswith("predictions/")
    assert "attachments" not in records["lp"]
    saved = load(out / reference["path"])
    assert saved.shape == (records["lp"]["metrics"]["n_test"], 3) == (reference["count"], 3)
    # the metric, recomputed from the file and the test labels, is the recorded one
    from tlbench.api import Env

    target = registry.get("target", "digits").item
    data = target.load(load_suite(write_suite(SUITE), registry).targets[0].params, Env(cache_dir=tmp_path))
    labels = data.splits(0).test.labels
    task = registry.get("task", "classification").item
    assert task.score(saved, labels, data.info())["accuracy"] == records["lp"]["metrics"]["test_accuracy"]
    assert float(np.mean(saved.argmax(1) == labels)) == records["lp"]["metrics"]["test_accuracy"]

    assert cli("validate", str(out)).returncode == 0
    merged = tmp_path / "merged"
    assert cli("merge", str(out), "--out", str(merged)).returncode == 0
    assert (merged / reference["path"]).is_file() and cli("validate", str(merged)).returncode == 0
    (merged / reference["path"]).write_bytes(b"edited")
    checked = cli("validate", str(merged))
    assert checked.returncode == 1 and "saved predictions" in checked.stdout + checked.stderr
    assert "do not match their sha256" in checked.stdout + checked.stderr


def test_the_suite_setting_applies_to_every_run_and_only_strategies_take_their_own(cli, write_suite, tmp_path,
                                                                                    registry):
    text = SUITE.replace('device = "cpu"', 'device = "cpu"\nsave_predictions = true').replace(
        "save_predictions = true\n\n[[strategies]]", "save_predictions = false\n\n[[strategies]]")
    out = tmp_path / "out"
    assert cli("run", str(write_suite(text)), "--out", str(out)).returncode == 0
    records = _records(out)
    assert "predictions" not in records["lp"]["details"]  # its own false overrides the suite's true
    for name in ("ft", "scratch-ft"):
        assert load(out / records[name]["details"]["predictions"]["path"]).shape[1] == 3
    with pytest.raises(SuiteError, match=r"targets\[0\]\.save_predictions: a strategy's setting"):
        load_suite(write_suite(SUITE.replace('id = "d"\n', 'id = "d"\nsave_predictions = true\n')), registry)
