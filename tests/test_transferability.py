"""Transferability scores against independent computations from the published formulas."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy.optimize import minimize

from tlbench_builtin.transferability import h_score, leep, logme, nce


def _data(n=60, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    features = rng.normal(size=(n, d)) + 1.5 * np.eye(k, d)[labels]
    return features, labels


def direct_evidence(f, y, alpha, beta):
    """log p(y | F, alpha, beta) of Bayesian linear regression, written out as in the paper."""
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ y)
    return (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - n / 2 * math.log(2 * math.pi)
            - beta / 2 * np.sum((f @ m - y) ** 2) - alpha / 2 * m @ m - np.linalg.slogdet(a)[1] / 2)


@pytest.mark.parametrize("shape", [(60, 5), (12, 20)])  # more examples than features, and fewer
def test_logme_is_the_maximised_evidence(shape):
    f, labels = _data(*shape)
    expected = []
    for c in np.unique(labels):
        y = (labels == c).astype(float)
        best = minimize(lambda p: -direct_evidence(f, y, math.exp(p[0]), math.exp(p[1])), x0=[0.0, 0.0],
                        method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000})
        expected.append(-best.fun / len(y))
    assert logme(f, labels) == pytest.approx(np.mean(expected), abs=1e-5)


def test_logme_and_h_score_ignore_class_names():
    f, labels = _data()
    relabelled = np.array([7, 2, 5])[labels]
    assert logme(f, relabelled) == pytest.approx(logme(f, labels), rel=1e-9)
    assert h_score(f, relabelled) == pytest.approx(h_score(f, labels), rel=1e-9)


def test_logme_prefers_informative_features():
    f, labels = _data()
    noise = np.random.default_rng(1).normal(size=f.shape)
    assert logme(f, labels) > logme(noise, labels)
    assert h_score(f, labels) > h_score(noise, labels)


def test_h_score_formula():
    f, labels = _data()
    cov_f = np.cov(f, rowvar=False, bias=True)
    class_means = {c: f[labels == c].mean(0) for c in np.unique(labels)}
    g = np.stack([class_means[c] for c in labels])
    cov_g = np.cov(g, rowvar=False, bias=True)
    assert h_score(f, labels) == pytest.approx(np.trace(np.linalg.inv(cov_f) @ cov_g), rel=1e-9)


def test_leep_formula_and_sign():
    rng = np.random.default_rng(2)
    n, z_classes = 40, 4
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, z_classes)) + 2 * np.eye(3, z_classes)[labels]
    theta = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    joint = {(y, z): sum(theta[i, z] for i in range(n) if labels[i] == y) / n
             for y in range(3) for z in range(z_classes)}
    marginal = {z: sum(joint[(y, z)] for y in range(3)) for z in range(z_classes)}
    expected = np.mean([math.log(sum(joint[(labels[i], z)] / marginal[z] * theta[i, z]
                                     for z in range(z_classes))) for i in range(n)])
    assert leep(theta, labels) == pytest.approx(expected, rel=1e-12)
    assert leep(theta, labels) <= 0


def test_nce_formula_and_sign():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 50)
    source = (labels + (rng.random(50) < 0.3)) % 4
    n = len(labels)
    pairs, zs = Counter(zip(labels, source)), Counter(source)
    expected = sum(c / n * math.log(c / zs[z]) for (y, z), c in pairs.items())
    assert nce(source, labels) == pytest.approx(expected, rel=1e-12)
    assert nce(source, labels) <= 0
    assert nce(labels, labels) == pytest.approx(0.0, abs=1e-12)  # a perfect source: no uncertainty left


def _weighted_tau_by_hand(x, y):
    """Vigna's weighted tau without ties: hyperbolic weight 1/(r+1) on ranks by decreasing
    importance, each pair weighted by the sum of its members' weights; averaged over
    ranking by x and by y (scipy's default)."""
    def one(order_by):
        rank = {i: r for r, i in enumerate(sorted(range(len(x)), key=lambda i: -order_by[i]))}
        num = den = 0.0
        for i in range(len(x)):
            for j in range(i + 1, len(x)):
                weight = 1 / (rank[i] + 1) + 1 / (rank[j] + 1)
                num += weight * np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
                den += weight
        return num / den

    return (one(x) + one(y)) / 2


def test_weighted_tau_against_scipy_and_the_report():
    import pandas as pd
    from scipy.stats import weightedtau

    from tlbench.report.estimates import correlation_table

    scores = np.array([0.9, 0.1, 0.5, 0.7, 0.3])
    accuracy = np.array([0.8, 0.3, 0.6, 0.5, 0.2])
    expected = _weighted_tau_by_hand(scores, accuracy)
    assert weightedtau(scores, accuracy).statistic == pytest.approx(expected, rel=1e-12)
    sources = list("abcde")
    score_table = pd.DataFrame({"target": "t", "source": sources, "estimator": "logme", "mean_score": scores,
                                "n_seeds": 3, "not_applicable": False, "target_identity": "t#",
                                "source_identity": [f"{s}#" for s in sources]})
    cells = pd.DataFrame({"target_label": "t", "target_identity": "t#", "source": sources,
                          "source_identity": [f"{s}#" for s in sources], "strategy": "ft", "baseline": False,
                          "n_seeds": 3, "test_mean": accuracy})
    [row] = correlation_table(score_table, cells).to_dict("records")
    assert row["weighted_tau"] == pytest.approx(expected, rel=1e-12)
    assert row["kendall_tau"] == pytest.approx(0.6)  # 8 concordant, 2 discordant pairs of 10
    assert row["n_sources"] == 5
