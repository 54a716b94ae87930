"""Aggregates over runs that hold up with few seeds (Agarwal et al. 2021, "rliable").

With three to five seeds per target, a mean over targets of per-target means hides how
much the runs vary. rliable's answer, implemented here on tlbench's tables:

- *interquartile mean* (IQM): the mean of the middle 50% of all runs' scores pooled over
  targets (scipy's ``trim_mean`` with 25% cut from each end), robust to a few outlying
  runs yet less noisy than the median;
- *stratified bootstrap* intervals: each resample draws, for every target separately,
  as many runs as the target has, with replacement, and recomputes the statistic; the
  95% interval is the 2.5th and 97.5th percentiles of the resampled statistics. Targets
  are strata, so no resample drops a target;
- *probability of improvement* P(X > Y): for each target, the probability that a run of X
  scores higher than a run of Y (the Mann–Whitney U statistic over n·m, ties counting
  one half), averaged over the targets both have;
- *performance profiles*: the fraction of runs whose score exceeds τ, for every τ, with
  bootstrap bands.

rliable itself cannot be installed next to pandas 3 (its bootstrap depends on an arch
release that does not import with it), so these few functions are written here and
tested against scipy (IQM, Mann–Whitney) and against a plain percentile bootstrap.

Scores are *normalised gains* (see `normalised_gain`): a run's gain over its same-seed
from-scratch baseline as a fraction of what there was to gain.
"""

from __future__ import annotations

import math

import numpy as np

BOOTSTRAP_REPS = 2000
"""Resamples per interval: percentile intervals at 95% move by about ±0.005 at this size."""
PROFILE_REPS = 500
"""Resamples per performance-profile band (a band per τ costs runs × τs per resample)."""
CONFIDENCE = 0.95


def normalised_gain(score: np.ndarray, scratch: np.ndarray, best: float) -> np.ndarray:
    """(score − scratch) / (best − scratch), per run, all signed so that higher is better.

    `best` is the best value the headline can take (1 for accuracy, mAP or R²; 0 for an
    error) when it has one: the gain is then the fraction of the scratch baseline's
    shortfall that transfer closed, 1 for a perfect score, 0 for no better than scratch,
    negative when transfer hurt. That reference does not depend on which other methods
    are in the report, so adding a method never changes another's normalised score. For
    a headline without a best value, `best` is the best mean of the methods compared on
    the target instead, and the scores are relative to that pool (the report says so).
    A run whose baseline already scored `best` has nothing to gain: NaN, left out."""
    score, scratch = np.asarray(score, dtype=float), np.asarray(scratch, dtype=float)
    room = best - scratch
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(room > 0, (score - scratch) / np.where(room > 0, room, 1.0), math.nan)


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean along `axis` (scipy's trimmed mean, 25% off each end)."""
    from scipy.stats import trim_mean

    return trim_mean(values, 0.25, axis=axis)


def _strata(per_target: list[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(values, dtype=float)[np.isfinite(values)] for values in per_target]


def stratified_resamples(per_target: list[np.ndarray], reps: int, rng: np.random.Generator) -> np.ndarray:
    """`reps` stratified resamples of the pooled runs: (reps, total runs), each row holding,
    for every target, as many of its runs drawn with replacement as it has."""
    parts = []
    for values in per_target:
        if len(values):
            parts.append(values[rng.integers(0, len(values), size=(reps, len(values)))])
    return np.concatenate(parts, axis=1) if parts else np.empty((reps, 0))


def iqm_interval(per_target: list[np.ndarray], reps: int = BOOTSTRAP_REPS, seed: int = 0) -> tuple[float, float, float]:
    """(IQM, low, high): the IQM of all runs and its stratified-bootstrap 95% interval."""
    strata = [values for values in _strata(per_target) if len(values)]
    if not strata:
        return math.nan, math.nan, math.nan
    pooled = np.concatenate(strata)
    resampled = iqm(stratified_resamples(strata, reps, np.random.default_rng(seed)), axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return float(iqm(pooled)), float(low), float(high)


def improvement_matrix(runs: dict[str, list[np.ndarray]]) -> dict[str, dict[str, float]]:
    """P(row > column) for every ordered pair of methods; runs[m][t] = method m's run scores
    on target t (the same targets, in the same order, for every method).

    Vectorised per target: methods' runs padded to a common count with NaN."""
    names = list(runs)
    n_targets = len(next(iter(runs.values()))) if runs else 0
    total = np.zeros((len(names), len(names)))
    counted = np.zeros((len(names), len(names)))
    for t in range(n_targets):
        strata = [_strata([runs[name][t]])[0] for name in names]
        width = max((len(s) for s in strata), default=0)
        if width == 0:
            continue
        padded = np.full((len(names), width), np.nan)
        for i, values in enumerate(strata):
            padded[i, :len(values)] = values
        a, b = padded[:, None, :, None], padded[None, :, None, :]
        valid = np.isfinite(a) & np.isfinite(b)
        pairs = valid.sum(axis=(2, 3))
        with np.errstate(invalid="ignore"):
            wins = ((a > b) & valid).sum(axis=(2, 3)) + 0.5 * ((a == b) & valid).sum(axis=(2, 3))
        has = pairs > 0
        total[has] += wins[has] / pairs[has]
        counted[has] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.where(counted > 0, total / np.maximum(counted, 1), math.nan)
    return {a: {b: float(matrix[i, j]) for j, b in enumerate(names) if b != a} for i, a in enumerate(names)}


def performance_profile(per_target: list[np.ndarray], taus: np.ndarray, reps: int = PROFILE_REPS,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fraction, low, high) for each τ: the share of runs scoring above τ, and its
    stratified-bootstrap 95% band (NaN with `reps` = 0: the curve alone)."""
    strata = [values for values in _strata(per_target) if len(values)]
    nan = np.full(len(taus), math.nan)
    if not strata:
        return nan, nan, nan
    pooled = np.concatenate(strata)
    fraction = (pooled[:, None] > taus[None, :]).mean(axis=0)
    if reps == 0:
        return fraction, nan, nan
    resampled = stratified_resamples(strata, reps, np.random.default_rng(seed))
    curves = (resampled[:, :, None] > taus[None, None, :]).mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(curves, [tail, 100 - tail], axis=0)
    return fraction, low, high
