"""L2-regularised multinomial logistic regression on frozen features, on any device.

Full-batch L-BFGS on standardised features, warm-started along a path from strong to
weak regularisation; the strength with the best validation accuracy wins (the
stronger one on ties). The standardisation is folded back into the weights, so the
result is an ordinary linear head over raw features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

@dataclass
class LogisticFit:
    weight: np.ndarray  # (num_classes, dim), over raw features
    bias: np.ndarray    # (num_classes,)
    l2: float
    val_accuracy: dict[float, float | None]
    iterations: int


def _solve(x, y, w, b, l2: float, max_iter: int, check: Callable[[], None]) -> int:
    optimizer = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-7, tolerance_change=1e-10, line_search_fn="strong_wolfe")
    calls = [0]

    def closure():
        calls[0] += 1
        if calls[0] % 25 == 0:
            check()
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return calls[0]


def fit_logistic(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                 num_classes: int, *, l2_grid, max_iter: int = 200,
                 device: torch.device = torch.device("cpu"),
                 check: Callable[[], None] = lambda: None) -> LogisticFit:
    dtype = torch.float64 if device.type == "cpu" else torch.float32
    x = torch.as_tensor(train_x, dtype=dtype, device=device)
    y = torch.as_tensor(train_y, dtype=torch.long, device=device)
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    x = (x - mean) / std
    vx = (torch.as_tensor(val_x, dtype=dtype, device=device) - mean) / std if len(val_y) else None
    vy = torch.as_tensor(val_y, dtype=torch.long, device=device)
    w = torch.zeros(num_classes, x.shape[1], dtype=dtype, device=device, requires_grad=True)
    b = torch.zeros(num_classes, dtype=dtype, device=device, requires_grad=True)
    grid = sorted(l2_grid, reverse=True)
    best, scores, iterations = None, {}, 0
    for l2 in grid:
        iterations += _solve(x, y, w, b, l2, max_iter, check)
        with torch.no_grad():
            score = float(((vx @ w.T + b).argmax(1) == vy).double().mean()) if vx is not None else None
        scores[l2] = score
        if best is None or (score is not None and score > best[0]):
            best = (score if score is not None else -1.0, l2, w.detach().clone(), b.detach().clone())
        if vx is None:
            break  # nothing to select on: keep the strongest regularisation
    _, l2, w_std, b_std = best
    weight = w_std / std
    bias = b_std - weight @ mean
    return LogisticFit(weight=weight.cpu().numpy(), bias=bias.cpu().numpy(), l2=l2,
                       val_accuracy=scores, iterations=iterations)
