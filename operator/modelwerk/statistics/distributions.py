"""The distribution functions experiments need, without scipy.

Q: Why not scipy, as the rest of the project uses it?
A: These functions run in the operator, whose image installs only the operator's dependencies.
   Importing ``scipy.stats`` costs the operator process 76 MiB of resident memory (measured in
   bench/operator/results.md, "Experiment statistics without scipy"), and the operator's memory
   was brought down to 87 MiB with care. What is needed is small: normal quantiles
   (``statistics.NormalDist``, the standard library's implementation of Wichura's AS241, exact
   to double precision), the chi-square tail for one degree of freedom (an ``erfc``), and
   exact binomial tails (a sum of log-space terms). tests/unit/statistics/ checks every one of
   them against scipy.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_STANDARD = NormalDist()


def normal_cdf(x: float) -> float:
    """P(Z <= x) for a standard normal Z, through erfc so the lower tail keeps its precision
    (``NormalDist.cdf`` computes ``1 + erf``, which cancels below about -6)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_quantile(p: float) -> float:
    """The x with P(Z <= x) = p, for 0 < p < 1.

    >>> round(normal_quantile(0.975), 6)
    1.959964
    """
    return _STANDARD.inv_cdf(p)


def chi2_sf_1df(x: float) -> float:
    """P(X > x) for X chi-square with one degree of freedom: X = Z**2, so the tail is
    P(|Z| > sqrt(x)) = erfc(sqrt(x / 2)).

    >>> round(chi2_sf_1df(3.841458820694124), 6)
    0.05
    """
    if x <= 0:
        return 1.0
    return math.erfc(math.sqrt(x / 2.0))


def _log_binomial_pmf(k: int, n: int, p: float) -> float:
    if p in (0.0, 1.0):
        return 0.0 if k == (0 if p == 0.0 else n) else -math.inf
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed outwards from k in log space until the terms
    no longer matter (so a tail far from the mean costs a few terms, not k)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if k > n * p:  # sum the shorter, upper side
        return 1.0 - binomial_sf(k, n, p)
    top = _log_binomial_pmf(k, n, p)
    if top == -math.inf:
        return 0.0
    total, term, j = 1.0, 1.0, k
    # pmf(j - 1) / pmf(j) = j (1 - p) / ((n - j + 1) p): the terms shrink below k <= n p
    while j > 0:
        term *= j * (1.0 - p) / ((n - j + 1) * p)
        total += term
        j -= 1
        if term < 1e-17 * total:
            break
    return min(1.0, math.exp(top) * total)


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X > k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 1.0
    if k >= n:
        return 0.0
    return binomial_cdf(n - k - 1, n, 1.0 - p)


def binomial_test_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n trials against p = 1/2 (McNemar's exact
    test on the discordant pairs). The distribution is symmetric, so the p-value is twice the
    smaller tail, capped at 1.

    >>> round(binomial_test_two_sided(2, 12) * 4096 / 2, 9)  # C(12,0) + C(12,1) + C(12,2)
    79.0
    """
    if n <= 0:
        return 1.0
    smaller = min(k, n - k)
    return min(1.0, 2.0 * binomial_cdf(smaller, n, 0.5))


def wilson_interval(
    successes: int | float, n: int | float, confidence: float
) -> tuple[float, float]:
    """Wilson's score interval for a proportion (Wilson 1927): unlike the normal-approximation
    interval it stays inside [0, 1] and keeps its coverage near 0 and 1, where agreement rates
    live.

    >>> [round(x, 4) for x in wilson_interval(95, 100, 0.95)]
    [0.8882, 0.9785]
    """
    if n <= 0:
        return 0.0, 1.0
    z = normal_quantile(0.5 + confidence / 2.0)
    z2 = z * z
    phat = successes / n
    centre = (phat + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(phat * (1 - phat) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)
