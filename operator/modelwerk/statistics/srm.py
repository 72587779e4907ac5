"""Sample-ratio mismatch: are units split between the arms as configured?

An experiment whose arms did not receive the configured shares of units is broken whatever its
metrics say: units were lost on one side (a crashing arm, a forwarding failure, a bot hitting
one arm), or the assignment itself is biased. The check is Pearson's chi-square goodness-of-fit
test of the unit counts against the configured shares, counted per unit (a sticky user is one
unit however many requests they send: counting requests would flag every experiment that has
heavy users). With two arms the statistic has one degree of freedom.

Distinct units counted from the capture (``units_distinct``) are tested exactly: given the
total, B's count is binomial with B's share under a correct assignment (each unit's arm is an
independent draw of its hash), so :func:`unit_split_test` is the exact two-sided binomial test
(twice the smaller tail). That holds for the hash-sampled counts too: every unit is kept with
the same probability whatever its arm.

The threshold is p < 0.001, as GrowthBook's: the check runs at every look, so a strict threshold
keeps the false alarms of a correctly split experiment rare (tests/unit/statistics measures them
under repeated looks) while a real mismatch of a few percent is caught within a few thousand
units.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelwerk.statistics.distributions import binomial_cdf, binomial_sf, chi2_sf_1df

SRM_THRESHOLD = 0.001
MIN_EXPECTED_UNITS = 5.0
"""The chi-square approximation needs a few expected units in each arm."""


@dataclass(frozen=True)
class SrmResult:
    statistic: float
    p_value: float
    expected_b: float
    """Units arm B should have received."""
    test: str = "chi-square"
    """``chi-square`` (Pearson's) or ``binomial`` (exact, distinct units)."""

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_THRESHOLD


def sample_ratio_mismatch(units_a: float, units_b: float, share_b: float) -> SrmResult | None:
    """Pearson's chi-square test of the unit counts against B's configured share (0 < share
    < 1); None while too few units are expected in an arm for the test to mean anything.

    >>> r = sample_ratio_mismatch(5_000, 5_300, 0.5)
    >>> round(r.statistic, 3), r.p_value < 0.05, r.mismatch
    (8.738, True, False)
    """
    if not 0 < share_b < 1:
        raise ValueError("share_b must be in (0, 1)")
    total = units_a + units_b
    expected_a, expected_b = total * (1 - share_b), total * share_b
    if min(expected_a, expected_b) < MIN_EXPECTED_UNITS:
        return None
    statistic = (units_a - expected_a) ** 2 / expected_a + (units_b - expected_b) ** 2 / expected_b
    return SrmResult(statistic, chi2_sf_1df(statistic), expected_b)


def unit_split_test(units_a: int, units_b: int, share_b: float) -> SrmResult | None:
    """The exact two-sided binomial test of B's distinct units against B's share: twice the
    smaller tail, at most 1 (a little more conservative than summing every outcome as
    unlikely as the observed one when the share is not one half); None before any unit.

    >>> r = unit_split_test(5_000, 5_300, 0.5)
    >>> round(r.p_value, 4), r.mismatch, r.test
    (0.0032, False, 'binomial')
    >>> unit_split_test(5_500, 4_500, 0.5).mismatch
    True
    """
    if not 0 < share_b < 1:
        raise ValueError("share_b must be in (0, 1)")
    if units_a < 0 or units_b < 0:
        raise ValueError("unit counts cannot be negative")
    n = units_a + units_b
    if n == 0:
        return None
    expected_a, expected_b = n * (1 - share_b), n * share_b
    statistic = (units_a - expected_a) ** 2 / expected_a + (units_b - expected_b) ** 2 / expected_b
    lower = binomial_cdf(units_b, n, share_b)
    upper = binomial_sf(units_b - 1, n, share_b)
    return SrmResult(statistic, min(1.0, 2.0 * min(lower, upper)), expected_b, "binomial")
