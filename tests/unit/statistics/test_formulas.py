"""The experiment statistics against scipy's and the literature's own formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from modelwerk.statistics.agreement import agreement, mcnemar
from modelwerk.statistics.multiple import benjamini_hochberg
from modelwerk.statistics.sample_size import (
    binary_variances,
    fixed_sample_size,
    sequential_sample_size,
)
from modelwerk.statistics.sequential import ArmSummary, msprt, running_p_value
from modelwerk.statistics.srm import sample_ratio_mismatch


def test_equal_arms_reduce_to_johari_et_al() -> None:
    """With n observations per arm the statistic is Johari et al.'s formula in V = var_a + var_b."""
    a, b = ArmSummary.binary(400, 500), ArmSummary.binary(430, 500)
    tau, n, v = 0.04, 500, a.variance + b.variance
    d = b.mean - a.mean
    expected = math.sqrt(v / (v + n * tau**2)) * math.exp(
        n**2 * tau**2 * d**2 / (2 * v * (v + n * tau**2))
    )
    test = msprt(a, b, tau=tau, alpha=0.05)
    assert test is not None
    assert math.exp(test.log_lambda) == pytest.approx(expected, rel=1e-12)
    assert test.p_value == pytest.approx(1 / expected, rel=1e-12)


def test_the_confidence_sequence_is_where_the_test_does_not_reject() -> None:
    a = ArmSummary.continuous(300, 300 * 5.0, 300 * (25 + 4))
    b = ArmSummary.continuous(200, 200 * 5.6, 200 * (5.6**2 + 9))
    alpha, tau = 0.05, 0.3
    test = msprt(a, b, tau=tau, alpha=alpha)
    assert test is not None
    width = test.ci_high - test.ci_low
    for edge, inwards in ((test.ci_low, 1.0), (test.ci_high, -1.0)):
        p_at = [
            msprt(a, b, tau=tau, alpha=alpha, theta0=edge + step * inwards * width)
            for step in (0.0, 0.01, -0.01)
        ]
        assert all(t is not None for t in p_at)
        at_edge, inside, outside = (t.p_value for t in p_at if t is not None)
        assert at_edge == pytest.approx(alpha, rel=1e-9)
        assert inside > alpha > outside


def test_continuous_summary_is_the_sample_mean_and_variance() -> None:
    x = np.random.default_rng(1).lognormal(1.0, 0.7, 997)
    s = ArmSummary.continuous(len(x), float(x.sum()), float((x**2).sum()))
    assert s.mean == pytest.approx(x.mean(), rel=1e-12)
    assert s.variance == pytest.approx(x.var(ddof=1), rel=1e-9)


def test_no_variance_no_test() -> None:
    assert msprt(ArmSummary.binary(10, 10), ArmSummary.binary(7, 7), tau=0.05, alpha=0.05) is None
    assert msprt(ArmSummary.binary(0, 0), ArmSummary.binary(3, 7), tau=0.05, alpha=0.05) is None
    with pytest.raises(ValueError, match="tau"):
        msprt(ArmSummary.binary(1, 2), ArmSummary.binary(1, 2), tau=0, alpha=0.05)


def test_running_p_value_only_falls() -> None:
    p = None
    for current in (0.9, 0.2, 0.6, 0.04, 0.5):
        p = running_p_value(p, current)
    assert p == 0.04


def test_srm_is_pearsons_chi_square() -> None:
    result = sample_ratio_mismatch(4_890, 5_110, 0.5)
    assert result is not None
    expected = stats.chisquare([4_890, 5_110], [5_000, 5_000])
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    skewed = sample_ratio_mismatch(8_000, 2_300, 0.2)
    assert skewed is not None and skewed.mismatch
    assert sample_ratio_mismatch(2, 1, 0.5) is None


def test_benjamini_hochberg_matches_scipy() -> None:
    rng = np.random.default_rng(7)
    for m in (1, 2, 3, 5, 12):
        p = rng.uniform(0, 0.2, m).tolist()
        assert benjamini_hochberg(p) == pytest.approx(
            stats.false_discovery_control(p).tolist(), rel=1e-12
        )


def test_mcnemar_is_scipys_exact_binomial_test() -> None:
    for b, c in ((0, 0), (3, 9), (40, 25), (120, 160)):
        expected = stats.binomtest(c, b + c, 0.5).pvalue if b + c else 1.0
        assert mcnemar(b, c).p_value == pytest.approx(expected, rel=1e-9)
    assert mcnemar(40, 10).better(0.05) == "stable"
    assert mcnemar(12, 14).better(0.05) is None


def test_agreement_verdicts() -> None:
    near = agreement(1_970, 2_000)
    far = agreement(1_400, 2_000)
    few = agreement(9, 10)
    assert near is not None and far is not None and few is not None
    assert (near.judge(0.95), far.judge(0.95), few.judge(0.95)) == ("pass", "fail", "undecided")
    assert agreement(0, 0) is None


def test_fixed_horizon_sample_is_the_textbook_formula() -> None:
    """n = (z_(1-a/2) + z_power)^2 (p1 q1 + p2 q2) / mde^2 for equal arms."""
    va, vb = binary_variances(0.8, 0.05)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    expected = math.ceil(z**2 * (va + vb) / 0.05**2)
    assert fixed_sample_size(0.05, va, vb).a == expected


def test_sequential_sample_reaches_the_planned_power_at_the_last_look() -> None:
    va, vb = binary_variances(0.8, 0.05)
    size = sequential_sample_size(0.05, va, vb)
    s2 = va / size.a + vb / size.b
    r = 0.05**2 / s2
    half = math.sqrt(s2 * (1 + 1 / r) * (2 * math.log(20) + math.log1p(r)))
    power = stats.norm.sf((half - 0.05) / math.sqrt(s2))
    assert 0.8 <= power < 0.801
    assert 1.7 < size.a / fixed_sample_size(0.05, va, vb).a < 2.1
    skewed = sequential_sample_size(0.05, va, vb, share_b=0.2)
    assert skewed.a == pytest.approx(4 * skewed.b, rel=0.01)
    with pytest.raises(ValueError, match="mde"):
        sequential_sample_size(0.0, va, vb)
