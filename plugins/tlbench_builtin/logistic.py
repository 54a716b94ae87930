"""L2-regularised multinomial logistic regression on frozen features, on any device.

The objective is scikit-learn's (``LogisticRegression(C=1 / (l2 · n))`` on standardised
features): mean cross-entropy + ``l2/2 ‖W‖²``, the bias unpenalised. It is minimised
by a compact L-BFGS with an Armijo backtracking line search and closed-form gradients
(a handful of tensor operations per step, so it runs as well on a GPU as on a CPU),
warm-started along a path from strong to weak regularisation; the strength with the
best validation accuracy wins (the stronger one on ties). The standardisation is
folded back into the weights, so the result is an ordinary linear head over raw
features.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch


@dataclass
class LogisticFit:
    weight: np.ndarray  # (num_classes, dim), over raw features
    bias: np.ndarray    # (num_classes,)
    l2: float
    val_accuracy: dict[float, float | None]
    iterations: int
    """L-BFGS iterations over the whole regularisation path."""
    converged: dict[float, bool] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"l2": self.l2, "val_accuracy_by_l2": {repr(k): v for k, v in self.val_accuracy.items()},
                "iterations": self.iterations,
                "converged_by_l2": {repr(k): v for k, v in self.converged.items()}}


class _Objective:
    """Mean cross-entropy + l2/2 ‖W‖² over θ = [W; b] ((dim + 1) × classes), with gradient."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int):
        self.x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], 1)
        self.onehot = torch.nn.functional.one_hot(y, num_classes).to(x.dtype)
        self.mask = torch.ones(self.x.shape[1], 1, dtype=x.dtype, device=x.device)
        self.mask[-1] = 0  # the bias row is not penalised
        self.l2 = 0.0

    def __call__(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.x @ theta
        log_norm = torch.logsumexp(logits, 1, keepdim=True)
        n = len(self.x)
        penalised = theta * self.mask
        loss = (log_norm.sum() - (logits * self.onehot).sum()) / n + 0.5 * self.l2 * (penalised * penalised).sum()
        grad = self.x.T @ (torch.exp(logits - log_norm) - self.onehot) / n + self.l2 * penalised
        return loss, grad


def _lbfgs(objective: _Objective, theta: torch.Tensor, max_iter: int, tol: float, memory: int,
           check: Callable[[], None]) -> tuple[torch.Tensor, int, bool]:
    """Minimise from `theta` until max |gradient| <= tol; (θ, iterations, converged).

    Vectors are kept flat and scalars as Python floats, so one iteration is a few dozen
    small operations: on few-shot problems their overhead, not arithmetic, is the cost.
    """
    shape = theta.shape
    x = theta.reshape(-1).clone()
    loss, grad = objective(x.view(shape))
    loss, grad = float(loss), grad.reshape(-1)
    pairs: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # (s, y, 1 / s·y), oldest first
    for iteration in range(max_iter):
        if float(grad.abs().max()) <= tol:
            return x.view(shape), iteration, True
        if iteration % 25 == 24:
            check()
        # two-loop recursion: direction = -H·grad
        q = grad.clone()
        alphas = []
        for s, y, rho in reversed(pairs):
            a = rho * float(torch.dot(s, q))
            q.add_(y, alpha=-a)
            alphas.append(a)
        if pairs:
            s, y, rho = pairs[-1]
            q.mul_(1.0 / (rho * float(torch.dot(y, y))))  # H0 = (s·y / y·y) I
        else:
            q.div_(max(float(torch.linalg.vector_norm(grad)), 1e-12))  # a first step of unit length
        for (s, y, rho), a in zip(pairs, reversed(alphas)):
            q.add_(s, alpha=a - rho * float(torch.dot(y, q)))
        q.neg_()
        slope = float(torch.dot(grad, q))
        if slope >= 0:  # not a descent direction: restart from the gradient
            pairs.clear()
            q, slope = -grad, -float(torch.dot(grad, grad))
        step = 1.0
        for _ in range(30):  # Armijo backtracking
            candidate = x + step * q
            new_loss, new_grad = objective(candidate.view(shape))
            new_loss = float(new_loss)
            if new_loss <= loss + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            return x.view(shape), iteration, False  # no decrease possible at this precision
        new_grad = new_grad.reshape(-1)
        s, y = candidate - x, new_grad - grad
        sy = float(torch.dot(s, y))
        if sy > 1e-10 * float(torch.dot(y, y)):
            pairs.append((s, y, 1.0 / sy))
            if len(pairs) > memory:
                pairs.pop(0)
        decrease = loss - new_loss
        x, loss, grad = candidate, new_loss, new_grad
        if decrease <= 1e-12 * max(abs(loss), 1.0):
            return x.view(shape), iteration + 1, float(grad.abs().max()) <= tol
    return x.view(shape), max_iter, float(grad.abs().max()) <= tol


@contextlib.contextmanager
def _threads_for(work: int, device: torch.device):
    """One CPU thread for small problems: thread start-up costs more than the work."""
    if device.type != "cpu" or work > 1 << 22:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_logistic(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                 num_classes: int, *, l2_grid, max_iter: int = 200, tol: float = 1e-4,
                 device: torch.device = torch.device("cpu"),
                 check: Callable[[], None] = lambda: None) -> LogisticFit:
    """Fit along `l2_grid` (strong to weak), keep the strength with the best val accuracy."""
    if not l2_grid or not all(l2 > 0 for l2 in l2_grid):
        raise ValueError(f"l2_grid must be a non-empty list of positive strengths, got {list(l2_grid)!r}")
    device = torch.device(device)
    # float64 where it is cheap (the CPU), so `tol` is always reachable; float32 on accelerators,
    # where the solve stops early only once no decrease is measurable
    dtype = torch.float64 if device.type == "cpu" else torch.float32
    with _threads_for(train_x.shape[0] * train_x.shape[1], device):
        x = torch.tensor(train_x, dtype=dtype, device=device)
        y = torch.as_tensor(np.asarray(train_y), dtype=torch.long, device=device)
        mean = x.mean(0)
        std = x.std(0, unbiased=False).clamp_min(1e-6)
        objective = _Objective((x - mean) / std, y, num_classes)
        vx = (torch.tensor(val_x, dtype=dtype, device=device) - mean) / std if len(val_y) else None
        vy = torch.as_tensor(np.asarray(val_y), dtype=torch.long, device=device)
        theta = torch.zeros(x.shape[1] + 1, num_classes, dtype=dtype, device=device)
        best, scores, converged, iterations = None, {}, {}, 0
        for l2 in sorted(l2_grid, reverse=True):
            objective.l2 = l2
            theta, used, converged[l2] = _lbfgs(objective, theta, max_iter, tol, 10, check)
            iterations += used
            score = None
            if vx is not None:
                score = float(((vx @ theta[:-1] + theta[-1]).argmax(1) == vy).double().mean())
            scores[l2] = score
            if best is None or (score is not None and score > best[0]):
                best = (score if score is not None else -1.0, l2, theta.clone())
            if vx is None:
                break  # nothing to select on: keep the strongest regularisation
        _, l2, theta = best
        weight = (theta[:-1] / std[:, None]).T
        bias = theta[-1] - weight @ mean
    return LogisticFit(weight=weight.cpu().numpy(), bias=bias.cpu().numpy(), l2=l2,
                       val_accuracy=scores, iterations=iterations, converged=converged)
