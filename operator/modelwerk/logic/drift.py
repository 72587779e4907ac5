"""Drift of the stable version's live inputs.

The serving pods compute per-feature drift over their recent window; the operator reads the
highest score every ``monitoring.drift.intervalSeconds`` and sets ``DriftDetected``. Drift is
one of the triggers of retraining (``logic.retraining``), which decides whether a run starts.

A pod reports a feature's score only once its window holds enough rows that sampling noise
stays below the threshold (the server derives the count from the feature's bins, see
``runtime/server/drift_floor.py``). No score is never "no drift": DriftDetected is Unknown with
the rows seen and needed (NotEnoughData), or says that the window (WindowTooSmall) or the
training profile (ProfileTooSmall) can never be large enough for the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from modelwerk.api.conditions import ConditionStatus, get_condition
from modelwerk.api.v1alpha1.deployment import (
    Deployment,
    DriftMonitoring,
    DriftStatus,
    DriftWindow,
    MetricSample,
)
from modelwerk.builders.serving import drift_threshold
from modelwerk.logic.plan import Event

DRIFT_DETECTED = "DriftDetected"


@dataclass(frozen=True)
class DriftInput:
    sample: MetricSample | str | None = None
    """Metrics of the stable version's pods, when ``wants_drift_sample`` asked (a string: why
    they could not be read)."""


@dataclass
class DriftDecision:
    drift: DriftStatus | None
    condition: tuple[ConditionStatus, str, str] | None = None
    """DriftDetected status, reason and message; None leaves the condition as it is."""
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    detected: bool = False
    """Drift crossed the threshold in this decision (for the metric)."""


def wants_drift_sample(dep: Deployment, now: datetime) -> bool:
    monitoring = dep.spec.monitoring
    if monitoring is None or monitoring.drift is None or dep.status.stable_version is None:
        return False
    measured = dep.status.drift.measured_time if dep.status.drift else None
    return measured is None or now >= measured + timedelta(
        seconds=monitoring.drift.interval_seconds
    )


def decide_drift(dep: Deployment, inp: DriftInput, now: datetime) -> DriftDecision:
    monitoring = dep.spec.monitoring
    drift = monitoring.drift if monitoring else None
    previous = dep.status.drift or DriftStatus()
    if drift is None:
        return DriftDecision(drift=dep.status.drift)
    decision = DriftDecision(drift=previous)
    measured = previous.measured_time
    if inp.sample is not None:
        measured = now
    if measured is not None:
        due = measured + timedelta(seconds=drift.interval_seconds)
        decision.requeue_after = max((due - now).total_seconds(), 1.0)
    if isinstance(inp.sample, str):
        decision.drift = previous.model_copy(update={"measured_time": now})
        decision.condition = ("Unknown", "MetricsUnavailable", inp.sample)
        return decision
    if inp.sample is None:
        return decision
    score, feature = inp.sample.drift_score, inp.sample.drift_feature
    decision.drift = previous.model_copy(
        update={"score": score, "feature": feature, "measured_time": now}
    )
    window = inp.sample.drift_window
    # the pods' floor is for the lowest bound drift is compared with (analysis checks too)
    spec = drift.model_copy(update={"threshold": drift_threshold(dep) or drift.threshold})
    blind = _unmeasured(spec, window)
    if score is None:
        decision.condition = ("Unknown", *_waiting(spec, window, blind))
        return decision
    was = get_condition(dep.status.conditions, DRIFT_DETECTED)
    text = f"{drift.method.upper()} {score:.3g} on {feature or 'a feature'}"
    note = f"; {blind}" if blind else ""
    if score <= drift.threshold:
        decision.condition = ("False", "WithinThreshold", f"{text} <= {drift.threshold:g}{note}")
        return decision
    decision.condition = ("True", "DriftAboveThreshold", f"{text} > {drift.threshold:g}{note}")
    if was is None or was.status != "True":
        decision.detected = True
        decision.events.append(
            Event("Warning", "DriftDetected", f"Drift of the live inputs: {text}")
        )
    return decision


def _unmeasured(drift: DriftMonitoring, window: DriftWindow | None) -> str | None:
    """Why a feature's drift is never reported, when the pods say one's is not (its score
    needs more rows than the window holds, or than any window could).

    >>> spec = DriftMonitoring(threshold=0.1, window=500)
    >>> _unmeasured(spec, DriftWindow(rows=500, needed=900, feature="age"))
    'PSI 0.1 on age needs 900 rows of live inputs, the window holds 500: raise monitoring.drift.window or the threshold'
    >>> _unmeasured(spec, DriftWindow(rows=500, needed=None, feature="age"))
    'no window tells PSI 0.1 on age from sampling noise: the training profile has too few rows; raise monitoring.drift.threshold'
    >>> _unmeasured(spec, DriftWindow(rows=80, needed=300, feature="age")) is None
    True
    """
    if window is None or window.feature is None:
        return None
    what = f"{drift.method.upper()} {drift.threshold:g} on {window.feature}"
    if window.needed is None:
        return (
            f"no window tells {what} from sampling noise: the training profile has too few "
            "rows; raise monitoring.drift.threshold"
        )
    if window.needed > drift.window:
        return (
            f"{what} needs {window.needed} rows of live inputs, the window holds "
            f"{drift.window}: raise monitoring.drift.window or the threshold"
        )
    return None


def _waiting(
    drift: DriftMonitoring, window: DriftWindow | None, blind: str | None
) -> tuple[str, str]:
    """Reason and message while no feature has a score yet."""
    if blind is not None:
        reason = "ProfileTooSmall" if window and window.needed is None else "WindowTooSmall"
        rows = window.rows if window else 0
        return reason, f"No drift score ({rows} rows in the fullest window): {blind}"
    if window is None or window.needed is None:
        return "NotEnoughData", "Not enough recent rows to measure drift"
    return "NotEnoughData", (
        f"Waiting for live inputs: {window.rows} of the {window.needed} rows a window needs "
        f"before {drift.method.upper()} can be compared with {drift.threshold:g}"
    )
