"""Rank-based comparisons of several methods over several targets (blocks).

The input is a *score matrix*: one row per block (a target, or a target and source),
one column per method, each value a method's mean headline on that block, signed so
that higher is better. A block enters only when every method has a value on it: ranks
over an incomplete block would compare methods on different data.

What is computed, and from where:

- mean ranks (1 = best; ties get the average rank), as Demšar (2006) defines them;
- the Friedman test (scipy's ``friedmanchisquare``, tie-corrected) and the
  Iman–Davenport F it derives, the form Demšar recommends as less conservative;
- the Nemenyi critical difference, CD = q_α·√(k(k+1)/(6N)), with q_α the studentized
  range quantile over √2 (scipy's ``studentized_range``); and the Nemenyi post-hoc
  p-values (scikit-posthocs' ``posthoc_nemenyi_friedman``), as an option;
- pairwise Wilcoxon signed-rank tests with Holm's correction (scipy and statsmodels,
  as scikit-posthocs' ``posthoc_wilcoxon`` computes them), the post-hoc Benavoli et al. (2016) recommend because, unlike
  mean-rank tests, its verdict on two methods does not depend on which others are in
  the pool; the *groups* of a critical-difference diagram are the maximal sets of methods
  no pair of which differs at α (maximal cliques of the "not different" graph, as
  scikit-posthocs' diagram draws its crossbars);
- Benavoli et al.'s (2017) Bayesian signed-rank test (baycomp's ``SignedRankTest``)
  with a region of practical equivalence: P(left better), P(equivalent), P(right better).

No test is run on fewer than `MIN_BLOCKS` blocks, and the report says so instead. At
exactly five blocks the smallest two-sided Wilcoxon p-value is 2/2⁵ = 0.0625, so no pair
can be told apart yet: the report says that too (`wilcoxon_floor`), and the Friedman test
and the Bayesian verdicts still speak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MIN_BLOCKS = 5
"""Fewer complete blocks than this: mean ranks only, no test."""
ALPHA = 0.05
WILCOXON_HOLM, NEMENYI = "wilcoxon-holm", "nemenyi"
POSTHOC = {WILCOXON_HOLM: "Wilcoxon signed-rank, Holm-corrected", NEMENYI: "Nemenyi after Friedman"}
"""The post-hoc tests groups can be drawn from: Wilcoxon–Holm by default (Benavoli et al.
2016), Nemenyi as Demšar (2006) drew the first CD diagrams."""
BAYES_SAMPLES = 10000
"""Posterior samples of the Bayesian signed-rank test (baycomp's default is 50,000; the
probabilities move by about ±0.005 at this size, at a fifth of the cost)."""


def mean_ranks(matrix: pd.DataFrame) -> pd.Series:
    """Each method's mean rank over the blocks (rows), 1 = highest value."""
    return matrix.rank(axis=1, ascending=False, method="average").mean(axis=0)


@dataclass(frozen=True)
class Friedman:
    statistic: float
    """Friedman's χ² (tie-corrected)."""
    pvalue: float
    iman_davenport: float
    """Iman–Davenport F = (N−1)χ² / (N(k−1) − χ²), on (k−1, (k−1)(N−1)) degrees of freedom."""
    iman_davenport_pvalue: float

    def as_dict(self) -> dict:
        return {"chi2": self.statistic, "p": self.pvalue, "iman_davenport_f": self.iman_davenport,
                "iman_davenport_p": self.iman_davenport_pvalue}


def iman_davenport(chi2: float, n_blocks: int, k: int) -> tuple[float, float]:
    """Iman and Davenport's F from Friedman's χ², and its p-value."""
    from scipy.stats import f as f_distribution

    denominator = n_blocks * (k - 1) - chi2
    if denominator <= 0:  # every block ranks the methods the same way: as strong as the data can be
        return math.inf, 0.0
    statistic = (n_blocks - 1) * chi2 / denominator
    return statistic, float(f_distribution.sf(statistic, k - 1, (k - 1) * (n_blocks - 1)))


def friedman(matrix: pd.DataFrame) -> Friedman | None:
    """The Friedman test over the blocks; None with fewer than three methods (two methods
    are compared by the signed-rank test alone) or when every value is tied."""
    from scipy.stats import friedmanchisquare

    n_blocks, k = matrix.shape
    if k < 3 or n_blocks < 2:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        result = friedmanchisquare(*(matrix[column].to_numpy(dtype=float) for column in matrix.columns))
    if not np.isfinite(result.statistic):
        return None
    chi2 = float(result.statistic)
    return Friedman(chi2, float(result.pvalue), *iman_davenport(chi2, n_blocks, k))


def critical_difference(k: int, n_blocks: int, alpha: float = ALPHA) -> float:
    """The Nemenyi critical difference of mean ranks (Demšar 2006, section 3.2.2)."""
    from scipy.stats import studentized_range

    q_alpha = float(studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    return q_alpha * math.sqrt(k * (k + 1) / (6 * n_blocks))


def wilcoxon_holm(matrix: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjusted p-values of pairwise Wilcoxon signed-rank tests (methods × methods).

    scipy's ``wilcoxon`` over every pair at once (one vectorised call: scikit-posthocs'
    ``posthoc_wilcoxon`` makes one call per pair, 8× slower at 50 methods) and statsmodels'
    Holm correction over all pairs, as ``posthoc_wilcoxon(p_adjust="holm")`` computes
    them (a test checks the two agree). Zero differences are split between the signs
    (``zsplit``), as Demšar (2006) recommends. A pair equal on every block has nothing
    to test: p = 1."""
    from scipy.stats import wilcoxon
    from statsmodels.stats.multitest import multipletests

    names = list(matrix.columns)
    k = len(names)
    values = matrix.to_numpy(dtype=float)
    first, second = np.triu_indices(k, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = wilcoxon(values[:, first], values[:, second], axis=0, zero_method="zsplit").pvalue
    raw = np.where(np.isfinite(raw), raw, 1.0)
    adjusted = multipletests(raw, method="holm")[1] if len(raw) else raw
    pvalues = np.ones((k, k))
    pvalues[first, second] = adjusted
    pvalues[second, first] = adjusted
    return pd.DataFrame(pvalues, index=names, columns=names)


def wilcoxon_floor(n_blocks: int) -> float:
    """The smallest two-sided p-value an exact Wilcoxon signed-rank test on `n_blocks`
    pairs can give (every difference of one sign): 2 / 2^n."""
    return min(1.0, 2.0 / 2 ** n_blocks)


def nemenyi(matrix: pd.DataFrame) -> pd.DataFrame:
    """p-values of the Nemenyi post-hoc test after Friedman (methods × methods)."""
    import scikit_posthocs

    pvalues = scikit_posthocs.posthoc_nemenyi_friedman(matrix.to_numpy(dtype=float))
    names = list(matrix.columns)
    pvalues.index = pvalues.columns = names
    return pvalues.fillna(1.0)


def groups(pvalues: pd.DataFrame, ranks: pd.Series, alpha: float = ALPHA, min_size: int = 2) -> list[list[str]]:
    """The maximal sets of at least `min_size` methods among which no pair differs at `alpha`
    (Bron–Kerbosch over the "not different" graph), each in mean-rank order, the sets
    ordered by their best member's rank."""
    names = list(ranks.sort_values(kind="stable").index)
    linked = {a: {b for b in names if b != a and pvalues.loc[a, b] >= alpha} for a in names}
    found: list[frozenset] = []

    def expand(clique: set, candidates: set, excluded: set) -> None:
        if not candidates and not excluded:
            found.append(frozenset(clique))
            return
        pivot = max(candidates | excluded, key=lambda name: len(linked[name] & candidates))
        for name in sorted(candidates - linked[pivot], key=names.index):
            expand(clique | {name}, candidates & linked[name], excluded & linked[name])
            candidates = candidates - {name}
            excluded = excluded | {name}

    expand(set(), set(names), set())
    ordered = [sorted(clique, key=names.index) for clique in found if len(clique) >= min_size]
    return sorted(ordered, key=lambda clique: (names.index(clique[0]), -len(clique)))


@dataclass(frozen=True)
class BayesVerdict:
    """Benavoli et al.'s Bayesian signed-rank test of `left` against `right`."""

    left: str
    right: str
    p_left: float
    """Posterior probability that `left` is better by more than the ROPE."""
    p_rope: float
    p_right: float
    rope: float
    n_blocks: int

    @property
    def verdict(self) -> str:
        """The decision at 95% posterior probability, else 'undecided'."""
        for name, p in ((f"{self.left} better", self.p_left), ("practically equivalent", self.p_rope),
                        (f"{self.right} better", self.p_right)):
            if p >= 0.95:
                return name
        return "undecided"

    def as_dict(self) -> dict:
        return {"left": self.left, "right": self.right, "p_left": self.p_left, "p_rope": self.p_rope,
                "p_right": self.p_right, "rope": self.rope, "n_blocks": self.n_blocks, "verdict": self.verdict}


def bayesian_signed_rank(matrix: pd.DataFrame, left: str, right: str, rope: float, seed: int = 0) -> BayesVerdict:
    """P(left better), P(within ±rope), P(right better) over the blocks' mean values.

    The posterior is sampled with a fixed seed, so a report rebuilt from the same records
    prints the same probabilities."""
    import warnings

    from baycomp import SignedRankTest

    x, y = matrix[left].to_numpy(dtype=float), matrix[right].to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # baycomp's order: the share of posterior samples in which x is better by more
        # than the rope, in which the difference is within it, in which y is better
        # (without a rope, two: x better, y better)
        probabilities = SignedRankTest.probs(x, y, rope=rope, nsamples=BAYES_SAMPLES, random_state=seed)
    if rope > 0:
        p_left, p_rope, p_right = probabilities
    else:
        (p_left, p_right), p_rope = probabilities, 0.0
    return BayesVerdict(left, right, float(p_left), float(p_rope), float(p_right), rope, len(matrix))


@dataclass
class RankComparison:
    """Everything rank-based about one score matrix."""

    methods: list[str]
    n_blocks: int
    ranks: pd.Series
    friedman: Friedman | None = None
    cd: float | None = None
    wilcoxon_holm: pd.DataFrame | None = None
    nemenyi: pd.DataFrame | None = None
    groups: list[list[str]] = field(default_factory=list)
    bayes: list[BayesVerdict] = field(default_factory=list)
    note: str = ""
    """Why no test was run, when none was."""
    posthoc: str = WILCOXON_HOLM
    """The post-hoc test whose p-values make the groups and the diagram (`POSTHOC`)."""

    @property
    def tested(self) -> bool:
        return self.wilcoxon_holm is not None

    @property
    def posthoc_pvalues(self) -> pd.DataFrame | None:
        return self.nemenyi if self.posthoc == NEMENYI else self.wilcoxon_holm

    @property
    def posthoc_name(self) -> str:
        return POSTHOC[self.posthoc]

    def as_dict(self) -> dict:
        def matrix(table):
            return None if table is None else {a: {b: float(table.loc[a, b]) for b in table.columns}
                                               for a in table.index}
        return {"methods": self.methods, "n_blocks": self.n_blocks,
                "mean_ranks": {name: float(rank) for name, rank in self.ranks.items()},
                "friedman": self.friedman.as_dict() if self.friedman else None,
                "nemenyi_cd": self.cd, "alpha": ALPHA, "wilcoxon_holm_p": matrix(self.wilcoxon_holm),
                "nemenyi_p": matrix(self.nemenyi), "posthoc": self.posthoc, "groups": self.groups,
                "bayesian_signed_rank": [verdict.as_dict() for verdict in self.bayes], "note": self.note}


TOP_PAIRS = 3
"""The Bayesian test compares the best method (by mean rank) with this many next ones."""


def compare_ranks(matrix: pd.DataFrame, rope: float | None, posthoc: str = WILCOXON_HOLM,
                  with_bayes: bool = True) -> RankComparison:
    """The rank-based comparison of a complete score matrix (blocks × methods, higher is
    better); both post-hoc tests are computed, `posthoc` makes the groups."""
    n_blocks, k = matrix.shape
    ranks = mean_ranks(matrix).sort_values(kind="stable")
    result = RankComparison(methods=list(ranks.index), n_blocks=n_blocks, ranks=ranks,
                            posthoc=posthoc if k >= 3 else WILCOXON_HOLM)
    if k < 2:
        result.note = "one method: nothing to compare"
        return result
    if n_blocks < MIN_BLOCKS:
        result.note = (f"{n_blocks} complete target{'s' if n_blocks != 1 else ''} (fewer than {MIN_BLOCKS}): "
                       "mean ranks only, no test")
        return result
    result.friedman = friedman(matrix)
    result.cd = critical_difference(k, n_blocks) if k >= 2 else None
    result.wilcoxon_holm = wilcoxon_holm(matrix).loc[result.methods, result.methods]
    if k >= 3:
        result.nemenyi = nemenyi(matrix).loc[result.methods, result.methods]
    result.groups = groups(result.posthoc_pvalues, ranks)
    floor = wilcoxon_floor(n_blocks)
    if floor >= ALPHA and result.posthoc == WILCOXON_HOLM:
        result.note = (f"with {n_blocks} blocks the smallest two-sided Wilcoxon p-value is {floor:.4f}, above "
                       f"α = {ALPHA}: no pair can be told apart yet")
    best = result.methods[0]
    if with_bayes and rope is not None:
        result.bayes = [bayesian_signed_rank(matrix, best, other, rope)
                        for other in result.methods[1:1 + TOP_PAIRS]]
    return result
