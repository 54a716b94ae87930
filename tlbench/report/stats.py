"""Intervals over seeds: the only statistics a leaderboard cell needs.

Seeds are few (often 3 to 5), so intervals are two-sided 95% Student-t intervals for the
mean, not bootstrap ones: a bootstrap over three values is far too narrow. A paired
interval is the same interval over per-seed differences, which removes the seed-to-seed
variation two entries share (same data split, same initialisation seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """Mean, sample standard deviation and a 95% interval of `n` values; NaN where undefined."""

    n: int
    mean: float
    std: float
    low: float
    high: float

    def clipped(self, low: float, high: float) -> "Interval":
        """The interval cut to the range the quantity can take (an accuracy to [0, 1])."""
        clip = lambda v: v if math.isnan(v) else min(max(v, low), high)  # noqa: E731
        return Interval(self.n, self.mean, self.std, clip(self.low), clip(self.high))

    @property
    def below_zero(self) -> bool:
        """True only when the whole interval lies below 0 (needs at least two values)."""
        return self.n >= 2 and math.isfinite(self.high) and self.high < 0

    @property
    def above_zero(self) -> bool:
        return self.n >= 2 and math.isfinite(self.low) and self.low > 0


def finite_values(values: Iterable) -> np.ndarray:
    """The finite numbers among `values` (None, NaN and infinities dropped)."""
    out = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out.append(number)
    return np.asarray(out, dtype=float)


def t_interval(values: Iterable) -> Interval:
    """95% Student-t interval for the mean of the finite values given."""
    x = finite_values(values)
    n = len(x)
    if n == 0:
        return Interval(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Interval(1, mean, math.nan, math.nan, math.nan)
    from scipy.special import stdtrit  # the t quantile, without importing all of scipy.stats

    std = float(x.std(ddof=1))
    half = float(stdtrit(n - 1, 0.5 + LEVEL / 2)) * std / math.sqrt(n)
    return Interval(n, mean, std, mean - half, mean + half)


def paired_interval(a: dict, b: dict) -> Interval:
    """Interval of a − b over the keys (seeds) both have a finite value for."""
    common = sorted(k for k in a.keys() & b.keys()
                    if len(finite_values([a[k]])) and len(finite_values([b[k]])))
    return t_interval([float(a[k]) - float(b[k]) for k in common])
