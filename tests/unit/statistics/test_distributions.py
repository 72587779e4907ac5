"""The hand-written distribution functions against scipy (the operator image has no scipy)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from modelwerk.statistics.distributions import (
    binomial_cdf,
    binomial_sf,
    binomial_test_two_sided,
    chi2_sf_1df,
    normal_cdf,
    normal_quantile,
    wilson_interval,
)


@pytest.mark.parametrize("p", [1e-12, 1e-6, 0.001, 0.025, 0.2, 0.5, 0.8, 0.975, 0.999, 1 - 1e-9])
def test_normal_quantile_matches_scipy(p: float) -> None:
    assert normal_quantile(p) == pytest.approx(stats.norm.ppf(p), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("x", [-8.0, -3.0, -1.0, 0.0, 0.5, 1.96, 4.0, 7.5])
def test_normal_cdf_matches_scipy(x: float) -> None:
    assert normal_cdf(x) == pytest.approx(stats.norm.cdf(x), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("x", [0.0, 1e-8, 0.1, 1.0, 3.841, 10.83, 25.0, 100.0, 600.0])
def test_chi2_tail_matches_scipy(x: float) -> None:
    assert chi2_sf_1df(x) == pytest.approx(stats.chi2.sf(x, 1), rel=1e-10, abs=1e-300)


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [
        (0, 1, 0.5), (3, 10, 0.5), (5, 10, 0.5), (9, 10, 0.3), (0, 50, 0.01),
        (40, 1000, 0.05), (70, 1000, 0.05), (4_900, 10_000, 0.5), (49_000, 100_000, 0.5),
        (12, 20, 0.999), (0, 20, 0.0), (20, 20, 1.0), (19, 20, 1.0),
    ],
)  # fmt: skip
def test_binomial_tails_match_scipy(k: int, n: int, p: float) -> None:
    assert binomial_cdf(k, n, p) == pytest.approx(stats.binom.cdf(k, n, p), rel=1e-9, abs=1e-15)
    assert binomial_sf(k, n, p) == pytest.approx(stats.binom.sf(k, n, p), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (2, 12), (6, 12), (10, 40), (31, 40), (480, 1000)])
def test_exact_binomial_test_matches_scipy(k: int, n: int) -> None:
    expected = stats.binomtest(k, n, 0.5).pvalue
    assert binomial_test_two_sided(k, n) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (95, 100), (500, 1000), (3, 7)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_interval_matches_scipy(k: int, n: int, confidence: float) -> None:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = wilson_interval(k, n, confidence)
    assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-9, abs=1e-12)


def test_no_data_gives_the_whole_interval_and_no_evidence() -> None:
    assert wilson_interval(0, 0, 0.95) == (0.0, 1.0)
    assert binomial_test_two_sided(0, 0) == 1.0
    assert chi2_sf_1df(-1.0) == 1.0
    assert math.isclose(binomial_cdf(-1, 5, 0.5), 0.0)
