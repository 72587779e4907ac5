"""Analysis measurements: serving metrics as cumulative samples, and one check's verdict.

A :class:`MetricSample` holds the model servers' cumulative counters summed over one version's
pods (plus the worst drift and accuracy gauges), read either straight from the pods'
``/metrics`` or from Prometheus. A measurement is the difference between two samples, so it
covers exactly the interval between them and needs no Prometheus-side ``rate()``.

Q: Why do counters that go *down* not produce negative rates?
A: A pod that restarted starts its counters from zero, and a pod that stopped answering drops
out of the sum. The interval can then not be recovered from two sums, so the measurement falls
back to the current sample alone (everything since the pods started) and says so: a crashing
version's errors still count, and the verdict never rests on a negative number. The same
happens when the two samples contradict each other (more new errors than new requests).

Q: Why can a latency check be Inconclusive with plenty of requests?
A: A histogram cannot place a quantile above its highest finite bucket: like Prometheus'
``histogram_quantile`` the estimate is then that bound, which is only a lower limit. A maximum
above that bound can neither pass nor fail; one below it fails.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from prometheus_client.parser import text_string_to_metric_families

from modelwerk.api.v1alpha1.deployment import (
    Check,
    DriftWindow,
    LatencyBucket,
    Measurement,
    MetricSample,
)

REQUESTS = "modelwerk_model_requests_total"
LATENCY_BUCKET = "modelwerk_model_request_seconds_bucket"
DRIFT_SCORE = "modelwerk_model_drift_score"
FEATURE_DRIFT = "modelwerk_model_feature_drift"
DRIFT_ROWS = "modelwerk_model_drift_window_rows"
DRIFT_ROWS_NEEDED = "modelwerk_model_drift_rows_needed"
LIVE_ACCURACY = "modelwerk_model_live_accuracy"
LIVE_LABELLED = "modelwerk_model_live_labelled_rows"
FEEDBACK = "modelwerk_model_feedback_total"
CLASSIFIED_FEEDBACK = ("correct", "incorrect")
"""Feedback results only a classifier reports: a regression server also exports the accuracy
gauge, at 0, which must not count as an accuracy of 0."""

Phase = Literal["Successful", "Failed", "Inconclusive", "Error"]

MIN_LABELLED = 1
"""Labelled rows live accuracy needs at the least, whatever ``minRequests`` says."""


# -------------------------------------------------------------------------- samples


@dataclass
class PodMetrics:
    """What one pod's exposition says about the checks (one pod; several worker processes are
    already merged by the server's multiprocess collector)."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    """Cumulative count per upper bound (``math.inf`` for ``+Inf``)."""
    drift: dict[str, float] = field(default_factory=dict)
    """Highest drift score per method."""
    feature_drift: dict[tuple[str, str], float] = field(default_factory=dict)
    """Drift per (feature, method)."""
    drift_rows: float | None = None
    """Rows in the pod's drift window."""
    rows_needed: dict[str, float] = field(default_factory=dict)
    """Rows each feature's score waits for (``math.inf``: no window is enough)."""
    accuracy: float | None = None
    labelled: float = 0.0


def parse_pod(text: str) -> PodMetrics:
    """One pod's Prometheus text exposition; raises ``ValueError`` when it is not one."""
    pod = PodMetrics()
    accuracy: list[float] = []
    classified = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            value = float(s.value)
            if math.isnan(value):
                continue  # a series without a value says nothing
            if s.name == REQUESTS:
                pod.requests += value
                if s.labels.get("code", "").startswith("5"):
                    pod.errors += value
            elif s.name == LATENCY_BUCKET:
                le = parse_le(s.labels.get("le", ""))
                pod.buckets[le] = pod.buckets.get(le, 0.0) + value
            elif s.name == DRIFT_SCORE:
                method = s.labels.get("method", "")
                pod.drift[method] = max(value, pod.drift.get(method, value))
            elif s.name == FEATURE_DRIFT:
                key = (s.labels.get("feature", ""), s.labels.get("method", ""))
                pod.feature_drift[key] = max(value, pod.feature_drift.get(key, value))
            elif s.name == DRIFT_ROWS:
                pod.drift_rows = value + (pod.drift_rows or 0.0)
            elif s.name == DRIFT_ROWS_NEEDED:
                feature = s.labels.get("feature", "")
                pod.rows_needed[feature] = max(value, pod.rows_needed.get(feature, value))
            elif s.name == LIVE_ACCURACY:
                accuracy.append(value)
            elif s.name == LIVE_LABELLED:
                pod.labelled += value
            elif s.name == FEEDBACK and s.labels.get("result") in CLASSIFIED_FEEDBACK:
                classified += value
    if accuracy and classified > 0:
        pod.accuracy = min(accuracy)
    return pod


def parse_le(text: str) -> float:
    """A bucket's upper bound as exposed (``+Inf`` included); ``ValueError`` if it is none."""
    value = float(text)
    if math.isnan(value):
        raise ValueError(f"bucket bound {text!r} is not a number")
    return value


def le_text(bound: float) -> str:
    """The canonical text of an upper bound, so samples from pods and Prometheus compare."""
    return "+Inf" if bound == math.inf else repr(float(bound))


def combine(pods: list[PodMetrics], now: datetime) -> MetricSample:
    """The version's sample: counters summed over pods, the highest drift (with its feature),
    the lowest accuracy."""
    buckets: dict[float, float] = {}
    drift: dict[str, float] = {}
    features: dict[tuple[str, str], float] = {}
    for pod in pods:
        for le, count in pod.buckets.items():
            buckets[le] = buckets.get(le, 0.0) + count
        for method, value in pod.drift.items():
            drift[method] = max(value, drift.get(method, value))
        for key, value in pod.feature_drift.items():
            features[key] = max(value, features.get(key, value))
    score, feature = worst_drift(drift, features)
    accuracies = [p.accuracy for p in pods if p.accuracy is not None]
    return MetricSample(
        time=now,
        pods=len(pods),
        requests=sum(p.requests for p in pods),
        errors=sum(p.errors for p in pods),
        latency_buckets=histogram(buckets),
        drift_score=score,
        drift_feature=feature,
        drift_window=drift_window(
            [p.drift_rows for p in pods if p.drift_rows is not None],
            [p.rows_needed for p in pods],
        ),
        accuracy=min(accuracies) if accuracies else None,
        labelled=sum(p.labelled for p in pods),
    )


def histogram(buckets: Mapping[float, float]) -> list[LatencyBucket]:
    return [LatencyBucket(le=le_text(le), count=buckets[le]) for le in sorted(buckets)]


def worst_drift(
    scores: Mapping[str, float], features: Mapping[tuple[str, str], float]
) -> tuple[float | None, str | None]:
    """The highest drift score and the feature behind it (of the score's method: the servers
    export every method per feature, but the score for the configured one)."""
    if not scores:
        return None, None
    method = max(sorted(scores), key=lambda m: scores[m])
    candidates = sorted((f, v) for (f, m), v in features.items() if m == method)
    feature = max(candidates, key=lambda fv: fv[1])[0] if candidates else None
    return scores[method], feature


def drift_window(
    rows: Iterable[float], needed: Iterable[Mapping[str, float]]
) -> DriftWindow | None:
    """The fullest window and the feature needing the most rows, over pods (None when the pods
    export neither, as a server older than the gauges).

    >>> drift_window([40.0, 75.0], [{"a": 120.0, "b": 90.0}, {"a": 120.0}])
    DriftWindow(rows=75, needed=120, feature='a')
    >>> drift_window([500.0], [{"a": 120.0, "b": math.inf}])
    DriftWindow(rows=500, needed=None, feature='b')
    """
    most: dict[str, float] = {}
    for pod in needed:
        for feature, value in pod.items():
            most[feature] = max(value, most.get(feature, value))
    full = max(rows, default=None)
    if full is None and not most:
        return None
    if not most:
        return DriftWindow(rows=int(full or 0))
    feature, value = max(sorted(most.items()), key=lambda fv: fv[1])
    return DriftWindow(
        rows=int(full or 0), needed=int(value) if math.isfinite(value) else None, feature=feature
    )


def sample_from_exposition(texts: list[str], now: datetime) -> MetricSample:
    """The sample of the pods whose ``/metrics`` answered with ``texts`` (one per pod)."""
    return combine([parse_pod(text) for text in texts], now)


# ---------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class Interval:
    """What happened between two samples."""

    requests: float
    errors: float
    buckets: dict[float, float]
    since_start: bool
    """The counters went back (or never had a previous sample): these are the totals since the
    pods started."""


def interval(previous: MetricSample | None, current: MetricSample) -> Interval:
    now_buckets = _buckets(current.latency_buckets)
    total = Interval(
        current.requests, min(current.errors, current.requests), now_buckets, since_start=True
    )
    if previous is None:
        return total
    before = _buckets(previous.latency_buckets)
    requests = current.requests - previous.requests
    errors = current.errors - previous.errors
    buckets = {le: count - before.get(le, 0.0) for le, count in now_buckets.items()}
    went_back = (
        requests < 0
        or errors < 0
        or errors > requests
        or any(v < 0 for v in buckets.values())
        or any(le not in now_buckets for le in before)
    )
    if went_back:
        return total
    return Interval(requests, errors, buckets, since_start=False)


def _buckets(buckets: Iterable[LatencyBucket]) -> dict[float, float]:
    out: dict[float, float] = {}
    for b in buckets:
        try:
            le = parse_le(b.le)
        except ValueError:
            continue
        out[le] = out.get(le, 0.0) + b.count
    return out


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> tuple[float, bool] | None:
    """The ``q`` quantile of a cumulative histogram, interpolated linearly inside its bucket
    (as Prometheus' ``histogram_quantile``), and whether it is exact enough to compare: False
    when it lies in the ``+Inf`` bucket and the result is only the highest finite bound.

    None without a ``+Inf`` bucket, without observations, or without a finite bucket.

    >>> histogram_quantile(0.5, {0.1: 50, 0.3: 100, float("inf"): 100})
    (0.1, True)
    >>> histogram_quantile(0.75, {0.1: 50, 0.3: 100, float("inf"): 100})
    (0.2, True)
    >>> histogram_quantile(0.99, {0.1: 50, 0.3: 90, float("inf"): 100})
    (0.3, False)
    """
    bounds = sorted(buckets)
    if len(bounds) < 2 or bounds[-1] != math.inf:
        return None
    counts: list[float] = []
    for le in bounds:  # scrapes of racing counters can be slightly non-monotonic
        counts.append(max(buckets[le], counts[-1] if counts else 0.0))
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    i = next(i for i, c in enumerate(counts) if c >= rank)
    if i == len(bounds) - 1:
        return bounds[-2], False
    upper = bounds[i]
    if i == 0:
        if upper <= 0:
            return upper, True
        lower, below = 0.0, 0.0
    else:
        lower, below = bounds[i - 1], counts[i - 1]
    return lower + (upper - lower) * (rank - below) / (counts[i] - below), True


def measure(
    check: Check,
    previous: MetricSample | None,
    current: MetricSample,
    *,
    min_requests: int,
    now: datetime,
) -> Measurement:
    """Measure ``check`` over the interval from ``previous`` (None: since the pods started) to
    ``current``.

    errorRate is new 5xx over new requests, latency the check's quantile of the new requests'
    latencies; both need ``min_requests`` new requests (at least one). drift is the current
    highest feature drift; accuracy the current lowest live accuracy, which needs
    ``min_requests`` labelled rows (at least :data:`MIN_LABELLED`). Without enough data the
    measurement is Inconclusive; without any pod in ``current`` it is an Error; outside the
    check's bounds it is Failed.
    """
    if current.pods == 0:
        return _result(check, now, "Error", "no serving pod answered")
    if check.metric == "errorRate" or check.metric == "latency":
        return _measure_requests(check, interval(previous, current), previous, min_requests, now)
    if check.metric == "drift":
        if current.drift_score is None:
            window = current.drift_window
            why = "no drift score yet (too few rows in the pods' window)"
            if window is not None and window.needed is not None:
                why = f"no drift score yet ({window.rows} of the {window.needed} rows it needs)"
            return _result(check, now, "Inconclusive", why)
        on = f" on {current.drift_feature}" if current.drift_feature else ""
        return _judge(check, now, current.drift_score, f"drift {current.drift_score:.4g}{on}")
    needed = max(min_requests, MIN_LABELLED)
    if current.accuracy is None or current.labelled < needed:
        why = f"{_n(current.labelled)} labelled row(s) of feedback, {needed} needed"
        return _result(check, now, "Inconclusive", why)
    text = f"live accuracy {current.accuracy:.4g} over {_n(current.labelled)} labelled rows"
    return _judge(check, now, current.accuracy, text)


def _measure_requests(
    check: Check, span: Interval, previous: MetricSample | None, min_requests: int, now: datetime
) -> Measurement:
    if previous is None:
        where = "since the pods started"
    elif span.since_start:
        where = "since the pods started (counters went back: a pod restarted or left)"
    else:
        where = "in the interval"
    count = span.requests if check.metric == "errorRate" else span.buckets.get(math.inf, 0.0)
    needed = max(min_requests, 1)
    if count < needed:
        why = f"{_n(count)} request(s) {where}, {needed} needed"
        return _result(check, now, "Inconclusive", why)
    if check.metric == "errorRate":
        rate = span.errors / count
        text = f"error rate {rate:.4g} ({_n(span.errors)} of {_n(count)} requests {where})"
        return _judge(check, now, rate, text)
    estimate = histogram_quantile(check.quantile, span.buckets)
    name = f"p{check.quantile * 100:g} latency"
    if estimate is None:
        return _result(check, now, "Inconclusive", f"{name}: the pods export no latency histogram")
    value, exact = estimate
    if exact:
        return _judge(check, now, value, f"{name} {value:.4g} s over {_n(count)} requests {where}")
    text = f"{name} above the highest bucket bound {value:g} s ({_n(count)} requests {where})"
    if check.max is not None and check.max >= value:
        why = f"{text}: cannot tell whether it is below {check.max:g} s"
        return _result(check, now, "Inconclusive", why, value)
    return _judge(check, now, value, text)


def error_measurement(check: Check, message: str, now: datetime) -> Measurement:
    """The measurement of ``check`` when no sample could be taken."""
    return _result(check, now, "Error", message)


def _judge(check: Check, now: datetime, value: float, text: str) -> Measurement:
    if not math.isfinite(value):
        return _result(check, now, "Error", f"{text}: not a finite number")
    if check.max is not None and value > check.max:
        return _result(check, now, "Failed", f"{text} is above the maximum {check.max:g}", value)
    if check.min is not None and value < check.min:
        return _result(check, now, "Failed", f"{text} is below the minimum {check.min:g}", value)
    return _result(check, now, "Successful", text, value)


def _result(
    check: Check, now: datetime, phase: Phase, message: str, value: float | None = None
) -> Measurement:
    return Measurement(metric=check.metric, value=value, phase=phase, time=now, message=message)


def _n(count: float) -> str:
    return f"{count:g}"
