"""How many units per arm an experiment needs to detect a given difference.

The recommendation is for the always-valid test of ``sequential``: the per-arm sample at which
its confidence sequence excludes zero with probability ``power`` when the true difference is
the minimum detectable effect (the test is tuned with ``tau`` equal to that effect). With the
difference estimate ``d ~ N(mde, s2)``, that is the smallest sample where::

    mde >= half_width(s2) + z_power * sqrt(s2)

Because the experiment is looked at all along, it may also stop earlier; the simulations in
tests/unit/statistics measure the real power at this sample (above the target). The classical
fixed-horizon sample (``mde = (z_(1-alpha/2) + z_power) sqrt(s2)``) is given for comparison:
the always-valid test needs about 1.9 times as many units to be sure of the same effect, the
price of reading the result at any time (and it stops much sooner when the effect is larger).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from modelwerk.statistics.distributions import normal_quantile


@dataclass(frozen=True)
class SampleSize:
    a: int
    """Units (or observations) of arm A."""
    b: int
    """Units of arm B."""


def _half_width(s2: float, tau: float, alpha: float) -> float:
    r = tau * tau / s2
    return math.sqrt(s2 * (1.0 + 1.0 / r) * (2.0 * math.log(1.0 / alpha) + math.log1p(r)))


def _split(total: float, share_b: float) -> SampleSize:
    return SampleSize(math.ceil(total * (1 - share_b)), math.ceil(total * share_b))


def _solve(enough: Callable[[float], bool], lo: float = 2.0, hi: float = 1e13) -> float:
    if not enough(hi):
        raise ValueError("the effect is too small to detect with any sample")
    for _ in range(200):  # bisection on log N: both bounds are within a factor 1e-9
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
        if hi / lo < 1 + 1e-9:
            break
    return hi


def sequential_sample_size(
    mde: float,
    var_a: float,
    var_b: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    share_b: float = 0.5,
    tau: float | None = None,
) -> SampleSize:
    """Units per arm for the always-valid test to detect ``mde`` (an absolute difference)
    with the given power, B receiving ``share_b`` of the units.

    >>> sequential_sample_size(0.05, 0.8 * 0.2, 0.85 * 0.15)
    SampleSize(a=1750, b=1750)
    """
    if mde <= 0 or not 0 < share_b < 1 or not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("mde must be positive; share_b, alpha and power in (0, 1)")
    tau = tau or mde
    z = normal_quantile(power)

    def enough(total: float) -> bool:
        s2 = var_a / (total * (1 - share_b)) + var_b / (total * share_b)
        return mde >= _half_width(s2, tau, alpha) + z * math.sqrt(s2)

    return _split(_solve(enough), share_b)


def fixed_sample_size(
    mde: float,
    var_a: float,
    var_b: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    share_b: float = 0.5,
) -> SampleSize:
    """Units per arm for a classical two-sided test looked at once, at the end.

    >>> fixed_sample_size(0.05, 0.8 * 0.2, 0.85 * 0.15)
    SampleSize(a=903, b=903)
    """
    if mde <= 0 or not 0 < share_b < 1:
        raise ValueError("mde must be positive and share_b in (0, 1)")
    z = normal_quantile(1 - alpha / 2) + normal_quantile(power)
    total = z * z * (var_a / (1 - share_b) + var_b / share_b) / (mde * mde)
    return _split(total, share_b)


def binary_variances(baseline: float, mde: float) -> tuple[float, float]:
    """Per-observation variances of a 0/1 metric at ``baseline`` and ``baseline + mde``."""
    p, q = baseline, min(max(baseline + mde, 0.0), 1.0)
    return p * (1 - p), q * (1 - q)
