"""L2-regularised logistic objectives on standardised features, the L-BFGS that minimises
them (`linear_solvers.fit_probe` warm-starts it along a path of strengths), and the two
array backends they run on.

The multinomial objective is scikit-learn's (``LogisticRegression(C=1 / (l2 · n))`` on
standardised features): mean cross-entropy + ``l2/2 ‖W‖²``, the bias unpenalised; the
multi-label one is its binary form summed over labels. Both are minimised by a compact
L-BFGS with an Armijo backtracking line search and closed-form gradients.

The same objective and L-BFGS code runs on either backend (`Numpy`, `Torch`): it uses only
operators (``@``, ``*``, ``-``, slicing) and the backend's handful of functions.

- `Numpy` (the CPU path): float64, numpy's element-wise kernels, OpenBLAS for products
  (numpy's ``@``, scipy's BLAS for the L-BFGS vector updates). torch's CPU BLAS is Intel
  MKL, whose code path depends on the CPU's vendor as well as its instruction set; a
  few-shot probe is hundreds of small products and thousands of tiny vector operations,
  so it runs on what is fast on every x86 CPU: OpenBLAS and numpy choose their kernels by
  instruction set alone, and a numpy call costs a few microseconds where a torch call
  costs about ten (bench/README.md has the profile).
- `Torch` (the GPU path; on the CPU only when asked, as the tests do): float64 on the
  CPU, float32 elsewhere.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import numpy as np


class Numpy:
    """float64 numpy arrays on the CPU; vector updates through scipy's BLAS (one call each)."""

    name = "numpy"

    def __init__(self):
        from scipy.linalg import blas
        from scipy.special import expit

        self._blas, self.sigmoid = blas, expit

    @staticmethod
    def asarray(a) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float64)

    @staticmethod
    def to_numpy(a) -> np.ndarray:
        return a

    @staticmethod
    def zeros(n: int) -> np.ndarray:
        return np.zeros(n)

    @staticmethod
    def append_ones(x: np.ndarray) -> np.ndarray:
        return np.hstack([x, np.ones((len(x), 1))])

    @staticmethod
    def copy(a: np.ndarray) -> np.ndarray:
        return a.copy()

    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        return self._blas.ddot(a.reshape(-1), b.reshape(-1))

    def axpy(self, alpha: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """y += alpha · x, in place; returns y."""
        return self._blas.daxpy(x, y, a=alpha)

    def scale(self, alpha: float, x: np.ndarray) -> np.ndarray:
        """x *= alpha, in place; returns x."""
        return self._blas.dscal(alpha, x)

    @staticmethod
    def max_abs(a: np.ndarray) -> float:
        return max(float(a.max()), -float(a.min()))  # NaN propagates to both (BLAS's idamax would skip it)

    @staticmethod
    def std(x: np.ndarray) -> np.ndarray:
        return x.std(0)

    @staticmethod
    def clamp_min(a: np.ndarray, low: float) -> np.ndarray:
        return np.maximum(a, low)

    @staticmethod
    def softmax_terms(logits: np.ndarray, onehot: np.ndarray) -> tuple[float, np.ndarray]:
        """(Σ cross-entropy, probabilities - onehot) of a fresh logits array (overwritten)."""
        logits -= logits.max(1, keepdims=True)
        probs = np.exp(logits)
        norm = probs.sum(1, keepdims=True)
        loss = float(np.log(norm).sum()) - float(onehot.reshape(-1) @ logits.reshape(-1))  # rows of onehot sum to 1
        probs /= norm
        probs -= onehot
        return loss, probs

    def sigmoid_terms(self, logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
        """(Σ binary cross-entropy, sigmoid - targets)."""
        loss = float(np.logaddexp(0.0, logits).sum()) - float(targets.reshape(-1) @ logits.reshape(-1))
        residual = self.sigmoid(logits)
        residual -= targets
        return loss, residual


class Torch:
    """torch tensors on `device`: float64 on the CPU, float32 elsewhere."""

    name = "torch"

    def __init__(self, device):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float64 if self.device.type == "cpu" else torch.float32

    def asarray(self, a):
        return self.torch.tensor(np.asarray(a), dtype=self.dtype, device=self.device)  # a copy: `a` may be read-only

    @staticmethod
    def to_numpy(a) -> np.ndarray:
        return a.cpu().numpy()

    def zeros(self, n: int):
        return self.torch.zeros(n, dtype=self.dtype, device=self.device)

    def append_ones(self, x):
        return self.torch.cat([x, self.torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], 1)

    @staticmethod
    def copy(a):
        return a.clone()

    def dot(self, a, b) -> float:
        return float(self.torch.dot(a.reshape(-1), b.reshape(-1)))

    @staticmethod
    def axpy(alpha: float, x, y):
        return y.add_(x, alpha=alpha)

    @staticmethod
    def scale(alpha: float, x):
        return x.mul_(alpha)

    @staticmethod
    def max_abs(a) -> float:
        return float(a.abs().max())

    @staticmethod
    def std(x):
        return x.std(0, unbiased=False)

    @staticmethod
    def clamp_min(a, low: float):
        return a.clamp_min(low)

    def softmax_terms(self, logits, onehot):
        log_norm = self.torch.logsumexp(logits, 1, keepdim=True)
        loss = float(log_norm.sum() - (logits * onehot).sum())
        return loss, self.torch.exp(logits - log_norm) - onehot

    def sigmoid_terms(self, logits, targets):
        softplus = logits.clamp_min(0) + self.torch.log1p(self.torch.exp(-logits.abs()))  # log(1 + e^z), no overflow
        loss = float((softplus - targets * logits).sum())
        return loss, self.torch.sigmoid(logits) - targets


def backend(device="cpu", name: str | None = None):
    """The backend for `device`: numpy on the CPU, torch elsewhere, unless `name` says."""
    kind = str(device).partition(":")[0]  # "cuda:1" or torch.device("cuda", 1): cuda; torch need not load
    name = name or ("numpy" if kind == "cpu" else "torch")
    if name == "numpy":
        if kind != "cpu":
            raise ValueError(f"the numpy backend runs on the CPU only, not on {device}")
        return Numpy()
    if name == "torch":
        return Torch(device)
    raise ValueError(f"backend must be 'numpy' or 'torch', got {name!r}")


class Objective:
    """Σ over outputs of (mean loss + l2/2 ‖w‖²) over a flat θ = [W; b] ((dim + 1) × outputs,
    row-major), with gradient; the bias row is not penalised. `terms` gives the summed loss
    of the logits and its gradient with respect to them: the multinomial cross-entropy
    (``Backend.softmax_terms``, targets one-hot) or the binary one per output
    (``Backend.sigmoid_terms``, targets 0/1)."""

    def __init__(self, ops, x, targets, terms: Callable):
        self.ops, self.terms = ops, terms
        n = len(x)
        self.x = ops.append_ones(x)
        self.targets = targets
        self.outputs = targets.shape[1]
        self.penalised = (self.x.shape[1] - 1) * self.outputs  # θ's leading entries: W; the last row: b
        self.scale = 1.0 / n
        self.l2 = 0.0

    def __call__(self, theta):
        ops = self.ops
        loss, residual = self.terms(self.x @ theta.reshape(-1, self.outputs), self.targets)
        grad = ops.scale(self.scale, (self.x.T @ residual).reshape(-1))
        weights = theta[:self.penalised]
        ops.axpy(self.l2, weights, grad[:self.penalised])
        return loss * self.scale + 0.5 * self.l2 * ops.dot(weights, weights), grad


def lbfgs(ops, objective: Callable, theta, max_iter: int, tol: float, memory: int,
          check: Callable[[], None]) -> tuple[object, int, bool]:
    """Minimise `objective` (flat θ -> (loss, gradient)) from `theta` until max |gradient|
    <= tol; returns (θ, iterations, converged). `theta` is not modified.

    Vectors are flat and scalars Python floats, so one iteration is a few dozen vector
    operations: on few-shot problems their per-call overhead, not arithmetic, is the cost.
    """
    x = theta
    loss, grad = objective(x)
    pairs: list[tuple[object, object, float, float]] = []  # (s, y, 1 / s·y, y·y), oldest first
    for iteration in range(max_iter):
        if ops.max_abs(grad) <= tol:
            return x, iteration, True
        if iteration % 25 == 24:
            check()
        # two-loop recursion: direction = -H·grad
        q = ops.copy(grad)
        alphas = []
        for s, y, rho, _ in reversed(pairs):
            a = rho * ops.dot(s, q)
            ops.axpy(-a, y, q)
            alphas.append(a)
        if pairs:
            _, _, rho, yy = pairs[-1]
            ops.scale(-1.0 / (rho * yy), q)  # H0 = (s·y / y·y) I; negated: a descent direction
        else:
            ops.scale(-1.0 / max(math.sqrt(ops.dot(grad, grad)), 1e-12), q)  # a first step of unit length
        for (s, y, rho, _), a in zip(pairs, reversed(alphas)):
            ops.axpy(-(a + rho * ops.dot(y, q)), s, q)  # the negated recursion: q ← q - (a - ρ y·(-q)) s
        slope = ops.dot(grad, q)
        if slope >= 0:  # not a descent direction: restart from the gradient
            pairs.clear()
            q, slope = ops.scale(-1.0, ops.copy(grad)), -ops.dot(grad, grad)
        step = 1.0
        for _ in range(30):  # Armijo backtracking
            candidate = ops.axpy(step, q, ops.copy(x))
            new_loss, new_grad = objective(candidate)
            if new_loss <= loss + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            return x, iteration, False  # no decrease possible at this precision
        s, y = ops.axpy(-1.0, x, ops.copy(candidate)), ops.axpy(-1.0, grad, ops.copy(new_grad))
        sy, yy = ops.dot(s, y), ops.dot(y, y)
        if sy > 1e-10 * yy:
            pairs.append((s, y, 1.0 / sy, yy))
            if len(pairs) > memory:
                pairs.pop(0)
        decrease = loss - new_loss
        x, loss, grad = candidate, new_loss, new_grad
        if decrease <= 1e-12 * max(abs(loss), 1.0):
            return x, iteration + 1, ops.max_abs(grad) <= tol
    return x, max_iter, ops.max_abs(grad) <= tol


_controller = None


@contextlib.contextmanager
def threads_for(work: int, ops):
    """One CPU thread for small problems: thread start-up costs more than the work.
    numpy's and scipy's BLAS on the numpy backend, torch's intra-op threads on the torch
    backend on the CPU; nothing on a GPU."""
    global _controller
    if work > 1 << 22 or (ops.name == "torch" and ops.device.type != "cpu"):
        yield
        return
    if ops.name == "numpy":
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()  # finds the loaded BLAS libraries once (milliseconds)
        with _controller.limit(limits=1, user_api="blas"):
            yield
        return
    before = ops.torch.get_num_threads()
    ops.torch.set_num_threads(1)
    try:
        yield
    finally:
        ops.torch.set_num_threads(before)


class _Objective(Objective):
    """The multinomial objective on torch tensors, as before the backends (for callers of
    `_lbfgs`, e.g. domain_selection.py): standardised features `x`, class ids `y`."""

    def __init__(self, x, y, num_classes: int):
        import torch

        ops = Torch(x.device)
        super().__init__(ops, x, torch.nn.functional.one_hot(y, num_classes).to(x.dtype), ops.softmax_terms)


def _lbfgs(objective: _Objective, theta, max_iter: int, tol: float, memory: int,
           check: Callable[[], None]):
    """`lbfgs` over θ of shape (dim + 1) × classes, as before the backends."""
    flat, used, converged = lbfgs(objective.ops, objective, theta.reshape(-1), max_iter, tol, memory, check)
    return flat.reshape(theta.shape), used, converged
