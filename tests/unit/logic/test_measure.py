"""Measurements: parsing the model servers' metrics into samples, and judging one check.

The exposition tests feed the parser what the real server's metrics registry writes
(``ServerMetrics``), so a renamed metric or label on either side fails here.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelwerk.api.v1alpha1.deployment import Check, LatencyBucket, MetricSample
from modelwerk.logic.measure import (
    combine,
    error_measurement,
    histogram_quantile,
    interval,
    le_text,
    measure,
    parse_pod,
    sample_from_exposition,
)
from modelwerk.runtime.server.drift import DriftScores
from modelwerk.runtime.server.metrics import LATENCY_BUCKETS, ServerMetrics

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
INF = math.inf


def server(classes: tuple[int, ...] | None = (0, 1, 2)) -> ServerMetrics:
    return ServerMetrics("iris", "iris-v2", "ab" * 32, classes)


def exposition(m: ServerMetrics) -> str:
    return m.exposition().decode()


def check(metric: str, **bounds: Any) -> Check:
    return Check.model_validate({"metric": metric, **bounds})


def sample(
    requests: float = 0,
    errors: float = 0,
    buckets: dict[float, float] | None = None,
    *,
    pods: int = 1,
    t: datetime = NOW,
    **fields: Any,
) -> MetricSample:
    hist = buckets if buckets is not None else {INF: requests}
    return MetricSample(
        time=t,
        pods=pods,
        requests=requests,
        errors=errors,
        latency_buckets=[LatencyBucket(le=le_text(le), count=c) for le, c in hist.items()],
        **fields,
    )


# -- parsing -----------------------------------------------------------------------------


def test_a_fresh_server_parses_to_an_empty_sample() -> None:
    s = sample_from_exposition([exposition(server())], NOW)
    assert (s.pods, s.requests, s.errors, s.labelled) == (1, 0, 0, 0)
    assert [b.le for b in s.latency_buckets] == [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]
    assert all(b.count == 0 for b in s.latency_buckets)
    # the accuracy gauge exists at 0 before any feedback: that is no accuracy of 0
    assert (s.drift_score, s.drift_feature, s.accuracy) == (None, None, None)


def test_requests_errors_and_buckets_are_summed_over_pods() -> None:
    a, b = server(), server()
    for code, protocol, seconds in [
        (200, "v2", 0.003),
        (200, "v1", 0.02),
        (400, "v2", 0.001),
        (500, "v2", 0.3),
        (503, "v1", 0.0004),
    ]:
        a.request(protocol, code)
        a.latency.observe(seconds)
    for _ in range(4):
        b.request("v2", 200)
        b.latency.observe(0.003)
    b.request("v2", 499)  # the client left: not a server error
    b.latency.observe(2.0)

    s = sample_from_exposition([exposition(a), exposition(b)], NOW)

    assert (s.pods, s.requests, s.errors, s.time) == (2, 10, 2, NOW)
    counts = {b.le: b.count for b in s.latency_buckets}
    assert counts["0.0005"] == 1
    assert counts["0.005"] == 7  # cumulative: 0.0004, 0.001, 0.003, 4 x 0.003
    assert counts["0.25"] == 8
    assert counts["2.5"] == 10
    assert counts["+Inf"] == 10


def test_drift_is_the_highest_score_with_its_feature_of_the_scored_method() -> None:
    a, b = server(), server()
    a.set_drift(DriftScores(500, {("sepal", "psi"): 0.1, ("petal", "psi"): 0.3}), "psi")
    # ks scores are exported too, and here higher: the score is psi's, so is the feature
    b.set_drift(
        DriftScores(
            500,
            {
                ("sepal", "psi"): 0.45,
                ("petal", "psi"): 0.2,
                ("sepal", "ks"): 0.1,
                ("width", "ks"): 0.9,
            },
        ),
        "psi",
    )
    s = sample_from_exposition([exposition(a), exposition(b)], NOW)
    assert (s.drift_score, s.drift_feature) == (0.45, "sepal")


def test_accuracy_is_the_lowest_over_pods_with_classified_feedback() -> None:
    good, bad, silent = server(), server(), server()
    good.feedback("correct", 95)
    good.feedback("incorrect", 5)
    good.live_accuracy.set(0.95)
    good.live_labelled.set(100)
    bad.feedback("correct", 30)
    bad.feedback("incorrect", 10)
    bad.live_accuracy.set(0.75)
    bad.live_labelled.set(40)
    silent.feedback("unmatched", 3)  # labels for requests it no longer remembers
    s = sample_from_exposition([exposition(good), exposition(bad), exposition(silent)], NOW)
    assert (s.accuracy, s.labelled) == (0.75, 140)


def test_a_regression_server_has_no_accuracy() -> None:
    m = server(classes=None)
    m.feedback("matched", 50)
    m.live_mae.set(3.2)
    m.live_labelled.set(50)
    s = sample_from_exposition([exposition(m)], NOW)
    assert (s.accuracy, s.labelled) == (None, 50)


def test_not_an_exposition_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_pod("<html>Service Unavailable</html>")


def test_nan_values_are_ignored() -> None:
    pod = parse_pod(
        'modelwerk_model_requests_total{code="200"} NaN\n'
        'modelwerk_model_requests_total{code="500"} 3\n'
        'modelwerk_model_drift_score{method="psi"} NaN\n'
    )
    assert (pod.requests, pod.errors, pod.drift) == (3, 3, {})


def test_no_pods_combine_into_an_empty_sample() -> None:
    s = combine([], NOW)
    assert (s.pods, s.requests, s.latency_buckets) == (0, 0, [])


# -- the interval between two samples ---------------------------------------------------


def test_the_interval_is_the_difference_of_the_counters() -> None:
    span = interval(
        sample(100, 2, {0.1: 90, INF: 100}), sample(250, 5, {0.1: 200, INF: 250}, t=NOW)
    )
    assert (span.requests, span.errors, span.buckets, span.since_start) == (
        150,
        3,
        {0.1: 110, INF: 150},
        False,
    )


@pytest.mark.parametrize(
    ("previous", "current"),
    [
        pytest.param(sample(500, 10), sample(40, 1), id="requests went back"),
        pytest.param(sample(500, 10), sample(600, 4), id="errors went back"),
        pytest.param(
            sample(500, 0, {0.1: 400, INF: 500}),
            sample(600, 0, {0.1: 300, INF: 600}),
            id="a bucket went back",
        ),
        pytest.param(sample(500, 0), sample(520, 30), id="more new errors than new requests"),
        pytest.param(
            sample(500, 0, {0.1: 500, INF: 500}), sample(600, 0, {INF: 600}), id="bucket vanished"
        ),
    ],
)
def test_counters_that_go_back_fall_back_to_the_totals(
    previous: MetricSample, current: MetricSample
) -> None:
    span = interval(previous, current)
    assert span.since_start
    assert (span.requests, span.errors) == (current.requests, current.errors)
    m = measure(check("errorRate", max=0.5), previous, current, min_requests=10, now=NOW)
    assert m.value is not None and 0 <= m.value <= 1
    assert "counters went back" in (m.message or "")


# -- quantiles ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, {0.1: 50, 0.2: 100, INF: 100}, (0.1, True)),
        (0.5, {0.1: 0, 0.2: 100, INF: 100}, (0.15, True)),
        (0.9, {0.1: 0, 0.2: 0, 0.5: 100, INF: 100}, (0.47, True)),
        (0.25, {1.0: 100, INF: 100}, (0.25, True)),  # first bucket: from 0
        (0.99, {0.1: 50, 0.2: 98, INF: 100}, (0.2, False)),  # in +Inf: the highest bound
        (0.5, {0.1: 100, 0.2: 60, INF: 100}, (0.05, True)),  # non-monotonic: made monotonic
        (0.5, {0.2: 100, 0.1: 50, INF: 100}, (0.1, True)),  # order does not matter
        (0.5, {-1.0: 10, 0.1: 20, INF: 20}, (-1.0, True)),  # a non-positive first bound
        (0.5, {0.1: 10, 0.2: 20}, None),  # no +Inf bucket
        (0.5, {INF: 20}, None),  # only +Inf
        (0.5, {0.1: 0, INF: 0}, None),  # nothing observed
    ],
)
def test_histogram_quantile(
    q: float, buckets: dict[float, float], expected: tuple[float, bool] | None
) -> None:
    got = histogram_quantile(q, buckets)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert got[0] == pytest.approx(expected[0]) and got[1] == expected[1]


@st.composite
def histograms(draw: st.DrawFn) -> dict[float, float]:
    bounds = draw(
        st.lists(
            st.floats(min_value=1e-4, max_value=100, allow_nan=False),
            min_size=1,
            max_size=12,
            unique=True,
        )
    )
    increments = draw(
        st.lists(
            st.integers(min_value=0, max_value=1000),
            min_size=len(bounds) + 1,
            max_size=len(bounds) + 1,
        ).filter(lambda xs: sum(xs) > 0)
    )
    counts = np.cumsum(increments).tolist()
    out = dict(zip(sorted(bounds), counts, strict=False))
    out[INF] = counts[-1]
    return out


@given(histograms(), st.floats(min_value=0.001, max_value=0.999), st.floats(0.001, 0.999))
def test_quantiles_are_monotone_in_q_and_within_their_bucket(
    buckets: dict[float, float], q1: float, q2: float
) -> None:
    lo, hi = sorted((q1, q2))
    a, b = histogram_quantile(lo, buckets), histogram_quantile(hi, buckets)
    assert a is not None and b is not None
    assert a[0] <= b[0] + 1e-12
    finite = sorted(le for le in buckets if le != INF)
    for q, (value, exact) in ((lo, a), (hi, b)):
        assert 0 <= value <= finite[-1]
        rank = q * buckets[INF]
        # the estimate lies in the first bucket holding the rank (or is the highest bound)
        first = next((le for le in finite if buckets[le] >= rank), None)
        if first is None:
            assert (value, exact) == (finite[-1], False)
        else:
            below = max((le for le in finite if le < first), default=0.0)
            assert exact and below - 1e-12 <= value <= first + 1e-12


# -- measurements ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chk", "previous", "current", "phase", "value"),
    [
        # error rate over the interval
        (check("errorRate", max=0.05), sample(100, 1), sample(300, 5), "Successful", 0.02),
        (check("errorRate", max=0.05), sample(100, 1), sample(300, 21), "Failed", 0.1),
        (check("errorRate", max=0.05), sample(100, 1), sample(119, 19), "Inconclusive", None),
        (check("errorRate", max=0.05), None, sample(40, 1), "Successful", 0.025),
        (check("errorRate", max=0.0), sample(100, 0), sample(300, 0), "Successful", 0.0),
        # latency over the interval's requests only
        (
            check("latency", quantile=0.9, max=0.1),
            sample(100, 0, {0.05: 100, 0.2: 100, INF: 100}),  # fast before ...
            sample(200, 0, {0.05: 110, 0.2: 200, INF: 200}),  # ... slow now
            "Failed",
            0.05 + 0.15 * (90 - 10) / 90,
        ),
        (
            check("latency", quantile=0.5, max=0.1),
            sample(100, 0, {0.05: 100, 0.2: 100, INF: 100}),
            sample(200, 0, {0.05: 190, 0.2: 200, INF: 200}),
            "Successful",
            0.05 * 50 / 90,
        ),
        (
            check("latency", quantile=0.99, max=1.0),  # above 2.5 s: 1 s is exceeded for sure
            None,
            sample(50, 0, {2.5: 10, INF: 50}),
            "Failed",
            2.5,
        ),
        (
            check("latency", quantile=0.99, max=5.0),  # above 2.5 s: 5 s cannot be judged
            None,
            sample(50, 0, {2.5: 10, INF: 50}),
            "Inconclusive",
            2.5,
        ),
        (
            check("latency", max=0.1),
            sample(0, 0, {0.1: 0, INF: 0}),
            sample(5, 0, {0.1: 5, INF: 5}),
            "Inconclusive",
            None,
        ),
        (check("latency", max=0.1), None, sample(50, 0, {}), "Inconclusive", None),
        (check("latency", min=0.001), None, sample(50, 0, {0.0005: 50, INF: 50}), "Failed", None),
        # drift and accuracy: the current gauges
        (check("drift", max=0.2), None, sample(drift_score=0.1), "Successful", 0.1),
        (check("drift", max=0.2), None, sample(drift_score=0.35), "Failed", 0.35),
        (check("drift", max=0.2), None, sample(), "Inconclusive", None),
        (check("drift", max=0.2), None, sample(drift_score=math.inf), "Error", None),
        (check("accuracy", min=0.9), None, sample(accuracy=0.95, labelled=30), "Successful", 0.95),
        (check("accuracy", min=0.9), None, sample(accuracy=0.8, labelled=30), "Failed", 0.8),
        (check("accuracy", min=0.9), None, sample(accuracy=0.8, labelled=5), "Inconclusive", None),
        (check("accuracy", min=0.9), None, sample(labelled=500), "Inconclusive", None),
        # no pod answered
        (check("errorRate", max=0.05), sample(100, 0), sample(pods=0), "Error", None),
        (check("drift", max=0.2), None, sample(pods=0, drift_score=0.1), "Error", None),
    ],
)
def test_measure(
    chk: Check,
    previous: MetricSample | None,
    current: MetricSample,
    phase: str,
    value: float | None,
) -> None:
    m = measure(chk, previous, current, min_requests=20, now=NOW + timedelta(seconds=30))
    assert (m.metric, m.phase, m.time) == (chk.metric, phase, NOW + timedelta(seconds=30))
    if value is not None:
        assert m.value == pytest.approx(value)
    if phase in ("Inconclusive", "Error") and value is None:
        assert m.value is None
    assert m.message


def test_messages_say_what_was_measured_and_why_it_failed() -> None:
    m = measure(
        check("errorRate", max=0.05), sample(100, 1), sample(300, 21), min_requests=20, now=NOW
    )
    assert m.message == (
        "error rate 0.1 (20 of 200 requests in the interval) is above the maximum 0.05"
    )
    m = measure(check("errorRate", max=0.05), sample(100), sample(105), min_requests=20, now=NOW)
    assert m.message == "5 request(s) in the interval, 20 needed"
    m = measure(
        check("latency", quantile=0.95, max=0.01),
        None,
        sample(100, 0, {0.05: 100, INF: 100}),
        min_requests=20,
        now=NOW,
    )
    assert (
        m.message
        == "p95 latency 0.0475 s over 100 requests since the pods started is above the maximum 0.01"
    )
    m = measure(
        check("drift", max=0.2),
        None,
        sample(drift_score=0.3, drift_feature="petal"),
        min_requests=20,
        now=NOW,
    )
    assert m.message == "drift 0.3 on petal is above the maximum 0.2"


def test_no_requests_at_all_is_inconclusive_even_without_a_minimum() -> None:
    m = measure(check("errorRate", max=0.05), sample(10), sample(10), min_requests=0, now=NOW)
    assert (m.phase, m.value) == ("Inconclusive", None)
    m = measure(check("errorRate", max=0.05), sample(10), sample(11, 1), min_requests=0, now=NOW)
    assert (m.phase, m.value) == ("Failed", 1.0)


def test_accuracy_needs_at_least_one_labelled_row() -> None:
    m = measure(check("accuracy", min=0.5), None, sample(accuracy=0.9), min_requests=0, now=NOW)
    assert m.phase == "Inconclusive"


def test_error_measurement() -> None:
    m = error_measurement(check("latency", max=1), "no pod answered: timeout", NOW)
    assert (m.metric, m.phase, m.value, m.message) == (
        "latency",
        "Error",
        None,
        "no pod answered: timeout",
    )


@st.composite
def pod_counters(draw: st.DrawFn) -> tuple[float, float]:
    requests = draw(st.integers(0, 10_000))
    return float(requests), float(draw(st.integers(0, requests)))


@given(
    st.lists(pod_counters(), min_size=1, max_size=5),
    st.lists(pod_counters(), min_size=1, max_size=5),
    st.integers(0, 50),
)
def test_error_rate_is_a_fraction_whatever_the_pods_did(
    before: list[tuple[float, float]], after: list[tuple[float, float]], min_requests: int
) -> None:
    """Pods restart, come and go between samples: the rate stays within [0, 1]."""
    previous = sample(sum(r for r, _ in before), sum(e for _, e in before))
    current = sample(sum(r for r, _ in after), sum(e for _, e in after))
    m = measure(check("errorRate", max=0.5), previous, current, min_requests=min_requests, now=NOW)
    if m.phase == "Inconclusive":
        assert m.value is None
    else:
        assert m.value is not None and 0 <= m.value <= 1
        assert m.phase == ("Failed" if m.value > 0.5 else "Successful")
