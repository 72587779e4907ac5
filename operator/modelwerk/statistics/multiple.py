"""Several metrics, one experiment: Benjamini-Hochberg over their always-valid p-values.

An experiment tests its primary metric and each guardrail; testing each at alpha would make
some false discovery likely as metrics are added. Benjamini and Hochberg's step-up procedure
keeps the expected share of false discoveries among the declared ones at most alpha (for
independent or positively dependent p-values). Always-valid p-values are valid p-values at any
stopping time, so the procedure may be applied at every look (Johari et al. 2017, section 5,
use the same combination).
"""

from __future__ import annotations

from collections.abc import Sequence


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """BH-adjusted p-values, in the input's order: a metric is a discovery at level q when
    its adjusted p-value is at most q (as ``scipy.stats.false_discovery_control``).

    >>> [round(p, 3) for p in benjamini_hochberg([0.01, 0.04, 0.03, 0.5])]
    [0.04, 0.053, 0.053, 0.5]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):  # from the largest p-value down: a running minimum
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = min(running, 1.0)
    return adjusted
