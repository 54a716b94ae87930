"""Linear probes for every task type: one entry point, one solver per loss.

A linear probe fits a linear head on frozen features, its L2 strength chosen on the
validation split. Every task type whose head is linear with a standard loss
(`Task.linear_loss`) needs the same recipe with its own loss, so `fit_probe` runs all three:

- ``"softmax"`` (classification, ``train_y`` class ids): logistic.py's multinomial
  objective and L-BFGS (with ``val_score`` = accuracy of the argmax, tlbench 0.1's
  probe; its CPU path moved from torch to numpy, which changed the last bits).
- ``"sigmoid"`` (multilabel, ``train_y`` a 0/1 matrix (n, K)): K independent binary
  logistic regressions, ``Σ_labels [mean_examples BCE + l2/2 ‖w_label‖²]``. The sum
  over labels separates, so each label's weights are scikit-learn's
  ``LogisticRegression(C=1 / (l2 · n))`` fitted on that label alone, and each label's
  block of the gradient is that label's own, so ``tol`` means per label what it means in
  the softmax case. Same L-BFGS as logistic.py, warm-started from strong to weak.
- ``"squared"`` (regression, ``train_y`` standardised targets (n,) or (n, k)): ridge,
  ``1/(2n) Σ_examples ‖y - W x - b‖² + l2/2 ‖W‖²``, i.e. scikit-learn's
  ``Ridge(alpha=l2 · n)`` on each target. Solved in closed form for every strength at
  once from one eigendecomposition of the smaller Gram matrix (d × d or n × n), always
  in float64 with numpy on the CPU: it is cheap there, and float32 would lose the weak
  strengths.

Every solver works on standardised features (std clamped at 1e-6, as logistic.py does),
leaves the bias unpenalised and folds the standardisation back into the weights, so the
result is an ordinary linear head over raw features. Strengths run from strong to weak;
the one whose validation predictions (the raw linear outputs ``x @ W.T + b``) score best
under ``val_score`` (higher is better) wins, the stronger on ties, the strongest when
there is nothing to score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .logistic import Objective, backend, lbfgs, threads_for

LOSSES = ("softmax", "sigmoid", "squared")

Solver = Callable[[float], tuple[object, int, bool]]
"""l2 -> (θ = [W; b] ((dim + 1) × outputs) on standardised features, iterations, converged)."""


@dataclass
class ProbeFit:
    weight: np.ndarray  # (outputs, dim), over raw features
    bias: np.ndarray    # (outputs,)
    l2: float
    val_score: dict[float, float | None]
    """The validation score of each strength tried (None: nothing to score)."""
    iterations: dict[float, int]
    """L-BFGS iterations per strength (0 for the closed-form ridge)."""
    converged: dict[float, bool]

    def to_json(self) -> dict:
        return {"l2": self.l2, "val_score_by_l2": {repr(k): v for k, v in self.val_score.items()},
                "iterations": sum(self.iterations.values()),
                "iterations_by_l2": {repr(k): v for k, v in self.iterations.items()},
                "converged_by_l2": {repr(k): v for k, v in self.converged.items()}}


class _WarmStarted:
    """L-BFGS along the path: each strength starts from the previous strength's solution."""

    def __init__(self, ops, objective: Objective, max_iter: int, tol: float, check: Callable[[], None]):
        self.ops, self.objective, self.max_iter, self.tol, self.check = ops, objective, max_iter, tol, check
        self.theta = ops.zeros(objective.x.shape[1] * objective.outputs)

    def __call__(self, l2: float) -> tuple[object, int, bool]:
        self.objective.l2 = l2
        self.theta, used, converged = lbfgs(self.ops, self.objective, self.theta, self.max_iter, self.tol, 10,
                                            self.check)
        return self.theta.reshape(-1, self.objective.outputs), used, converged


class _RidgePath:
    """Ridge for any strength from one eigendecomposition of the centred Gram matrix.

    With X centred (n × d) and y centred, the minimiser is W.T = (XᵀX + n·l2·I)⁻¹ Xᵀy
    = Xᵀ(XXᵀ + n·l2·I)⁻¹ y. Both are ``basis @ (coef / (λ + n·l2))``: with XᵀX = VΛVᵀ,
    basis = V and coef = VᵀXᵀy; with XXᵀ = UΛUᵀ, basis = XᵀU and coef = Uᵀy. The
    smaller of the two Gram matrices is decomposed; a strength then costs one product.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray):
        n, d = x.shape
        self.n, self.offset = n, y.mean(0)
        y = y - self.offset
        if d <= n:
            eigenvalues, vectors = np.linalg.eigh(x.T @ x)
            self.basis, self.coef = vectors, vectors.T @ (x.T @ y)
        else:
            eigenvalues, vectors = np.linalg.eigh(x @ x.T)
            self.basis, self.coef = x.T @ vectors, vectors.T @ y
        self.eigenvalues = np.maximum(eigenvalues, 0)[:, None]  # rounding can leave them at -1e-12

    def __call__(self, l2: float) -> tuple[object, int, bool]:
        weight = self.basis @ (self.coef / (self.eigenvalues + self.n * l2))
        return np.concatenate([weight, self.offset[None]]), 0, True


def _solver(ops, loss: str, x, train_y, num_classes: int | None, max_iter: int, tol: float,
            check: Callable[[], None]) -> Solver:
    """The solver of `loss` on the standardised training features `x` (a backend array)."""
    if loss == "softmax":
        if num_classes is None:
            raise ValueError("loss='softmax' needs num_classes")
        onehot = np.eye(num_classes)[np.asarray(train_y, dtype=np.int64)]
        return _WarmStarted(ops, Objective(ops, x, ops.asarray(onehot), ops.softmax_terms), max_iter, tol, check)
    y = np.asarray(train_y, dtype=np.float64)
    if loss == "sigmoid":
        if y.ndim != 2:
            raise ValueError(f"loss='sigmoid' needs a 0/1 matrix (n, labels) as train_y, got shape {y.shape}")
        return _WarmStarted(ops, Objective(ops, x, ops.asarray(y), ops.sigmoid_terms), max_iter, tol, check)
    return _RidgePath(x, y.reshape(len(y), -1))  # x is numpy: fit_probe runs "squared" there


def _select(ops, solve: Solver, l2_grid, vx, val_score, check: Callable[[], None]):
    """Solve from strong to weak; keep the best-scoring strength (the stronger on ties, the
    strongest when nothing is scored). Returns (θ, l2, scores, iterations, converged)."""
    best, scores, iterations, converged = None, {}, {}, {}
    for l2 in sorted(l2_grid, reverse=True):
        check()
        theta, iterations[l2], converged[l2] = solve(l2)  # a fresh array each time
        score = None
        if vx is not None:
            score = val_score(ops.to_numpy(vx @ theta[:-1] + theta[-1]))
            score = None if score is None else float(score)
        scores[l2] = score
        if best is None or (score is not None and score > best[0]):
            best = (score if score is not None else -np.inf, l2, theta)
        if vx is None:
            break  # nothing to select on: keep the strongest regularisation
    _, l2, theta = best
    return theta, l2, scores, iterations, converged


def fit_probe(train_x: np.ndarray, train_y, val_x: np.ndarray,
              val_score: Callable[[np.ndarray], float | None] | None, *, loss: str, l2_grid,
              num_classes: int | None = None, max_iter: int = 200, tol: float = 1e-4,
              device="cpu", check: Callable[[], None] = lambda: None,
              backend_name: str | None = None) -> ProbeFit:
    """Fit a linear probe of `loss` along `l2_grid`; keep the strength whose validation
    predictions `val_score` rates highest.

    `train_y`: class ids ("softmax", which also needs `num_classes`), a 0/1 matrix (n, K)
    ("sigmoid"), standardised targets (n,) or (n, k) ("squared"; 1-d targets give one
    output). `val_score` gets the raw linear outputs on `val_x`, shape (n_val, outputs),
    and returns a higher-is-better score or None; with no validation rows or no
    `val_score`, only the strongest strength is fitted. `max_iter` and `tol` (largest
    gradient component) bound each L-BFGS solve; `check` is called between strengths and
    every 25 L-BFGS iterations, and may raise to stop the fit.

    "softmax" and "sigmoid" run on `device`: in float64 with numpy and OpenBLAS on the CPU
    (where `tol` is always reachable), in float32 with torch elsewhere; `backend_name`
    ("numpy" or "torch") overrides the choice, e.g. to run the GPU code on the CPU in
    float64. "squared" always runs in float64 with numpy on the CPU. Small problems run
    on one BLAS thread.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if not l2_grid or not all(l2 > 0 for l2 in l2_grid):
        raise ValueError(f"l2_grid must be a non-empty list of positive strengths, got {list(l2_grid)!r}")
    ops = backend("cpu", "numpy") if loss == "squared" else backend(device, backend_name)
    with threads_for(train_x.shape[0] * train_x.shape[1], ops):
        x = ops.asarray(train_x)
        mean = x.mean(0)
        std = ops.clamp_min(ops.std(x), 1e-6)
        solve = _solver(ops, loss, (x - mean) / std, train_y, num_classes, max_iter, tol, check)
        vx = None
        if len(val_x) and val_score is not None:
            vx = (ops.asarray(val_x) - mean) / std
        theta, l2, scores, iterations, converged = _select(ops, solve, l2_grid, vx, val_score, check)
        weight = (theta[:-1] / std[:, None]).T
        bias = theta[-1] - weight @ mean
    return ProbeFit(weight=np.ascontiguousarray(ops.to_numpy(weight)), bias=ops.to_numpy(bias), l2=l2,
                    val_score=scores, iterations=iterations, converged=converged)
