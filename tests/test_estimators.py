"""Transferability estimators as plugins: conformance, 'not applicable', and a suite
that reports them next to fine-tuned accuracies with the rank correlation."""

from __future__ import annotations

import json

import pytest

from tlbench import testing

BUILTIN_ESTIMATORS = ["logme", "h-score", "leep", "nce"]


@pytest.mark.parametrize("name", BUILTIN_ESTIMATORS)
def test_builtin_estimator_conforms(name, tmp_path):
    record = testing.check_estimator(name, cache_dir=tmp_path)
    assert record["kind"] == "estimate" and record["spec"]["estimator"]["plugin"] == name
    assert isinstance(record["metrics"]["score"], float)
    if name in ("leep", "nce"):
        assert record["metrics"]["score"] <= 0


def test_leep_on_a_source_known_to_lack_a_classifier_is_left_out(tmp_path):
    # a timm model built without pretrained weights has no classifier of its own, and says so
    with pytest.raises(AssertionError, match="cannot be checked on this source and target: leep needs the "
                                             "source's own classifier; source source has none"):
        testing.check_estimator("leep", source=("timm", {"model": "test_resnet", "pretrained": False,
                                                         "input_size": 16}), cache_dir=tmp_path)


class HeadlessTiny(testing.TinySource):
    """A source that can only tell it has no classifier once built."""

    name = "headless-tiny"

    def build(self, params, env, pretrained=True):
        model = super().build(params, env, pretrained)
        model.source_head = None
        return model


def test_leep_without_a_source_classifier_found_when_built_is_not_applicable(tmp_path):
    record = testing.check_estimator("leep", source=HeadlessTiny(), cache_dir=tmp_path)
    assert record["details"]["not_applicable"].startswith("leep needs the source's own classifier")
    assert record["metrics"]["score"] is None and record["status"] == "ok"


SUITE = """
[suite]
name = "est"
seeds = [0, 1]
device = "cpu"

[[sources]]
id = "pre"
plugin = "pretrain"
model = "test_resnet"
input_size = 16
target = "digits"
target_params = { classes = [0, 1, 2], shots = 20, val_shots = 5 }
epochs = 2

[[sources]]
id = "noise"
plugin = "pretrain"
model = "test_resnet"
input_size = 16
target = "digits"
target_params = { classes = [0, 1, 2], shots = 20, val_shots = 5 }
shuffle_labels = true
epochs = 2

[[sources]]
id = "rand"
plugin = "timm"
model = "test_resnet"
pretrained = false
input_size = 16

[[targets]]
id = "d"
plugin = "digits"
classes = [5, 6, 7]
shots = 5
val_shots = 2

[[strategies]]
id = "lp"
plugin = "linear-probe"

[[estimators]]
id = "logme"
plugin = "logme"

[[estimators]]
id = "leep"
plugin = "leep"

[baseline]
enabled = false
"""


def test_suite_with_estimators(write_suite, cli, tmp_path):
    out = tmp_path / "out"
    result = cli("run", str(write_suite(SUITE)), "--out", str(out))
    assert result.returncode == 0, result.stderr + result.stdout
    estimates = [json.loads(p.read_text()) for p in (out / "estimates").glob("*.json")]
    assert len(estimates) == 3 * 2 * 2 - 2  # sources x estimators x seeds, but LEEP on rand is left out:
    assert "left out: rand → d · leep: leep needs the source's own classifier; source rand has none" in result.stderr
    assert all(r["kind"] == "estimate" and r["status"] == "ok" for r in estimates)
    assert not [r for r in estimates if r["spec"]["source"]["id"] == "rand" and r["spec"]["estimator"]["id"] == "leep"]
    runs = list((out / "runs").glob("*.json"))
    assert len(runs) == 3 * 2
    leaderboard = (out / "leaderboard.md").read_text()
    assert "## Transferability estimates" in leaderboard
    summary = json.loads((out / "summary.json").read_text())
    [row] = [r for r in summary["estimates"]["correlations"] if r["estimator"] == "logme"]
    assert row["n_sources"] == 3 and -1 <= row["kendall_tau"] <= 1 and -1 <= row["weighted_tau"] <= 1
    [leep_row] = [r for r in summary["estimates"]["correlations"] if r["estimator"] == "leep"]
    assert leep_row["n_sources"] == 2  # rand has no classifier: not applicable, not a score


def _estimate(target_params: dict, source: str, score: float, seed: int = 0) -> dict:
    identity = {"source": {"plugin": "tiny", "version": "1", "params": {"name": source}},
                "target": {"plugin": "digits", "version": "1", "params": target_params},
                "estimator": {"plugin": "logme", "version": "1", "params": {}}, "seed": seed, "kind": "estimate"}
    return {"run_id": f"{source}-{target_params}-{seed}", "status": "ok", "metrics": {"score": score},
            "spec": {"target": {"id": "digits"}, "source": {"id": source}, "estimator": {"id": "logme"},
                     "seed": seed, "identity": identity}}


def test_estimates_of_one_id_with_two_configurations_are_never_pooled():
    """Two merged suites both call their target 'digits' but draw different shots: their
    scores stay apart, and each meets only the accuracies of its own configuration."""
    import pandas as pd

    from tlbench.report.estimates import correlation_table, estimates_frame, score_table
    from tlbench.report.frame import source_identity_of, target_identity_of

    records = [_estimate({"shots": 5}, "a", 1.0), _estimate({"shots": 5}, "b", 2.0),
               _estimate({"shots": 50}, "a", 4.0), _estimate({"shots": 50}, "b", 3.0)]
    scores = score_table(estimates_frame(records))
    assert len(scores) == 4
    assert sorted(scores["mean_score"]) == [1.0, 2.0, 3.0, 4.0]
    assert scores["target"].str.startswith("digits (config #").all()
    assert scores["target"].nunique() == 2

    def cell(record, accuracy):
        spec = record["spec"]
        return {"target_label": f"digits {spec['identity']['target']['params']}", "strategy": "ft",
                "baseline": False, "n_seeds": 1, "test_mean": accuracy,
                "target_identity": target_identity_of(spec), "source_identity": source_identity_of(spec)}

    # accuracies rank a > b on both configurations: 5 shots agrees with nothing, 50 shots fully
    cells = pd.DataFrame([cell(records[0], 0.9), cell(records[1], 0.8), cell(records[2], 0.7),
                          cell(records[3], 0.6)])
    taus = correlation_table(scores, cells).set_index("target")["kendall_tau"]
    assert taus["digits {'shots': 5}"] == -1.0
    assert taus["digits {'shots': 50}"] == 1.0


def test_logme_with_fewer_examples_than_feature_dimensions_is_the_evidence_maximum():
    """15 examples, 96 feature dimensions (a pretrained test_resnet's features of 5 shots
    of 3 digits): every one-hot column lies in the features' span, so the evidence of a
    class rises towards its noiseless limit as beta grows. The fixed-point iteration
    must end near that supremum, not run off to alpha = 0 (a score of -inf)."""
    import numpy as np

    from conftest import REPO
    from tlbench_builtin.transferability import _evidence, _spectrum, logme

    data = np.load(REPO / "tests" / "data" / "logme-few-examples.npz")
    features, labels = data["features"], data["labels"]
    n, d = features.shape
    targets = (labels[:, None] == np.unique(labels)[None, :]).astype(np.float64)
    sigma, z = _spectrum(features, targets)
    outside = np.maximum((targets ** 2).sum(0) - (z ** 2).sum(0), 0.0)
    alphas, betas = np.meshgrid(np.logspace(-4, 10, 120), np.logspace(-2, 8, 120))
    best = [max(_evidence(sigma, z[:, [k]], outside[[k]], np.array([a]), np.array([b]), n, d)[0]
                for a, b in zip(alphas.ravel(), betas.ravel())) for k in range(targets.shape[1])]
    score = logme(features, labels)
    assert np.isfinite(score)
    assert score == pytest.approx(np.mean(best) / n, abs=2e-3)
