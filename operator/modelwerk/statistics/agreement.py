"""Shadow comparisons: how often the candidate agrees with the stable version, and, once labels
arrive, which of the two is right more often.

Agreement is a proportion of compared requests (rows) with a Wilson interval. A shadow check
with a minimum agreement passes once the interval's lower end clears the minimum, fails once
its upper end is below it, and waits for more data in between, so a candidate is neither passed
nor stopped on a handful of requests.

With labels, the paired comparison is McNemar's: among the rows where exactly one version was
right, the stable-only and shadow-only counts are equally likely under "equally accurate", an
exact binomial test with p = 1/2 (the rows both got right or both got wrong say nothing about
which is better).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelwerk.statistics.distributions import binomial_test_two_sided, wilson_interval

Verdict = Literal["pass", "fail", "undecided"]


@dataclass(frozen=True)
class Agreement:
    agreed: float
    compared: float
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.agreed / self.compared if self.compared else 0.0

    def judge(self, minimum: float) -> Verdict:
        """Pass when the whole interval is at or above ``minimum``, fail when it is below."""
        if self.low >= minimum:
            return "pass"
        if self.high < minimum:
            return "fail"
        return "undecided"


def agreement(agreed: float, compared: float, confidence: float = 0.95) -> Agreement | None:
    """The agreement rate with its Wilson interval; None before anything was compared.

    >>> a = agreement(990, 1000)
    >>> round(a.rate, 3), round(a.low, 4), a.judge(0.95), a.judge(0.99), a.judge(0.999)
    (0.99, 0.9817, 'pass', 'undecided', 'fail')
    """
    if compared <= 0:
        return None
    low, high = wilson_interval(agreed, compared, confidence)
    return Agreement(agreed, compared, low, high)


@dataclass(frozen=True)
class McNemar:
    stable_only: int
    """Rows the stable version got right and the shadow wrong."""
    shadow_only: int
    """Rows the shadow got right and the stable version wrong."""
    p_value: float

    def better(self, alpha: float) -> Literal["stable", "shadow"] | None:
        """The version right significantly more often, if either."""
        if self.p_value >= alpha or self.stable_only == self.shadow_only:
            return None
        return "shadow" if self.shadow_only > self.stable_only else "stable"


def mcnemar(stable_only: int, shadow_only: int) -> McNemar:
    """McNemar's exact test on the discordant rows.

    >>> m = mcnemar(10, 30)
    >>> round(m.p_value, 5), m.better(0.05)
    (0.00222, 'shadow')
    """
    n = stable_only + shadow_only
    return McNemar(stable_only, shadow_only, binomial_test_two_sided(shadow_only, n))
