"""The experiment statistics proven by seeded simulation.

Each scenario runs many experiments, each looked at after every batch of observations exactly
as the operator looks at a running experiment, through the real decision function
(``statistics.decision.evaluate``, with the running p-value carried from look to look). Data
are drawn with numpy and accumulated per batch; what is asserted:

* A/A (no true difference): the share of experiments that ever declare a winner (either way)
  stays at or below alpha, within three standard errors of the simulation;
* a true difference of 5 accuracy points at the sample the docs recommend: B wins in at least
  80 % of the experiments, and never loses;
* a skewed assignment is flagged by the sample-ratio-mismatch check, and a correct one almost
  never is, at every look.

The figures of these and larger runs are in the README ("A/B experiments"), printed by
``python -m bench.experiments.simulate``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from modelwerk.statistics.decision import ExperimentLook, MetricLook, Outcome, evaluate
from modelwerk.statistics.sample_size import binary_variances, sequential_sample_size
from modelwerk.statistics.sequential import ArmSummary

ALPHA = 0.05
EXPERIMENTS = 1_000


@dataclass(frozen=True)
class Data:
    """Cumulative per-look totals, shape (experiments, looks)."""

    units_a: np.ndarray
    units_b: np.ndarray
    sum_a: np.ndarray
    sum_b: np.ndarray
    sq_a: np.ndarray
    sq_b: np.ndarray


def binary(
    rng: np.random.Generator, p_a: float, p_b: float, batch: tuple[int, int], looks: int
) -> Data:
    n_a = np.full((EXPERIMENTS, looks), batch[0]).cumsum(axis=1)
    n_b = np.full((EXPERIMENTS, looks), batch[1]).cumsum(axis=1)
    s_a = rng.binomial(batch[0], p_a, (EXPERIMENTS, looks)).cumsum(axis=1)
    s_b = rng.binomial(batch[1], p_b, (EXPERIMENTS, looks)).cumsum(axis=1)
    return Data(n_a, n_b, s_a, s_b, s_a, s_b)


Draw = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def continuous(rng: np.random.Generator, draw: Draw, batch: int, looks: int) -> Data:
    x_a, x_b = draw(rng, (EXPERIMENTS, looks, batch)), draw(rng, (EXPERIMENTS, looks, batch))
    n = np.full((EXPERIMENTS, looks), batch).cumsum(axis=1)
    return Data(
        n,
        n.copy(),
        x_a.sum(axis=2).cumsum(axis=1),
        x_b.sum(axis=2).cumsum(axis=1),
        (x_a**2).sum(axis=2).cumsum(axis=1),
        (x_b**2).sum(axis=2).cumsum(axis=1),
    )


def run(
    data: Data,
    *,
    kind: str,
    tau: float,
    share_b: float = 0.5,
    min_sample: int = 150,
    units: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[Outcome, float]:
    """Look at every experiment after every batch until it decides; the share of each outcome."""
    outcomes: dict[Outcome, int] = {}
    experiments, looks = data.units_a.shape
    units_a, units_b = units if units is not None else (data.units_a, data.units_b)
    for e in range(experiments):
        previous: float | None = None
        outcome: Outcome = "Running"
        for t in range(looks):
            n_a, n_b = float(data.units_a[e, t]), float(data.units_b[e, t])
            if kind == "binary":
                a = ArmSummary.binary(float(data.sum_a[e, t]), n_a)
                b = ArmSummary.binary(float(data.sum_b[e, t]), n_b)
            else:
                a = ArmSummary.continuous(n_a, float(data.sum_a[e, t]), float(data.sq_a[e, t]))
                b = ArmSummary.continuous(n_b, float(data.sum_b[e, t]), float(data.sq_b[e, t]))
            verdict = evaluate(
                ExperimentLook(
                    primary=MetricLook("metric", a, b, "higher", tau, previous_p=previous),
                    guardrails=(),
                    units_a=float(units_a[e, t]),
                    units_b=float(units_b[e, t]),
                    share_b=share_b,
                    alpha=ALPHA,
                    min_sample=min_sample,
                    elapsed_seconds=0,
                    max_duration_seconds=math.inf,
                )
            )
            previous = verdict.primary.p_value
            if verdict.outcome != "Running":
                outcome = verdict.outcome
                break
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return {k: v / experiments for k, v in outcomes.items()}


def at_most_alpha(share: float) -> bool:
    """At or below alpha within three standard errors of a simulation of EXPERIMENTS runs."""
    return share <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / EXPERIMENTS)


def declared(outcomes: dict[Outcome, float]) -> float:
    return outcomes.get("BWins", 0.0) + outcomes.get("BLoses", 0.0)


def test_aa_binary_declares_a_winner_at_most_alpha_of_the_time() -> None:
    """1,000 A/A experiments at 80 % accuracy, 40 looks of 50 units per arm (2,000 per arm)."""
    data = binary(np.random.default_rng(20250101), 0.8, 0.8, (50, 50), 40)
    outcomes = run(data, kind="binary", tau=0.05)
    assert at_most_alpha(declared(outcomes)), outcomes


def test_aa_binary_with_a_small_share_for_b() -> None:
    """B gets 20 % of the units: the unequal-arm variance keeps the error rate."""
    data = binary(np.random.default_rng(20250102), 0.9, 0.9, (80, 20), 60)
    outcomes = run(data, kind="binary", tau=0.03, share_b=0.2)
    assert at_most_alpha(declared(outcomes)), outcomes


def test_aa_continuous_skewed_metric() -> None:
    """Revenue-like rewards (lognormal, skewness about 6): the plug-in variance holds up."""

    def draw(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.lognormal(0.0, 1.0, shape)

    data = continuous(np.random.default_rng(20250103), draw, 40, 40)
    outcomes = run(data, kind="continuous", tau=0.15)
    assert at_most_alpha(declared(outcomes)), outcomes


def test_five_points_at_the_recommended_sample_b_wins_at_least_80_percent() -> None:
    """80 % against 85 % accuracy; the experiment stops at the recommended sample per arm."""
    va, vb = binary_variances(0.80, 0.05)
    size = sequential_sample_size(0.05, va, vb, alpha=ALPHA, power=0.8)
    batch = 50
    looks = math.ceil(size.a / batch)
    data = binary(np.random.default_rng(20250104), 0.80, 0.85, (batch, batch), looks)
    outcomes = run(data, kind="binary", tau=0.05)
    assert outcomes.get("BWins", 0) >= 0.80, outcomes
    assert outcomes.get("BLoses", 0) == 0, outcomes


@pytest.mark.parametrize(("true_share", "caught"), [(0.47, 0.99), (0.5, None)])
def test_srm_catches_a_skewed_assignment(true_share: float, caught: float | None) -> None:
    """Configured 50/50; units really split 53/47 (a forwarding failure losing 6 % of B's
    units) or really 50/50. 40 looks of 250 units. The primary metric is constant, so only the
    SRM check can end an experiment."""
    rng = np.random.default_rng(20250105)
    looks, batch = 40, 250
    to_b = rng.binomial(batch, true_share, (EXPERIMENTS, looks)).cumsum(axis=1)
    total = np.full((EXPERIMENTS, looks), batch).cumsum(axis=1)
    data = binary(rng, 1.0, 1.0, (batch // 2, batch // 2), looks)
    outcomes = run(data, kind="binary", tau=0.05, units=(total - to_b, to_b))
    flagged = outcomes.get("SampleRatioMismatch", 0.0)
    if caught is not None:
        assert flagged >= caught, outcomes
    else:
        assert flagged <= 0.01, outcomes
