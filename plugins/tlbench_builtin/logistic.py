"""L2-regularised multinomial logistic regression on standardised features, and the
L-BFGS that minimises it and the other logistic probes (`linear_solvers`), on any device.

The objective is scikit-learn's (``LogisticRegression(C=1 / (l2 · n))`` on standardised
features): mean cross-entropy + ``l2/2 ‖W‖²``, the bias unpenalised. It is minimised
by a compact L-BFGS with an Armijo backtracking line search and closed-form gradients
(a handful of tensor operations per step, so it runs as well on a GPU as on a CPU).
`linear_solvers.fit_probe` warm-starts it along a path of strengths and selects one.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch


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
