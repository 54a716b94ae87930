"""The linear-probe solvers of every task type (plugins/tlbench_builtin/linear_solvers.py):
each against scikit-learn's fit of the same objective, the selection along the strength
path, the folding of the standardisation, the budget callback and degenerate features;
the logistic ones on both array backends (numpy: the CPU path; torch: the GPU path, run
here on the CPU in float64), which must agree."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from tlbench_builtin.linear_solvers import fit_probe


def features(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Features on unequal scales and offsets, so the standardisation matters."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d) + rng.normal(size=d)


def multilabel(x: np.ndarray, labels: int, seed: int = 1) -> np.ndarray:
    """A noisy 0/1 matrix (n, labels) that depends on a few features; every label has both values."""
    rng = np.random.default_rng(seed)
    scores = StandardScaler().fit_transform(x)[:, :4] @ rng.normal(size=(4, labels)) + rng.normal(size=(len(x), labels))
    return (scores > np.median(scores, 0)).astype(float)


def targets(x: np.ndarray, outputs: int | None, seed: int = 2) -> np.ndarray:
    """Standardised regression targets, (n,) when `outputs` is None, else (n, outputs)."""
    rng = np.random.default_rng(seed)
    y = x[:, :5] @ rng.normal(size=(5, outputs or 1)) + rng.normal(size=(len(x), outputs or 1))
    y = (y - y.mean(0)) / y.std(0)
    return y[:, 0] if outputs is None else y


def raw_head(coef: np.ndarray, intercept: np.ndarray, scaler: StandardScaler) -> tuple[np.ndarray, np.ndarray]:
    """A head fitted on standardised features, as weights and bias over raw features."""
    weight = np.atleast_2d(coef) / scaler.scale_
    return weight, np.atleast_1d(intercept) - weight @ scaler.mean_


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


# ---------------------------------------------------------------------- against scikit-learn


BACKENDS = ["numpy", "torch"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n, d", [(80, 10), (24, 60)])
def test_sigmoid_matches_sklearn_per_label(n, d, backend):
    x = features(n, d)
    y = multilabel(x, 3)
    l2 = 0.01
    ours = fit_probe(x, y, x[:0], None, loss="sigmoid", l2_grid=[l2], max_iter=2000, tol=1e-7,
                     backend_name=backend)
    assert ours.converged[l2]
    scaler = StandardScaler().fit(x)
    for label in range(y.shape[1]):
        reference = LogisticRegression(C=1 / (l2 * n), tol=1e-12, max_iter=10000)
        reference.fit(scaler.transform(x), y[:, label])
        weight, bias = raw_head(reference.coef_, reference.intercept_, scaler)
        np.testing.assert_allclose(ours.weight[label], weight[0], atol=1e-4)
        np.testing.assert_allclose(ours.bias[label], bias[0], atol=1e-4)
        np.testing.assert_allclose(sigmoid(x @ ours.weight[label] + ours.bias[label]),
                                   reference.predict_proba(scaler.transform(x))[:, 1], atol=1e-4)


@pytest.mark.parametrize("outputs", [None, 3])
@pytest.mark.parametrize("n, d", [(70, 12), (20, 50)])
@pytest.mark.parametrize("l2", [1e-3, 1.0])
def test_ridge_matches_sklearn(n, d, outputs, l2):
    x = features(n, d)
    y = targets(x, outputs)
    ours = fit_probe(x, y, x[:0], None, loss="squared", l2_grid=[l2])
    scaler = StandardScaler().fit(x)
    # 1/(2n) ‖y - Xw - b‖² + l2/2 ‖w‖²  =  (‖y - Xw - b‖² + n·l2 ‖w‖²) / 2n
    reference = Ridge(alpha=l2 * n).fit(scaler.transform(x), y)
    weight, bias = raw_head(reference.coef_, reference.intercept_, scaler)
    np.testing.assert_allclose(ours.weight, weight, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.bias, bias, rtol=1e-8, atol=1e-10)
    assert ours.weight.shape == (outputs or 1, d) and ours.iterations == {l2: 0} and ours.converged == {l2: True}


# ---------------------------------------------------------------------- selection


def scripted(scores):
    """A val_score that returns `scores` in turn, one per strength (strongest first)."""
    remaining = iter(scores)
    return lambda predictions: next(remaining)


@pytest.mark.parametrize("loss", ["sigmoid", "squared"])
@pytest.mark.parametrize("scores, chosen", [
    ([0.5, 0.7, 0.6], 1e-2),    # the best wins
    ([0.5, 0.7, 0.7], 1e-2),    # a tie goes to the stronger strength
    ([0.9, 0.9, 0.9], 1e-1),
    ([None, -3.0, -4.0], 1e-2),  # an unscored strength cannot win, whatever the sign of the others
    ([None, None, None], 1e-1),  # nothing scored: the strongest
])
def test_the_best_val_score_wins_ties_to_the_stronger(loss, scores, chosen):
    x = features(30, 6)
    y = multilabel(x, 2) if loss == "sigmoid" else targets(x, 2)
    fit = fit_probe(x, y, x, scripted(scores), loss=loss, l2_grid=[1e-3, 1e-1, 1e-2])  # any order
    assert fit.l2 == chosen
    assert fit.val_score == dict(zip([1e-1, 1e-2, 1e-3], scores))
    alone = fit_probe(x, y, x[:0], None, loss=loss, l2_grid=[chosen], tol=1e-7, max_iter=1000)
    np.testing.assert_allclose(fit.weight, alone.weight, atol=1e-3)  # the weights are the chosen strength's


@pytest.mark.parametrize("loss", ["sigmoid", "squared"])
def test_no_validation_split_fits_only_the_strongest(loss):
    x = features(30, 6)
    y = multilabel(x, 2) if loss == "sigmoid" else targets(x, None)
    for val_x, val_score in [(x[:0], scripted([1.0])), (x, None)]:
        fit = fit_probe(x, y, val_x, val_score, loss=loss, l2_grid=[1e-2, 1e-1, 1e-3])
        assert fit.l2 == 1e-1 and fit.val_score == {1e-1: None} and list(fit.converged) == [1e-1]


def test_ridge_selects_on_the_headline_metric():
    """With a clean signal and many examples, R² prefers weak strengths; with pure noise, strong."""
    x, vx = features(200, 20), features(100, 20, seed=7)
    w = np.random.default_rng(4).normal(size=20)

    def r2(y):
        return lambda predictions: 1 - ((predictions[:, 0] - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()

    grid = [1e1, 1e-1, 1e-3]
    assert fit_probe(x, x @ w, vx, r2(vx @ w), loss="squared", l2_grid=grid).l2 == 1e-3
    noise = np.random.default_rng(5)
    assert fit_probe(x, noise.normal(size=200), vx, r2(noise.normal(size=100)), loss="squared",
                     l2_grid=grid).l2 == 1e1


# ---------------------------------------------------------------------- the fitted head


@pytest.mark.parametrize("loss, backend", [("softmax", "numpy"), ("softmax", "torch"), ("sigmoid", "numpy"),
                                           ("sigmoid", "torch"), ("squared", None)])
def test_raw_weights_predict_what_the_standardised_ones_do(loss, backend):
    x, vx = features(40, 8), features(25, 8, seed=9)
    y = {"softmax": np.arange(40) % 3, "sigmoid": multilabel(x, 2), "squared": targets(x, 2)}[loss]
    seen = []
    fit = fit_probe(x, y, vx, lambda predictions: seen.append(predictions), loss=loss, l2_grid=[1e-2],
                    num_classes=3, backend_name=backend)
    assert isinstance(seen[0], np.ndarray) and fit.weight.dtype == fit.bias.dtype == np.float64
    np.testing.assert_allclose(vx @ fit.weight.T + fit.bias, seen[0], rtol=1e-10, atol=1e-10)
    assert json.loads(json.dumps(fit.to_json())) == {
        "l2": 1e-2, "val_score_by_l2": {"0.01": None}, "iterations": fit.iterations[1e-2],
        "iterations_by_l2": {"0.01": fit.iterations[1e-2]}, "converged_by_l2": {"0.01": fit.converged[1e-2]}}


@pytest.mark.parametrize("loss", ["softmax", "sigmoid", "squared"])
@pytest.mark.parametrize("n, d", [(40, 8), (10, 30)])
def test_a_constant_feature_gets_no_weight(loss, n, d):
    x = features(n, d)
    x[:, 2] = 3.0
    y = {"softmax": np.arange(n) % 3, "sigmoid": multilabel(x, 2), "squared": targets(x, 2)}[loss]
    fit = fit_probe(x, y, x, lambda predictions: 0.0, loss=loss, l2_grid=[1e-1, 1e-3], num_classes=3)
    assert np.isfinite(fit.weight).all() and np.isfinite(fit.bias).all()
    np.testing.assert_allclose(fit.weight[:, 2], 0, atol=1e-6)  # its std is clamped at 1e-6, not 0
    assert all(fit.converged.values())


def test_a_label_that_is_never_positive_is_fitted():
    x = features(30, 6)
    y = multilabel(x, 2)
    y[:, 1] = 0
    fit = fit_probe(x, y, x[:0], None, loss="sigmoid", l2_grid=[1e-2])
    assert fit.converged[1e-2] and np.isfinite(fit.bias).all()
    assert (sigmoid(x @ fit.weight[1] + fit.bias[1]) < 1e-3).all()


# ---------------------------------------------------------------------- budget and misuse


@pytest.mark.parametrize("backend", BACKENDS)
def test_long_sigmoid_solves_call_the_budget_check(backend):
    x = features(60, 40)
    y = multilabel(x, 3)
    calls = []
    fit = fit_probe(x, y, x[:0], None, loss="sigmoid", l2_grid=[1e-5], max_iter=300, tol=1e-10,
                    check=lambda: calls.append(1), backend_name=backend)
    assert fit.iterations[1e-5] > 50 and len(calls) >= 1 + fit.iterations[1e-5] // 25

    def over_budget():
        if len(calls) > 3:
            raise TimeoutError("over budget")
        calls.append(1)

    calls.clear()
    with pytest.raises(TimeoutError):
        fit_probe(x, y, x[:0], None, loss="sigmoid", l2_grid=[1e-5], max_iter=300, tol=1e-10, check=over_budget,
                  backend_name=backend)


@pytest.mark.parametrize("kwargs, message", [
    ({"loss": "hinge", "l2_grid": [1e-2]}, "loss must be one of"),
    ({"loss": "squared", "l2_grid": []}, "non-empty list of positive"),
    ({"loss": "squared", "l2_grid": [1e-2, 0.0]}, "non-empty list of positive"),
    ({"loss": "softmax", "l2_grid": [1e-2]}, "needs num_classes"),
    ({"loss": "sigmoid", "l2_grid": [1e-2]}, "0/1 matrix"),
    ({"loss": "sigmoid", "l2_grid": [1e-2], "backend_name": "jax"}, "backend must be"),
    ({"loss": "sigmoid", "l2_grid": [1e-2], "device": "cuda", "backend_name": "numpy"}, "CPU only"),
])
def test_misuse_is_refused(kwargs, message):
    x = features(10, 3)
    with pytest.raises(ValueError, match=message):
        fit_probe(x, np.arange(10) % 2, x[:0], None, **kwargs)


# ---------------------------------------------------------------------- backends


def test_the_cpu_runs_on_numpy_and_a_gpu_on_torch():
    """The CPU path is numpy/OpenBLAS whatever torch's BLAS is (torch's MKL is slow
    on CPUs it does not optimise for); anything else stays on torch."""
    from tlbench_builtin.logistic import backend

    assert backend("cpu").name == "numpy"
    assert backend("cuda").name == backend("cuda:1").name == "torch"
    assert backend("cpu", "torch").name == "torch" and backend("cpu", "torch").dtype.is_floating_point


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_both_backends_reach_the_same_probe(loss):
    x, vx = features(60, 20), features(30, 20, seed=3)
    y = np.arange(60) % 4 if loss == "softmax" else multilabel(x, 3)
    fits = [fit_probe(x, y, vx, lambda outputs: float(outputs[:, 0].mean()), loss=loss, num_classes=4,
                      l2_grid=[1e-1, 1e-2], tol=1e-6, max_iter=1000, backend_name=backend)
            for backend in BACKENDS]
    assert fits[0].l2 == fits[1].l2 and all(fits[0].converged.values()) and all(fits[1].converged.values())
    np.testing.assert_allclose(fits[0].weight, fits[1].weight, atol=1e-6)
    np.testing.assert_allclose(fits[0].bias, fits[1].bias, atol=1e-6)


@pytest.mark.parametrize("loss", ["softmax", "sigmoid", "squared"])
def test_small_problems_run_on_one_blas_thread_and_restore_the_count(loss):
    from threadpoolctl import threadpool_info, threadpool_limits

    x = features(30, 6)
    y = {"softmax": np.arange(30) % 3, "sigmoid": multilabel(x, 2), "squared": targets(x, None)}[loss]
    inside = []

    def score(outputs):
        inside.append({info["filepath"]: info["num_threads"] for info in threadpool_info()
                       if info["user_api"] == "blas"})
        return 0.0

    with threadpool_limits(2, user_api="blas"):
        fit_probe(x, y, x, score, loss=loss, num_classes=3, l2_grid=[1e-2])
        after = {info["filepath"]: info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}
    assert inside and set(inside[0].values()) == {1}
    assert set(after.values()) == {2}


def test_the_torch_entry_points_of_other_plugins_keep_their_shapes():
    """`logistic._Objective` and `_lbfgs` take and give torch tensors θ of shape (dim + 1) ×
    classes, as before the backends (domain_selection.py fits density ratios with them)."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from tlbench_builtin.logistic import _lbfgs, _Objective

    z = StandardScaler().fit_transform(features(50, 5))
    y = (z[:, 0] + z[:, 1] > 0).astype(np.int64)
    objective = _Objective(torch.from_numpy(z), torch.from_numpy(y), 2)
    objective.l2 = 0.01
    theta, used, converged = _lbfgs(objective, torch.zeros(6, 2, dtype=torch.float64), 500, 1e-6, 10, lambda: None)
    assert isinstance(theta, torch.Tensor) and theta.shape == (6, 2) and converged and used > 0
    # two-class softmax: w1 = -w0 at the optimum, so the log-odds w1 - w0 carry half the penalty
    reference = LogisticRegression(C=2 / (0.01 * 50), tol=1e-12, max_iter=10000).fit(z, y)
    log_odds = z @ (theta[:-1, 1] - theta[:-1, 0]).numpy() + float(theta[-1, 1] - theta[-1, 0])
    np.testing.assert_allclose(log_odds, reference.decision_function(z), atol=1e-4)
