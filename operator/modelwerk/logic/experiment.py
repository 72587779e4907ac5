"""The A/B experiment strategy: from the experiment's status, its arms and its figures, what
happens next.

Stages (``ExperimentStatus.decision``):

* ``Starting``: arm A (the stable version, active color) is rolled over to pods that take part
  in the experiment, arm B (the new version, idle color) starts with ⌈replicas·share⌉ pods;
  the stable Service still selects A only. Bounded by ``progressDeadlineSeconds``.
* ``Running``: both arms are up; the stable Service selects both colors and the pods assign
  and forward (``runtime.server.experiment``). Every ``intervalSeconds`` the figures of both
  arms are read and tested (``statistics.decision``); each look counts as progress, so only
  a look that cannot be taken lets the progress deadline run out.
* a decision: ``BWins`` → promote (``onWin: promote``) or hold until a person promotes
  (``wait``); ``NoWinner`` → keep A, or promote with ``onNoWinner: promote``; ``BLoses``,
  ``GuardrailFailed`` and ``SampleRatioMismatch`` → keep A (the rollout aborts).
* ``Promoted`` / ``Aborted``: the rollout machine finished it; the status stays for reading.

A person's ``promote`` promotes B whatever the figures say; ``abort`` keeps A. Both are
recorded in the experiment's reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from modelwerk.api.v1alpha1.experiment import (
    ArmStatus,
    Experiment,
    ExperimentMetric,
    ExperimentStatus,
    MetricResult,
)
from modelwerk.logic.experiment_figures import ArmCounters, ExperimentFigures, JoinedArm
from modelwerk.statistics import decision as stats
from modelwerk.statistics.sample_size import sequential_sample_size
from modelwerk.statistics.sequential import ArmSummary

DEFAULT_BINARY_EFFECT = 0.05
DEFAULT_CONTINUOUS_EFFECT_SD = 0.1
"""Without a minimum detectable effect, continuous metrics are tuned for a tenth of arm A's
standard deviation."""

Action = Literal["start", "run", "hold", "promote", "abort"]
PROMOTING: frozenset[str] = frozenset({"BWins", "NoWinner"})


@dataclass(frozen=True)
class ExperimentInput:
    spec: Experiment
    status: ExperimentStatus | None
    stable: str
    target: str
    uid: str
    """The Deployment's uid (the default salt)."""
    arms_up: bool
    """Both arms run their version on all their pods, with the experiment's template."""
    figures: ExperimentFigures | str | None
    """This look's figures (a string: why they could not be read), when a look was due."""
    approved: bool
    """A person sent promote."""
    now: datetime


@dataclass
class ExperimentStep:
    status: ExperimentStatus
    action: Action
    """start: bring the arms up; run: keep both arms serving; hold: both serve, B waits for
    a person; promote: finish with B; abort: keep A."""
    reason: str
    message: str
    wake_in: float | None = None
    progressed: bool = False
    events: list[tuple[Literal["Normal", "Warning"], str, str]] = field(default_factory=list)


def default_salt(uid: str, stable: str, target: str) -> str:
    """Distinct per Deployment and version pair, stable across operator restarts.

    >>> default_salt("6c1f", "iris-v1", "iris-v2")
    '6c1f/iris-v1/iris-v2'
    """
    return f"{uid}/{stable}/{target}"


def b_replicas(replicas: int, share_b: float) -> int:
    """Pods of arm B: its share of the replicas, at least one.

    >>> b_replicas(4, 0.5), b_replicas(4, 0.1), b_replicas(0, 0.5)
    (2, 1, 0)
    """
    if replicas == 0:
        return 0
    return max(1, math.ceil(replicas * share_b))


def look_due(status: ExperimentStatus | None, spec: Experiment, now: datetime) -> bool:
    """Whether the next decision needs the figures of both arms."""
    if status is None or status.decision != "Running":
        return False
    if status.last_look_time is None:
        return True
    return now >= status.last_look_time + timedelta(seconds=spec.interval_seconds)


def waiting_for_promotion(status: ExperimentStatus | None, spec: Experiment | None) -> bool:
    """B won and the experiment waits for a person's promote (no deadline meanwhile)."""
    return (
        status is not None
        and spec is not None
        and status.decision == "BWins"
        and spec.on_win == "wait"
    )


def step(inp: ExperimentInput) -> ExperimentStep:
    """The experiment's next move (pure)."""
    spec, now = inp.spec, inp.now
    status = inp.status
    if status is None or (status.version_a, status.version_b) != (inp.stable, inp.target):
        status = ExperimentStatus(
            version_a=inp.stable,
            version_b=inp.target,
            salt=spec.salt or default_salt(inp.uid, inp.stable, inp.target),
            reason="starting the arms",
        )
    if inp.approved and status.decision not in ("Promoted", "Aborted"):
        why = f"promoted by a person ({status.decision}: {status.reason or 'no decision yet'})"
        return ExperimentStep(
            _decided(status, status.decision, why, now), "promote", "Promoting", why
        )
    if status.decision == "Starting":
        if not inp.arms_up:
            message = (
                f"starting arm B ({inp.target}) and moving arm A ({inp.stable}) into the experiment"
            )
            return ExperimentStep(status, "start", "ExperimentStarting", message)
        status = status.model_copy(
            update={"decision": "Running", "start_time": now, "reason": "both arms serving"}
        )
        step_ = ExperimentStep(
            status,
            "run",
            "ExperimentRunning",
            f"experiment started: {spec.traffic_percent}% of units on {inp.target}",
            wake_in=1.0,
            progressed=True,
        )
        step_.events.append(("Normal", "ExperimentStarted", step_.message))
        return step_
    if status.decision == "Running":
        return _running(inp, status)
    return _after(inp, status)


def _running(inp: ExperimentInput, status: ExperimentStatus) -> ExperimentStep:
    spec, now = inp.spec, inp.now
    figures = inp.figures
    if isinstance(figures, str):
        return ExperimentStep(
            status.model_copy(update={"reason": f"figures could not be read: {figures}"}),
            "run",
            "ExperimentRunning",
            f"experiment running; figures could not be read: {figures}",
            wake_in=float(spec.interval_seconds),
        )
    if figures is None:
        due = (
            status.last_look_time + timedelta(seconds=spec.interval_seconds)
            if status.last_look_time
            else now
        )
        return ExperimentStep(
            status,
            "run",
            "ExperimentRunning",
            f"experiment running: {status.reason}",
            wake_in=max((due - now).total_seconds(), 1.0),
        )
    status, verdict = look(spec, status, figures, now)
    outcome = verdict.outcome
    if outcome == "Running":
        return ExperimentStep(
            status,
            "run",
            "ExperimentRunning",
            f"experiment running: {status.reason}",
            wake_in=float(spec.interval_seconds),
            progressed=True,
        )
    status = _decided(status, outcome, verdict.reason, now)
    result = _after(inp, status)
    result.progressed = True
    kind: Literal["Normal", "Warning"] = "Normal" if outcome in ("BWins", "NoWinner") else "Warning"
    result.events.insert(0, (kind, f"Experiment{outcome}", verdict.reason))
    return result


def _after(inp: ExperimentInput, status: ExperimentStatus) -> ExperimentStep:
    """What a decided experiment does."""
    spec, decision = inp.spec, status.decision
    reason = status.reason or decision
    if decision == "BWins" and spec.on_win == "wait":
        return ExperimentStep(
            status, "hold", "WaitingForPromotion", f"B wins ({reason}); promote to roll it out"
        )
    if decision == "BWins" or (decision == "NoWinner" and spec.on_no_winner == "promote"):
        return ExperimentStep(status, "promote", "ExperimentPromoting", reason)
    if decision in ("Promoted",):
        return ExperimentStep(status, "promote", "ExperimentPromoting", reason)
    return ExperimentStep(status, "abort", f"Experiment{decision}", f"A is kept: {reason}")


def _decided(
    status: ExperimentStatus, decision: str, reason: str, now: datetime
) -> ExperimentStatus:
    return status.model_copy(update={"decision": decision, "reason": reason, "decided_time": now})


def finished(
    status: ExperimentStatus | None, promoted: bool, now: datetime
) -> ExperimentStatus | None:
    """The status once the rollout machine promoted B or kept A."""
    if status is None or status.decision in ("Promoted", "Aborted"):
        return status
    final = "Promoted" if promoted else "Aborted"
    reason = f"{status.decision}: {status.reason}" if status.reason else status.decision
    return status.model_copy(
        update={"decision": final, "reason": reason, "decided_time": status.decided_time or now}
    )


# --------------------------------------------------------------------------- one look


def look(
    spec: Experiment, status: ExperimentStatus, figures: ExperimentFigures, now: datetime
) -> tuple[ExperimentStatus, stats.Verdict]:
    """Test this look's figures; the status updated with them, and the verdict."""
    primary = _primary(spec, figures, status)
    guards = [_guardrail(g.metric, g.max_increase, figures, status) for g in spec.guardrails]
    start = status.start_time or now
    verdict = stats.evaluate(
        stats.ExperimentLook(
            primary=primary,
            guardrails=guards,
            units_a=figures.units("a"),
            units_b=figures.units("b"),
            share_b=spec.share_b,
            alpha=spec.alpha,
            min_sample=spec.min_sample_per_arm,
            elapsed_seconds=(now - start).total_seconds(),
            max_duration_seconds=spec.max_duration_seconds,
            units_checked=not figures.units_are_requests,
            units_distinct=figures.units_distinct,
        )
    )
    arms = [
        _arm("A", status.version_a, figures.units("a"), primary.a, figures.a),
        _arm("B", status.version_b, figures.units("b"), primary.b, figures.b),
    ]
    reason = verdict.reason
    if verdict.srm is not None and verdict.srm.mismatch and figures.units_are_requests:
        reason += (
            f"; requests split {figures.units('a'):.0f}/{figures.units('b'):.0f} "
            f"(SRM p = {verdict.srm.p_value:.2g}), not checked: keyed requests are not units"
        )
    updated = status.model_copy(
        update={
            "arms": arms,
            "primary": _result(verdict.primary),
            "guardrails": [_result(g) for g in verdict.guardrails],
            "srm_p_value": verdict.srm.p_value if verdict.srm is not None else None,
            "units_are_requests": figures.units_are_requests,
            "unit_sample_rate": (
                figures.joined.unit_rate
                if figures.joined is not None and figures.units_distinct
                else None
            ),
            "last_look_time": now,
            "looks": status.looks + 1,
            "reason": reason,
            "recommended_sample_per_arm": _recommended(spec, primary),
        }
    )
    return updated, verdict


def _previous(status: ExperimentStatus, name: str) -> float | None:
    results = ([status.primary] if status.primary else []) + status.guardrails
    return next((r.p_value for r in results if r.name == name), None)


def _primary(
    spec: Experiment, figures: ExperimentFigures, status: ExperimentStatus
) -> stats.MetricLook:
    metric = spec.metric
    if figures.joined is not None:
        a = joined_summary(spec.metric, figures.joined.a)
        b = joined_summary(spec.metric, figures.joined.b)
    elif metric.name == "accuracy":
        # without capture: the labels matched in the process that served their prediction
        a = ArmSummary.binary(figures.a.correct, figures.a.correct + figures.a.incorrect)
        b = ArmSummary.binary(figures.b.correct, figures.b.correct + figures.b.incorrect)
    else:
        a = b = ArmSummary(0, 0.0, 0.0)  # the API refuses these metrics without capture
    tau = metric.minimum_detectable_effect or (
        DEFAULT_BINARY_EFFECT
        if metric.binary
        else max(DEFAULT_CONTINUOUS_EFFECT_SD * math.sqrt(a.variance), 1e-12)
    )
    better: stats.Better = "higher" if metric.higher_is_better else "lower"
    return stats.MetricLook(
        metric.name, a, b, better, tau, previous_p=_previous(status, metric.name)
    )


def joined_summary(metric: ExperimentMetric, arm: JoinedArm) -> ArmSummary:
    """One arm's primary metric, per labelled (or rewarded) row, from the joined figures:
    accuracy a 0/1 per row, mae the absolute error, rmse the squared error (its mean is the
    MSE; the test compares MSEs, which order the arms as their RMSEs do), reward the reward.

    >>> joined_summary(ExperimentMetric(name="mae"), JoinedArm(matched=4.0, abs_error=4.0,
    ...     squared_error=6.0))
    ArmSummary(n=4.0, mean=1.0, variance=0.6666666666666666)
    """
    if metric.name == "accuracy":
        return ArmSummary.binary(arm.correct, arm.matched)
    if metric.name == "mae":
        return ArmSummary.continuous(arm.matched, arm.abs_error, arm.squared_error)
    if metric.name == "rmse":
        return ArmSummary.continuous(arm.matched, arm.squared_error, arm.error_fourth)
    if metric.reward_type == "binary":
        return ArmSummary.binary(arm.reward_sum, arm.rewards)
    return ArmSummary.continuous(arm.rewards, arm.reward_sum, arm.reward_squares)


def _guardrail(
    metric: str, bound: float, figures: ExperimentFigures, status: ExperimentStatus
) -> stats.MetricLook:
    if metric == "errorRate":
        a = ArmSummary.binary(figures.a.errors, figures.a.served)
        b = ArmSummary.binary(figures.b.errors, figures.b.served)
        tau = max(bound, 0.01)
    else:
        a = ArmSummary.continuous(figures.a.served, figures.a.seconds, figures.a.squares)
        b = ArmSummary.continuous(figures.b.served, figures.b.seconds, figures.b.squares)
        tau = max(bound, 0.25 * math.sqrt(a.variance), 1e-4)
    return stats.MetricLook(metric, a, b, "lower", tau, bound, _previous(status, metric))


def _recommended(spec: Experiment, primary: stats.MetricLook) -> int | None:
    a = primary.a
    if a.n < 2 or a.variance <= 0:
        return None
    mde = primary.tau
    if spec.metric.binary:
        p = a.mean + (mde if spec.metric.higher_is_better else -mde)
        var_b = min(max(p, 0.0), 1.0) * (1 - min(max(p, 0.0), 1.0)) or a.variance
    else:
        var_b = a.variance
    try:
        size = sequential_sample_size(
            mde, a.variance, var_b, alpha=spec.alpha, share_b=spec.share_b
        )
    except ValueError:
        return None
    return max(size.a, size.b)


def _arm(
    arm: Literal["A", "B"], version: str, units: float, summary: ArmSummary, c: ArmCounters
) -> ArmStatus:
    return ArmStatus(
        arm=arm,
        version=version,
        units=units,
        observations=summary.n,
        estimate=summary.mean if summary.n > 0 else None,
        requests=c.served,
        errors=c.errors,
        mean_latency_seconds=c.seconds / c.served if c.served else None,
    )


def _result(r: stats.MetricResult) -> MetricResult:
    return MetricResult(
        name=r.name,
        difference=r.difference,
        ci_low=r.ci_low,
        ci_high=r.ci_high,
        p_value=r.p_value,
        adjusted_p_value=r.adjusted_p,
    )
