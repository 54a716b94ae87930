"""Curves for hyper-parameter searches and data-size sweeps: small numeric functions the
report draws its search and sweep summaries from (numpy and scipy only).

- `expected_max`: a search's best score depends on how many trials it ran, so comparing
  methods by their best of unequal budgets is unfair. Dodge et al. 2019 ("Show Your Work:
  Improved Reporting of Experimental Results", EMNLP) report instead the *expected* best
  validation score after n random trials, for every n, computed exactly from the trials.
- `sensitivity`: how much a method's score moves across its search (best, worst, range,
  std): a method that only works with one setting is costlier to use than its best shows.
- `fit_power_law` and `effective_data_transferred`: Hernandez et al. 2021 ("Scaling Laws
  for Transfer") measure what pre-training is worth in data: fit the from-scratch learning
  curve err(n) = a·n^-b + c, read off the size D_E at which scratch training would reach
  the fine-tuned error, and report the effective data transferred D_T = D_E - D_F, D_F
  being the fine-tuning data, and the multiplier D_E / D_F.
- `crossover` and `gain_crossover`: transfer helps most with little target data and its
  gain often vanishes as data grows; the crossover is the data size from which the gain
  is no longer significantly positive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def expected_max(scores: Sequence[float], higher_is_better: bool = True) -> list[float]:
    """Expected best score of n = 1..N trials drawn at random, with replacement, from the
    N trials run (Dodge et al. 2019): with v_(1) <= ... <= v_(N) sorted,
    E[max_n] = Σ_i v_(i)·((i/N)^n - ((i-1)/N)^n), the probability that the best of n draws
    is v_(i). With `higher_is_better` False, the expected minimum. Non-finite scores
    (failed or diverged trials) are dropped, so N counts finite scores only; no finite
    score gives an empty list. Element n-1 is E[best of n]: it starts at the mean, never
    decreases (increases for lower-is-better) and approaches the best score."""
    values = _finite(scores)
    if not higher_is_better:
        return [-x for x in expected_max(-values)]
    n_scores = len(values)
    if n_scores == 0:
        return []
    upper, lower = np.arange(1, n_scores + 1) / n_scores, np.arange(n_scores) / n_scores
    draws = np.arange(1, n_scores + 1)[:, None]
    weights = upper ** draws - lower ** draws
    return [float(x) for x in weights @ np.sort(values)]


def sensitivity(scores: Sequence[float], higher_is_better: bool = True) -> dict:
    """How much a search's scores spread: `n` finite scores (non-finite ones dropped),
    `best` and `worst` in the metric's direction, `range` = |best - worst| (>= 0, in
    metric units), `std` the sample standard deviation (ddof=1; NaN for n < 2). With no
    finite score, best, worst and range are NaN."""
    values = _finite(scores)
    if len(values) == 0:
        return {"n": 0, "best": math.nan, "worst": math.nan, "range": math.nan, "std": math.nan}
    high, low = float(values.max()), float(values.min())
    best, worst = (high, low) if higher_is_better else (low, high)
    return {"n": len(values), "best": best, "worst": worst, "range": high - low,
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan}


@dataclass(frozen=True)
class PowerLaw:
    """err(n) = a·n^-b + c: a learning curve falling as a power of the data size n towards
    the floor c, the error no amount of data removes (Hernandez et al. 2021)."""

    a: float
    b: float
    c: float

    def __call__(self, n):
        return self.a * np.power(n, -self.b) + self.c

    def inverse(self, error: float) -> float | None:
        """The data size at which the curve reaches `error`: (a / (error - c))^(1/b).
        None when error <= c: the curve never gets there (censored), e.g. a fine-tuned
        error below the from-scratch floor, whose worth in data cannot be read off."""
        if not error > self.c:
            return None
        return float((self.a / (error - self.c)) ** (1 / self.b))


def _points(sizes: Sequence[float], errors: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The (size, error) pairs a curve can be fitted to: both finite and the size positive."""
    n, err = np.asarray(sizes, dtype=float).ravel(), np.asarray(errors, dtype=float).ravel()
    if n.shape != err.shape:
        raise ValueError(f"{len(n)} sizes but {len(err)} errors")
    keep = np.isfinite(n) & np.isfinite(err) & (n > 0)
    return n[keep], err[keep]


def fit_power_law(sizes: Sequence[float], errors: Sequence[float]) -> PowerLaw | None:
    """Fit err(n) = a·n^-b + c to a from-scratch learning curve (several seeds per size
    may repeat a size), with a > 0, b > 0 and 0 <= c < min(errors): a curve that falls
    with data, to a floor below every error observed. Residuals are relative (sigma =
    error), so the small errors at large sizes, where fine-tuned errors are read off,
    weigh as much as the large ones. The initial guess is a straight line in log-log space
    through err - min(err)/2. None, rather than an exception, when fewer than 3 distinct
    sizes remain (three parameters), an error is <= 0 (no such curve reaches it), or the
    fit fails."""
    n, err = _points(sizes, errors)
    if len(np.unique(n)) < 3 or err.min() <= 0:
        return None
    floor = err.min()
    slope, intercept = np.polyfit(np.log(n), np.log(err - floor / 2), 1)
    guess = [math.exp(intercept), min(max(-slope, 0.05), 5.0), floor / 2]
    tiny = 1e-12

    def curve(x, a, b, c):
        return a * np.power(x, -b) + c

    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    try:
        with warnings.catch_warnings():  # the parameters' covariance is not used: an exact fit has none
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(curve, n, err, p0=guess, sigma=err, maxfev=20000,
                                  bounds=([tiny, tiny, 0.0], [np.inf, np.inf, floor * (1 - tiny)]),
                                  xtol=1e-14, ftol=1e-14, gtol=1e-14)
    except (RuntimeError, ValueError):
        return None
    if not np.all(np.isfinite(params)):
        return None
    return PowerLaw(*(float(p) for p in params))


def effective_data_transferred(scratch_sizes: Sequence[float], scratch_errors: Sequence[float],
                               finetuned_size: float, finetuned_error: float) -> dict:
    """What pre-training is worth in target data (Hernandez et al. 2021): D_E, the data
    size at which the fitted from-scratch curve reaches the fine-tuned error; D_F, the
    data fine-tuning used; D_T = D_E - D_F, the effective data transferred; and the
    multiplier D_E / D_F = (D_T + D_F) / D_F. D_T < 0 (fine-tuning worse than scratch on
    as much data) is kept. D_E beyond the largest scratch size is an extrapolation.

    Keys: `d_f`, `d_e`, `d_t`, `multiplier` (None where they cannot be computed),
    `censored` (the fine-tuned error is at or below the fitted floor c: D_E is None),
    `fit` ({a, b, c} or None) and `reason` (a sentence when something is missing, else None)."""
    result = {"d_f": float(finetuned_size), "d_e": None, "d_t": None, "multiplier": None,
              "censored": False, "fit": None, "reason": None}
    n, _ = _points(scratch_sizes, scratch_errors)
    if len(np.unique(n)) < 3:
        return result | {"reason": "fewer than 3 scratch sizes"}
    law = fit_power_law(scratch_sizes, scratch_errors)
    if law is None:
        return result | {"reason": "the power-law fit to the scratch curve failed"}
    result["fit"] = {"a": law.a, "b": law.b, "c": law.c}
    if not math.isfinite(finetuned_error) or not finetuned_size > 0:
        return result | {"reason": "the fine-tuned run has no finite error or no positive data size"}
    d_e = law.inverse(finetuned_error)
    if d_e is None:
        return result | {"censored": True, "reason": (
            f"the fine-tuned error is below the scratch curve's fitted floor c = {law.c:.3g}: "
            "the data it is worth cannot be read off the curve")}
    return result | {"d_e": d_e, "d_t": d_e - finetuned_size, "multiplier": d_e / finetuned_size}


def gain_crossover(sizes: Sequence[float], lows: Sequence[float]) -> dict:
    """Where the gain of transfer stops being significant along a data-size sweep. `lows`
    are, per size, the lower bounds of the paired 95% interval of the gain (fine-tuned
    minus scratch, in the direction where higher is better); a gain is significant where
    its low is > 0, not where it is <= 0 or NaN (undefined). Sizes may come in any order
    and must be distinct.

    Keys: `crossover`, the smallest size s such that at s and at every larger size the
    gain is not significant (a non-significant blip followed by significant sizes is no
    crossover); `last_significant`, the largest size with a significant gain (None if
    none); `status`: "beyond grid" (significant at the largest size: crossover None),
    "within grid", "never significant" (crossover = the smallest size) or "empty"."""
    size, low = np.asarray(sizes, dtype=float).ravel(), np.asarray(lows, dtype=float).ravel()
    if size.shape != low.shape:
        raise ValueError(f"{len(size)} sizes but {len(low)} lower bounds")
    if len(np.unique(size)) != len(size):
        raise ValueError("the sizes repeat: give one interval per data size")
    if len(size) == 0:
        return {"crossover": None, "last_significant": None, "status": "empty"}
    order = np.argsort(size)
    size, significant = size[order], np.nan_to_num(low[order], nan=0.0) > 0
    if significant[-1]:
        return {"crossover": None, "last_significant": float(size[-1]), "status": "beyond grid"}
    if not significant.any():
        return {"crossover": float(size[0]), "last_significant": None, "status": "never significant"}
    last = int(np.flatnonzero(significant)[-1])
    return {"crossover": float(size[last + 1]), "last_significant": float(size[last]),
            "status": "within grid"}


def crossover(sizes: Sequence[float], lows: Sequence[float]) -> float | None:
    """The crossover size of `gain_crossover`: the smallest size from which on the gain is
    never significantly positive; None when it is significant at the largest size (or no
    size is given), the smallest size when it is never significant."""
    return gain_crossover(sizes, lows)["crossover"]
