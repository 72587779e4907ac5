"""Inference capture as the operator sees it: the live figures and the CaptureDegraded
condition, decided from what the aggregator and the serving pods report.

Every ``capture.intervalSeconds`` the operator reads the aggregator's ``/live`` (the join of
labels with the captured predictions of all replicas, per version) and the serving pods'
capture counters. The figures go to ``status.liveMetrics``; the ``accuracy`` analysis check
reads the same join, fresh, for the version it analyses (:func:`with_live_accuracy`).

Q: When is capture degraded?
A: When a serving pod's last write to the store failed, when the pods dropped rows since the
   last reading (their buffers were full: the store is slow or down), or when the aggregator
   cannot read the store. None of this touches serving: predictions are never slowed down,
   the condition is only information (and an Event). An aggregator that does not answer makes
   the condition Unknown, since nothing can be said then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from modelwerk.api.conditions import ConditionStatus
from modelwerk.api.v1alpha1.deployment import Deployment, MetricSample
from modelwerk.api.v1alpha1.production import (
    CaptureStatus,
    LiveLabels,
    LiveMetrics,
    LiveVersion,
)
from modelwerk.builders.monitor import capture_of
from modelwerk.logic.plan import Event

CAPTURE_DEGRADED = "CaptureDegraded"
WRITTEN = "modelwerk_capture_written_rows_total"
DROPPED = "modelwerk_capture_dropped_total"
HEALTHY = "modelwerk_capture_healthy"
_VERSION_KEYS = ("version", "arm", "matched", "accuracy", "mae", "rmse", "rewards", "rewardMean")


@dataclass(frozen=True)
class PodCapture:
    """One serving pod's capture counters (all its worker processes)."""

    written: float = 0.0
    dropped: float = 0.0
    failing: bool = False


@dataclass(frozen=True)
class LiveReading:
    """The aggregator's answer."""

    metrics: LiveMetrics
    store_error: str | None = None


@dataclass(frozen=True)
class LiveInput:
    """What the operator read this time (nothing when no reading was due)."""

    reading: LiveReading | str | None = None
    """The aggregator's figures, or why they could not be read."""
    pods: list[PodCapture] | str | None = None
    """The serving pods' counters, or why none could be read; None when not due."""


@dataclass
class LiveDecision:
    live: LiveMetrics | None
    capture: CaptureStatus | None
    condition: tuple[ConditionStatus, str, str] | None = None
    """CaptureDegraded status, reason and message; None leaves it as it is."""
    remove_condition: bool = False
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None


# ------------------------------------------------------------------ reading


def parse_capture(text: str) -> PodCapture:
    """A serving pod's Prometheus exposition, reduced to its capture counters."""
    written = dropped = 0.0
    failing = False
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            value = float(s.value)
            if math.isnan(value):
                continue
            if s.name == WRITTEN:
                written += value
            elif s.name == DROPPED:
                dropped += value
            elif s.name == HEALTHY and value < 1:
                failing = True
    return PodCapture(written, dropped, failing)


def parse_live(doc: Any) -> LiveReading:
    """The aggregator's ``/live`` document; ``ValueError`` when it is not one."""
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    try:
        metrics = LiveMetrics(
            measured_time=doc["time"],
            window_seconds=int(doc["windowSeconds"]),
            labels=LiveLabels.model_validate(doc.get("labels") or {}),
            versions=[
                LiveVersion.model_validate({k: v[k] for k in _VERSION_KEYS if k in v})
                for v in (doc.get("versions") or [])[:32]
            ],
        )
    except (KeyError, TypeError, ValidationError) as exc:
        raise ValueError(f"not an aggregator's answer: {exc}") from exc
    store = doc.get("store") or {}
    error = store.get("error") if not store.get("ok", True) else None
    return LiveReading(metrics, str(error)[:1000] if error else None)


# ------------------------------------------------------------------ deciding


def wants_live(dep: Deployment, now: datetime) -> bool:
    """Whether the reading of capture is due."""
    capture = capture_of(dep)
    if capture is None:
        return False
    last = dep.status.capture
    return last is None or now >= last.measured_time + timedelta(seconds=capture.interval_seconds)


def decide_live(dep: Deployment, observed: LiveInput, now: datetime) -> LiveDecision:
    """The live figures, capture status and CaptureDegraded condition after ``observed``."""
    status = dep.status
    capture = capture_of(dep)
    if capture is None:
        had = any(c.type == CAPTURE_DEGRADED for c in status.conditions)
        return LiveDecision(live=None, capture=None, remove_condition=had)
    live = status.live_metrics
    if isinstance(observed.reading, LiveReading):
        live = observed.reading.metrics
    decision = LiveDecision(live=live, capture=status.capture)
    if observed.pods is None:  # not due: only the analysis wanted fresh figures
        decision.requeue_after = _next_in(dep, status.capture, now)
        return decision
    previous = status.capture
    pods = observed.pods if isinstance(observed.pods, list) else []
    current = CaptureStatus(
        measured_time=now,
        pods=len(pods),
        written_rows=sum(p.written for p in pods),
        dropped_rows=sum(p.dropped for p in pods),
        failing_pods=sum(p.failing for p in pods),
        store_error=(
            observed.reading.store_error if isinstance(observed.reading, LiveReading) else None
        ),
    )
    if not pods and previous is not None:  # no pod answered: keep what was known
        current = previous.model_copy(update={"measured_time": now})
    decision.capture = current
    decision.condition = _condition(current, previous, observed.reading, live)
    decision.requeue_after = float(capture.interval_seconds)
    was = next((c for c in status.conditions if c.type == CAPTURE_DEGRADED), None)
    state, _reason, message = decision.condition
    if state == "True" and (was is None or was.status != "True"):
        decision.events.append(Event("Warning", CAPTURE_DEGRADED, message))
    elif state == "False" and was is not None and was.status == "True":
        decision.events.append(Event("Normal", "CaptureRecovered", message))
    return decision


def _condition(
    current: CaptureStatus,
    previous: CaptureStatus | None,
    reading: LiveReading | str | None,
    live: LiveMetrics | None,
) -> tuple[ConditionStatus, str, str]:
    dropped = f"{current.dropped_rows:g} row(s) dropped since the pods started"
    if current.failing_pods:
        return (
            "True",
            "StoreWriteFailing",
            f"{current.failing_pods} of {current.pods} serving pod(s) cannot write to the "
            f"artifact store (rows are buffered, then dropped); {dropped}",
        )
    if previous is not None and current.dropped_rows > previous.dropped_rows:
        new = current.dropped_rows - previous.dropped_rows
        return (
            "True",
            "RowsDropped",
            f"Serving pods dropped {new:g} row(s) since the last reading: their buffers were "
            f"full because the store was slow or down; {dropped}",
        )
    if current.store_error:
        return (
            "True",
            "StoreReadFailing",
            f"The aggregator cannot read the artifact store: {current.store_error}",
        )
    if isinstance(reading, str):
        return "Unknown", "MonitorUnavailable", f"Could not read the aggregator: {reading}"
    labels = live.labels if live is not None else LiveLabels()
    return (
        "False",
        "CaptureHealthy",
        f"{current.written_rows:g} row(s) written by {current.pods} serving pod(s); "
        f"{labels.matched} of {labels.received} label row(s) in the window matched",
    )


def _next_in(dep: Deployment, last: CaptureStatus | None, now: datetime) -> float | None:
    capture = capture_of(dep)
    if capture is None:
        return None
    if last is None:
        return 1.0
    due = last.measured_time + timedelta(seconds=capture.interval_seconds)
    return max((due - now).total_seconds(), 1.0)


def with_live_accuracy(
    sample: MetricSample, reading: LiveReading | str | None, version: str
) -> MetricSample:
    """``sample`` with the live accuracy of ``version`` from the join (no arm), instead of the
    pods' own: with capture on, a pod's own figure covers only the labels that happened to
    reach the process that answered. Without a reading the accuracy is unknown."""
    found = None
    if isinstance(reading, LiveReading):
        found = next(
            (v for v in reading.metrics.versions if v.version == version and v.arm is None), None
        )
    if found is None:
        return sample.model_copy(update={"accuracy": None, "labelled": 0})
    return sample.model_copy(update={"accuracy": found.accuracy, "labelled": found.matched})
