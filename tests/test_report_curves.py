"""The report's curves against independent computations: expected best scores against a
brute-force enumeration of every draw, power-law fits against curves with known
parameters, effective data transferred against its closed form, and crossovers against
sweeps whose answer is read off by hand."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest

from tlbench.report.curves import (
    PowerLaw,
    crossover,
    effective_data_transferred,
    expected_max,
    fit_power_law,
    gain_crossover,
    sensitivity,
)

SCORES = [0.71, 0.64, 0.80, 0.77]


def brute_force(scores, n, pick=max):
    """E[best of n] by enumerating all N^n equally likely ordered draws with replacement."""
    draws = list(itertools.product(scores, repeat=n))
    return sum(pick(draw) for draw in draws) / len(draws)


@pytest.mark.parametrize("higher_is_better, pick", [(True, max), (False, min)])
def test_expected_max_matches_brute_force(higher_is_better, pick):
    got = expected_max(SCORES, higher_is_better)
    assert len(got) == len(SCORES)
    for n in range(1, 4):
        assert got[n - 1] == pytest.approx(brute_force(SCORES, n, pick), abs=1e-12)


def test_expected_max_with_ties_matches_brute_force():
    scores = [0.5, 0.5, 0.9, 0.1, 0.9]
    got = expected_max(scores)
    for n in range(1, 4):
        assert got[n - 1] == pytest.approx(brute_force(scores, n), abs=1e-12)


def test_expected_max_starts_at_mean_and_rises_towards_best():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=40).tolist()
    got = expected_max(scores)
    assert got[0] == pytest.approx(statistics.fmean(scores))
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(got))
    assert got[-1] < max(scores)
    assert max(scores) - got[-1] < max(scores) - got[len(got) // 2]
    lower = expected_max(scores, higher_is_better=False)
    assert lower[0] == pytest.approx(statistics.fmean(scores))
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(lower))
    assert lower[-1] > min(scores)


def test_expected_max_drops_non_finite_scores():
    assert expected_max([]) == []
    assert expected_max([math.nan, math.inf]) == []
    assert expected_max([0.3, math.nan, 0.7, -math.inf]) == pytest.approx(expected_max([0.3, 0.7]))
    assert expected_max([0.3, 0.7]) == pytest.approx([0.5, 0.3 * 0.25 + 0.7 * 0.75])


def test_sensitivity():
    got = sensitivity(SCORES + [math.nan])
    assert got == pytest.approx({"n": 4, "best": 0.80, "worst": 0.64, "range": 0.16,
                                 "std": statistics.stdev(SCORES)})
    lower = sensitivity(SCORES, higher_is_better=False)
    assert (lower["best"], lower["worst"]) == (0.64, 0.80)
    assert lower["range"] == pytest.approx(0.16)
    one = sensitivity([0.5])
    assert (one["n"], one["range"]) == (1, 0.0) and math.isnan(one["std"])
    assert sensitivity([])["n"] == 0 and math.isnan(sensitivity([])["best"])


TRUE = PowerLaw(a=2.0, b=0.5, c=0.05)
SIZES = np.geomspace(10, 1000, 7)


def test_fit_power_law_recovers_known_parameters():
    law = fit_power_law(SIZES, TRUE(SIZES))
    assert law is not None
    for name in ("a", "b", "c"):
        assert getattr(law, name) == pytest.approx(getattr(TRUE, name), rel=1e-3)


def test_fit_power_law_with_repeated_sizes_and_other_parameters():
    true = PowerLaw(a=0.9, b=0.3, c=0.12)
    sizes = np.repeat([50, 100, 200, 400, 800, 1600], 3)
    law = fit_power_law(sizes, true(sizes))
    assert (law.a, law.b, law.c) == pytest.approx((true.a, true.b, true.c), rel=1e-3)


def test_fit_power_law_keeps_floor_below_every_error():
    rng = np.random.default_rng(1)
    errors = TRUE(SIZES) * np.exp(rng.normal(scale=0.05, size=len(SIZES)))
    law = fit_power_law(SIZES, errors)
    assert law is not None and law.a > 0 and law.b > 0 and 0 <= law.c < errors.min()


def test_fit_power_law_returns_none_when_it_cannot_fit():
    assert fit_power_law([10, 100], [0.5, 0.3]) is None
    assert fit_power_law([10, 10, 100, 100], [0.5, 0.5, 0.3, 0.3]) is None
    assert fit_power_law([10, 100, math.nan], [0.5, 0.3, 0.2]) is None
    assert fit_power_law([10, 100, 1000], [0.5, 0.3, 0.0]) is None


def test_power_law_inverse():
    for n in (3.0, 10.0, 250.0, 1e6):
        assert TRUE.inverse(TRUE(n)) == pytest.approx(n, rel=1e-9)
    assert TRUE.inverse(0.05) is None
    assert TRUE.inverse(0.01) is None


def test_effective_data_transferred_against_closed_form():
    errors = TRUE(SIZES)
    got = effective_data_transferred(SIZES, errors, finetuned_size=100, finetuned_error=float(TRUE(400)))
    assert got["d_f"] == 100 and not got["censored"] and got["reason"] is None
    assert got["d_e"] == pytest.approx(400, rel=1e-3)
    assert got["d_t"] == pytest.approx(300, rel=1e-3)
    assert got["multiplier"] == pytest.approx(4, rel=1e-3)
    assert got["fit"] == pytest.approx({"a": 2.0, "b": 0.5, "c": 0.05}, rel=1e-3)
    # error 0.15 on the true curve: 2 / sqrt(n) = 0.1, so n = 400 too
    assert effective_data_transferred(SIZES, errors, 50, 0.15)["multiplier"] == pytest.approx(8, rel=1e-3)


def test_effective_data_transferred_keeps_negative_transfer():
    got = effective_data_transferred(SIZES, TRUE(SIZES), finetuned_size=100, finetuned_error=float(TRUE(25)))
    assert got["d_t"] == pytest.approx(-75, rel=1e-3)
    assert got["multiplier"] == pytest.approx(0.25, rel=1e-3)
    assert not got["censored"]


def test_effective_data_transferred_censored_below_floor():
    got = effective_data_transferred(SIZES, TRUE(SIZES), finetuned_size=100, finetuned_error=0.04)
    assert got["censored"] and got["d_e"] is got["d_t"] is got["multiplier"] is None
    assert got["fit"]["c"] == pytest.approx(0.05, rel=1e-3)
    assert "floor c = 0.05" in got["reason"]


def test_effective_data_transferred_without_a_curve():
    got = effective_data_transferred([10, 100], [0.5, 0.3], 50, 0.2)
    assert got["reason"] == "fewer than 3 scratch sizes"
    assert got["fit"] is got["d_e"] is None and not got["censored"]


@pytest.mark.parametrize("sizes, lows, expected, status", [
    ([100, 200, 400, 800], [0.10, 0.05, 0.02, 0.01], None, "beyond grid"),
    ([100, 200, 400, 800], [0.10, 0.05, -0.01, math.nan], 400.0, "within grid"),
    ([100, 200, 400, 800], [0.10, -0.02, 0.03, -0.01], 800.0, "within grid"),
    ([100, 200, 400, 800], [0.10, -0.02, 0.03, 0.01], None, "beyond grid"),
    ([100, 200, 400, 800], [0.0, -0.02, math.nan, -0.01], 100.0, "never significant"),
    ([800, 100, 400, 200], [-0.01, 0.10, 0.0, 0.05], 400.0, "within grid"),
    ([], [], None, "empty"),
])
def test_crossover(sizes, lows, expected, status):
    assert crossover(sizes, lows) == expected
    assert gain_crossover(sizes, lows)["status"] == status


def test_gain_crossover_reports_the_last_significant_size():
    got = gain_crossover([100, 200, 400, 800], [0.10, -0.02, 0.03, -0.01])
    assert got == {"crossover": 800.0, "last_significant": 400.0, "status": "within grid"}
    with pytest.raises(ValueError):
        crossover([100, 100, 200], [0.1, 0.2, 0.0])
