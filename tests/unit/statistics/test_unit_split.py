"""The sample-ratio check on distinct units, proven by seeded simulation through the real
hashes: each experiment has its own salt; a user's arm is the server's ``assign`` bucket of the
salted key, and whether the aggregator keeps the unit is the join's hash of the server's
``unit_of`` below a threshold (``JoinState``'s sampling). Users arrive over the experiment; at
each of ten looks the kept distinct units of each arm are tested with the exact binomial test
(``srm.unit_split_test``, p < 0.001 flags the experiment as broken).

What is asserted:

* a correct assignment (B's share as configured) is flagged at the last look, and at any of
  the ten looks, no more often than the budget allows (0.001 per look; at most ten times that
  over ten looks), within three standard errors of the simulation;
* a broken assignment (45/55 where 50/50 is configured, or 30 % instead of 25 %) is flagged by
  the last look in almost every experiment.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest

from modelwerk.runtime.capture.units import ALL_UNITS
from modelwerk.runtime.server.experiment import unit_of
from modelwerk.statistics.srm import SRM_THRESHOLD, unit_split_test

LOOKS = 10


def arms_and_kept(salt: str, users: int, share_b: float, rate: float) -> tuple[np.ndarray, ...]:
    """Per user: assigned to B (the server's bucket), kept by the aggregator's sampling."""
    keys = [f"user-{i}" for i in range(users)]
    buckets = np.array(
        [int.from_bytes(hashlib.sha256(f"{salt}:{k}".encode()).digest()[:8], "big") for k in keys],
        dtype=np.float64,
    )
    to_b = buckets / 2.0**64 < share_b
    hashes = pd.util.hash_array(np.array([unit_of(salt, k) for k in keys], dtype=object))
    threshold = np.uint64(ALL_UNITS if rate >= 1 else int(rate * 2.0**64) - 1)
    return to_b, hashes <= threshold


def flagged_looks(
    experiments: int, users: int, true_share: float, share_b: float, rate: float, seed: int
) -> np.ndarray:
    """(experiments, looks): whether each look flagged a mismatch."""
    rng = np.random.default_rng(seed)
    out = np.zeros((experiments, LOOKS), dtype=bool)
    for e in range(experiments):
        to_b, kept = arms_and_kept(f"experiment-{seed}-{e}", users, true_share, rate)
        order = rng.permutation(users)  # the order users first come
        b_seen = np.cumsum((to_b & kept)[order])
        a_seen = np.cumsum((~to_b & kept)[order])
        for k in range(LOOKS):
            at = math.ceil(users * (k + 1) / LOOKS) - 1
            result = unit_split_test(int(a_seen[at]), int(b_seen[at]), share_b)
            out[e, k] = result is not None and result.p_value < SRM_THRESHOLD
    return out


def within(rate: float, budget: float, n: int) -> bool:
    return rate <= budget + 3 * math.sqrt(budget * (1 - budget) / n)


@pytest.mark.parametrize(("share_b", "rate"), [(0.5, 1.0), (0.2, 0.25)])
def test_a_correct_assignment_stays_within_the_false_alarm_budget(
    share_b: float, rate: float
) -> None:
    experiments = 1_000
    flagged = flagged_looks(experiments, 1_000, share_b, share_b, rate, seed=31)
    last = flagged[:, -1].mean()
    ever = flagged.any(axis=1).mean()
    assert within(last, SRM_THRESHOLD, experiments), last
    assert within(ever, LOOKS * SRM_THRESHOLD, experiments), ever


@pytest.mark.parametrize(
    ("true_share", "share_b", "rate"), [(0.55, 0.5, 1.0), (0.55, 0.5, 0.5), (0.30, 0.25, 1.0)]
)
def test_a_broken_assignment_is_caught(true_share: float, share_b: float, rate: float) -> None:
    experiments = 50
    flagged = flagged_looks(experiments, 10_000, true_share, share_b, rate, seed=37)
    assert flagged[:, -1].mean() >= 0.99, flagged[:, -1].mean()
