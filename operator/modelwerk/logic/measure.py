"""Placeholder until the measurement module lands (replaced on merge)."""

from __future__ import annotations

from datetime import datetime

from modelwerk.api.v1alpha1.deployment import Check, Measurement, MetricSample


def measure(
    check: Check,
    previous: MetricSample | None,
    current: MetricSample,
    *,
    min_requests: int,
    now: datetime,
) -> Measurement:
    requests = current.requests - (previous.requests if previous else 0)
    value: float | None
    if check.metric == "errorRate":
        errors = current.errors - (previous.errors if previous else 0)
        value = errors / requests if requests >= max(min_requests, 1) else None
    elif check.metric == "drift":
        value = current.drift_score
    elif check.metric == "accuracy":
        value = current.accuracy
    else:
        value = None
    if value is None:
        return Measurement(metric=check.metric, phase="Inconclusive", time=now)
    bad = (check.max is not None and value > check.max) or (
        check.min is not None and value < check.min
    )
    return Measurement(
        metric=check.metric, value=value, phase="Failed" if bad else "Successful", time=now
    )
