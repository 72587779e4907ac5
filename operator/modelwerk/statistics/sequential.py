"""Always-valid comparison of two arms: a mixture sequential probability ratio test (mSPRT).

An experiment's status is read all the time, and a person (or the operator) acts as soon as it
says "significant". A fixed-horizon test looked at after every batch declares a winner between
two identical arms far more often than its alpha (25.8 % of simulated experiments at alpha
0.05 with 40 looks, README "A/B experiments: the statistics"). The mixture SPRT of Johari, Koomen, Pekelis and Walsh ("Peeking at A/B tests",
KDD 2017; Optimizely's engine) stays valid at every look: its p-value may be read after every
batch, and the experiment stopped whenever it falls below alpha, with a false-positive rate of
at most alpha overall.

The statistic. With arm means ``mean_a`` and ``mean_b`` over ``n_a`` and ``n_b`` observations,
the difference ``d = mean_b - mean_a`` has variance ``s2 = var_a / n_a + var_b / n_b``. Against
the hypothesis ``difference = theta0`` and a normal mixing distribution of the true difference
around theta0 with variance ``tau2``, the likelihood ratio is::

    Lambda = sqrt(s2 / (s2 + tau2)) * exp(tau2 * (d - theta0)**2 / (2 * s2 * (s2 + tau2)))

which, with equal arms (``s2 = V / n``, ``V = var_a + var_b``), is Johari et al.'s
``sqrt(V / (V + n tau2)) exp(n**2 tau2 (d - theta0)**2 / (2 V (V + n tau2)))``. Under the
hypothesis Lambda is a martingale of mean 1, so by Ville's inequality it exceeds 1/alpha at any
time with probability at most alpha. The always-valid p-value is the running minimum of
``1 / Lambda``; the confidence sequence (the differences not rejected) is ``d +- half_width``::

    half_width = sqrt(s2 * (1 + 1/r) * (2 ln(1/alpha) + ln(1 + r))),   r = tau2 / s2

Variances are plug-in estimates (``p (1 - p)`` for binary metrics, the sample variance for
continuous ones), which makes the guarantee asymptotic, as for every engine in use (GrowthBook's
asymptotic confidence sequences, Optimizely's Stats Engine); the minimum sample per arm keeps the
approximation honest, and tests/unit/statistics/test_simulation.py measures the real error rate.

Choosing ``tau2``. The test is quickest for differences of about ``tau``: the half-width at a
given ``s2`` is smallest at ``r = tau2 / s2`` near 8 (the root of ``r = 2 ln(1/alpha) +
ln(1 + r)`` for alpha 0.05) and varies by a few percent between r = 4 and r = 16. Setting ``tau``
to the minimum detectable effect puts r at about 15 where the test reaches 80 % power for that
effect, so ``tau = minimum detectable effect`` is the default and what ``sample_size`` plans with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ArmSummary:
    """What one arm contributes: observations, their mean and their (per-observation) variance."""

    n: float
    mean: float
    variance: float

    @classmethod
    def binary(cls, successes: float, n: float) -> ArmSummary:
        """A 0/1 metric (correct predictions, conversions, errors): ``successes`` of ``n``."""
        if n <= 0:
            return cls(0, 0.0, 0.0)
        p = min(max(successes / n, 0.0), 1.0)
        return cls(n, p, p * (1.0 - p))

    @classmethod
    def continuous(cls, n: float, total: float, total_squares: float) -> ArmSummary:
        """A numeric metric from its count, sum and sum of squares (what counters can carry)."""
        if n <= 0:
            return cls(0, 0.0, 0.0)
        mean = total / n
        if n < 2:
            return cls(n, mean, 0.0)
        variance = max(total_squares - n * mean * mean, 0.0) / (n - 1)
        return cls(n, mean, variance)


@dataclass(frozen=True)
class SequentialTest:
    """One look at an always-valid comparison of arm B with arm A."""

    difference: float
    """mean B - mean A."""
    ci_low: float
    """Lower end of the (1 - alpha) confidence sequence of the difference."""
    ci_high: float
    """Upper end."""
    p_value: float
    """1 / Lambda at this look, capped at 1 (combine looks with ``running_p_value``)."""
    log_lambda: float
    """ln Lambda: the evidence against ``difference = theta0``."""


def difference_variance(a: ArmSummary, b: ArmSummary) -> float:
    """Variance of mean B - mean A."""
    if a.n <= 0 or b.n <= 0:
        return math.inf
    return a.variance / a.n + b.variance / b.n


def msprt(
    a: ArmSummary,
    b: ArmSummary,
    *,
    tau: float,
    alpha: float,
    theta0: float = 0.0,
) -> SequentialTest | None:
    """The mixture SPRT of ``difference = theta0`` with a normal mixing distribution of
    standard deviation ``tau``, and the (1 - alpha) confidence sequence; None while the
    difference has no variance to speak of (an arm without observations, or both arms
    constant).

    >>> t = msprt(ArmSummary.binary(800, 1000), ArmSummary.binary(860, 1000), tau=0.05, alpha=0.05)
    >>> round(t.difference, 3), round(t.p_value, 4), round(t.ci_low, 4), round(t.ci_high, 4)
    (0.06, 0.0098, 0.0092, 0.1108)
    """
    if tau <= 0 or not 0 < alpha < 1:
        raise ValueError("tau must be positive and alpha in (0, 1)")
    s2 = difference_variance(a, b)
    if not math.isfinite(s2) or s2 <= 1e-300:
        return None
    d = b.mean - a.mean
    r = tau * tau / s2
    log_lambda = -0.5 * math.log1p(r) + (r / (1.0 + r)) * (d - theta0) ** 2 / (2.0 * s2)
    half = math.sqrt(s2 * (1.0 + 1.0 / r) * (2.0 * math.log(1.0 / alpha) + math.log1p(r)))
    p_value = 1.0 if log_lambda <= 0 else math.exp(-log_lambda)
    return SequentialTest(d, d - half, d + half, p_value, log_lambda)


def running_p_value(previous: float | None, current: float) -> float:
    """The always-valid p-value after this look: the smallest 1 / Lambda seen so far.

    Valid because the event "1 / Lambda ever fell to p" has probability at most p under the
    hypothesis (Ville's inequality); the minimum only moves down, so a decision once reached
    is never contradicted by a later look.
    """
    return current if previous is None else min(previous, current)
