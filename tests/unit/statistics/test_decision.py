"""The experiment verdict's rules, one case each."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from modelwerk.statistics.decision import ExperimentLook, MetricLook, evaluate
from modelwerk.statistics.sequential import ArmSummary

EVEN = (ArmSummary.binary(800, 1000), ArmSummary.binary(800, 1000))
BETTER = (ArmSummary.binary(800, 1000), ArmSummary.binary(880, 1000))
WORSE = (ArmSummary.binary(880, 1000), ArmSummary.binary(800, 1000))


def look(
    arms: tuple[ArmSummary, ArmSummary] = EVEN,
    *,
    better: str = "higher",
    guardrails: tuple[MetricLook, ...] = (),
    units: tuple[float, float] = (1000, 1000),
    elapsed: float = 60,
    min_sample: float = 150,
    previous: float | None = None,
) -> ExperimentLook:
    return ExperimentLook(
        primary=MetricLook("accuracy", *arms, better, 0.05, previous_p=previous),  # type: ignore[arg-type]
        guardrails=guardrails,
        units_a=units[0],
        units_b=units[1],
        share_b=0.5,
        alpha=0.05,
        min_sample=min_sample,
        elapsed_seconds=elapsed,
        max_duration_seconds=3600,
    )


def latency(a_mean: float, b_mean: float, bound: float, n: float = 2000) -> MetricLook:
    sd = 0.01
    return MetricLook(
        "latency",
        ArmSummary(n, a_mean, sd * sd),
        ArmSummary(n, b_mean, sd * sd),
        "lower",
        tau=0.005,
        bound=bound,
    )


def test_b_wins_and_loses_by_direction() -> None:
    assert evaluate(look(BETTER)).outcome == "BWins"
    assert evaluate(look(WORSE)).outcome == "BLoses"
    # for an error metric (lower is better) the same figures mean the opposite
    assert evaluate(look(BETTER, better="lower")).outcome == "BLoses"
    verdict = evaluate(look(BETTER))
    assert verdict.primary.difference == pytest.approx(0.08)
    assert verdict.primary.ci_low is not None and 0 < verdict.primary.ci_low < 0.08
    assert "B is better, B - A = +0.08" in verdict.reason


def test_nothing_is_decided_before_the_minimum_sample() -> None:
    verdict = evaluate(look(BETTER, min_sample=1001))
    assert verdict.outcome == "Running"
    assert "1000 of 1001" in verdict.reason
    assert verdict.primary.p_value == 1.0  # the running minimum has not started


def test_the_running_p_value_keeps_an_earlier_evidence() -> None:
    slightly = (ArmSummary.binary(800, 1000), ArmSummary.binary(810, 1000))
    assert evaluate(look(slightly)).outcome == "Running"
    verdict = evaluate(look(slightly, previous=0.01))
    assert verdict.primary.p_value == 0.01
    assert verdict.outcome == "BWins"


def test_no_winner_at_the_maximum_duration() -> None:
    verdict = evaluate(look(EVEN, elapsed=3600))
    assert verdict.outcome == "NoWinner"
    assert "maximum duration" in verdict.reason


def test_sample_ratio_mismatch_comes_first() -> None:
    verdict = evaluate(look(BETTER, units=(1000, 800)))
    assert verdict.outcome == "SampleRatioMismatch"
    assert verdict.srm is not None and verdict.srm.p_value < 0.001


def test_an_unchecked_split_is_reported_and_the_primary_metric_still_decides() -> None:
    # Requests of sticky keys: a few more heavy users hashing to one arm skew them for good. The
    # mismatch is reported, but it must not hold back the primary metric's verdict.
    unchecked = replace(look(BETTER, units=(1000, 800)), units_checked=False)
    verdict = evaluate(unchecked)
    assert verdict.outcome == "BWins"
    assert verdict.srm is not None and verdict.srm.mismatch


def test_a_guardrail_aborts_only_beyond_its_bound() -> None:
    slower = latency(0.020, 0.030, bound=0.005)
    verdict = evaluate(look(BETTER, guardrails=(slower,)))
    assert verdict.outcome == "GuardrailFailed"
    assert "latency" in verdict.reason
    # 10 ms slower with certainty, but the bound allows 20 ms: B still wins
    tolerated = latency(0.020, 0.030, bound=0.020)
    assert evaluate(look(BETTER, guardrails=(tolerated,))).outcome == "BWins"
    # faster is never a guardrail failure
    faster = latency(0.030, 0.020, bound=0.0)
    assert evaluate(look(EVEN, guardrails=(faster,))).outcome == "Running"


def test_guardrails_and_the_primary_are_adjusted_together() -> None:
    """Benjamini-Hochberg over the family: the primary alone at p just below alpha is
    significant, beside a null guardrail it is not."""
    a, b = ArmSummary.binary(800, 1000), ArmSummary.binary(854, 1000)
    alone = evaluate(look((a, b)))
    assert 0.025 < alone.primary.p_value <= 0.05 and alone.outcome == "BWins"
    null_guard = latency(0.020, 0.020, bound=0.0)
    together = evaluate(look((a, b), guardrails=(null_guard,)))
    assert together.primary.adjusted_p == pytest.approx(2 * alone.primary.p_value)
    assert together.outcome == "Running"


def test_infinite_duration_never_ends_by_time() -> None:
    verdict = evaluate(
        ExperimentLook(
            primary=MetricLook("reward", *EVEN, "higher", 0.05),
            guardrails=(),
            units_a=10,
            units_b=10,
            share_b=0.5,
            alpha=0.05,
            min_sample=150,
            elapsed_seconds=1e9,
            max_duration_seconds=math.inf,
        )
    )
    assert verdict.outcome == "Running"


def test_distinct_units_are_tested_exactly_and_a_mismatch_stops_the_experiment() -> None:
    distinct = replace(look(BETTER, units=(1000, 850)), units_distinct=True)
    verdict = evaluate(distinct)
    assert verdict.outcome == "SampleRatioMismatch"
    assert verdict.srm is not None and verdict.srm.test == "binomial"
    assert "binomial p =" in verdict.reason
    even = evaluate(replace(look(BETTER, units=(1000, 990)), units_distinct=True))
    assert even.outcome == "BWins" and even.srm is not None and not even.srm.mismatch
