"""Capture seen from the operator: live figures in status, CaptureDegraded, the aggregator's
Deployment, and the accuracy check reading the join."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1.deployment import LatencyBucket, MetricSample
from modelwerk.logic.live import (
    LiveInput,
    LiveReading,
    PodCapture,
    parse_capture,
    parse_live,
    with_live_accuracy,
)

from .rollout_sim import Sim, deployment, version

V1, V2 = "iris-classifier-v1", "iris-classifier-v2"
CAPTURE = {"capture": {"intervalSeconds": 30}}


def live_doc(accuracy: float = 0.9, matched: int = 100, **store: Any) -> dict[str, Any]:
    return {
        "time": "2026-11-22T12:00:00Z",
        "windowSeconds": 3600,
        "ready": True,
        "labels": {"received": matched + 1, "matched": matched, "unmatched": 1, "pending": 0,
                   "duplicates": 0},
        "versions": [
            {"version": V1, "arm": None, "task": "classification", "matched": matched,
             "correct": int(accuracy * matched), "accuracy": accuracy, "mae": None, "rmse": None,
             "rewards": 0, "rewardMean": None},
        ],
        "store": {"ok": not store, "error": store.get("error"), "lastSuccess": None},
        "joinRows": 1000,
    }  # fmt: skip


def healthy(**monitoring: Any) -> Sim:
    sim = Sim(
        deployment(modelVersion=V1, monitoring=monitoring or CAPTURE), [version(1), version(2)]
    )
    sim.until(lambda s: s.status.phase == "Healthy")
    return sim


def degraded(sim: Sim) -> tuple[str, str]:
    found = get_condition(sim.status.conditions, "CaptureDegraded")
    assert found is not None
    return found.status, found.reason


def test_capture_runs_the_aggregator_beside_the_serving_pods() -> None:
    sim = healthy()
    monitor = sim.monitor
    assert monitor is not None and monitor["metadata"]["name"] == "iris-monitor"
    pod = monitor["spec"]["template"]
    assert "modelwerk.dev/deployment" not in pod["metadata"]["labels"], "no Service selects it"
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    container = spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["command"][:2] == ["modelwerk", "monitor"]
    track = next(p for p in sim.plans[-1].apply if p["metadata"]["name"] == "iris-blue")["spec"][
        "template"
    ]["spec"]
    args = track["containers"][0]["command"]
    assert "--capture" in args and args[args.index("--track") + 1] == "blue"
    mounts = track["containers"][0]["volumeMounts"]
    # The store's claim, writable: captures and labels are written to it.
    assert [m.get("readOnly") for m in mounts if m["name"].startswith("pvc-")] == [False]


def test_turning_capture_off_removes_the_aggregator_and_the_condition() -> None:
    sim = healthy()
    sim.step(live=LiveInput(reading=parse_live(live_doc()), pods=[PodCapture(10, 0, False)]))
    assert degraded(sim) == ("False", "CaptureHealthy")
    sim.dep = deployment(
        status=sim.dep.status.model_dump(by_alias=True, mode="json"), modelVersion=V1
    )
    plan = sim.step()
    assert sim.monitor is None and any(k.name == "iris-monitor" for k in plan.delete)
    assert get_condition(sim.status.conditions, "CaptureDegraded") is None
    assert sim.status.live_metrics is None and sim.status.capture is None


def test_live_figures_go_to_status_and_readings_are_paced() -> None:
    sim = healthy()
    plan = sim.step(
        seconds=5,
        live=LiveInput(reading=parse_live(live_doc(0.93)), pods=[PodCapture(500, 0, False)]),
    )
    live = sim.status.live_metrics
    assert live is not None and live.versions[0].accuracy == 0.93 and live.labels.unmatched == 1
    assert sim.status.capture is not None and sim.status.capture.written_rows == 500
    assert degraded(sim) == ("False", "CaptureHealthy")
    assert plan.requeue_after is not None and plan.requeue_after <= 30
    from modelwerk.logic.live import wants_live

    assert not wants_live(sim.dep, sim.now)
    assert wants_live(sim.dep, sim.now + timedelta(seconds=25))


def test_failing_writes_and_drops_degrade_capture_and_recovery_clears_it() -> None:
    sim = healthy()
    reading = parse_live(live_doc())
    sim.step(seconds=30, live=LiveInput(reading=reading, pods=[PodCapture(10, 0, False)] * 4))
    plan = sim.step(
        seconds=30,
        live=LiveInput(
            reading=reading, pods=[PodCapture(10, 0, True), *[PodCapture(10, 0, False)] * 3]
        ),
    )
    assert degraded(sim) == ("True", "StoreWriteFailing")
    assert (
        "1 of 4 serving pod(s)" in get_condition(sim.status.conditions, "CaptureDegraded").message
    )  # type: ignore[union-attr]
    assert [e.reason for e in plan.events] == ["CaptureDegraded"]
    sim.step(seconds=30, live=LiveInput(reading=reading, pods=[PodCapture(10, 7, False)] * 4))
    assert degraded(sim) == ("True", "RowsDropped")
    plan = sim.step(
        seconds=30, live=LiveInput(reading=reading, pods=[PodCapture(20, 7, False)] * 4)
    )
    assert degraded(sim) == ("False", "CaptureHealthy")
    assert [e.reason for e in plan.events] == ["CaptureRecovered"]
    assert sim.status.phase == "Healthy", "capture never changes how the Deployment serves"


def test_the_aggregator_failing_to_read_the_store_or_answer() -> None:
    sim = healthy()
    bad = parse_live(live_doc(error="connection refused"))
    sim.step(seconds=30, live=LiveInput(reading=bad, pods=[PodCapture(1, 0, False)]))
    assert degraded(sim) == ("True", "StoreReadFailing")
    assert sim.status.capture is not None and sim.status.capture.store_error == "connection refused"
    sim.step(
        seconds=30,
        live=LiveInput(reading="the aggregator pod is not running", pods=[PodCapture(1, 0, False)]),
    )
    assert degraded(sim) == ("Unknown", "MonitorUnavailable")
    assert sim.status.live_metrics is not None, "the last figures stay"


def test_the_accuracy_check_uses_the_join_not_a_pods_own_figure() -> None:
    pods = MetricSample(
        time="2026-11-22T12:00:00Z", pods=4, requests=400,
        latency_buckets=[LatencyBucket(le="+Inf", count=400)], accuracy=0.2, labelled=3,
    )  # fmt: skip
    joined = with_live_accuracy(pods, parse_live(live_doc(0.97, 380)), V1)
    assert (joined.accuracy, joined.labelled) == (0.97, 380)
    unknown = with_live_accuracy(pods, parse_live(live_doc()), V2)
    assert (unknown.accuracy, unknown.labelled) == (None, 0)
    assert with_live_accuracy(pods, "no aggregator", V1).accuracy is None


def test_a_wrong_canary_is_aborted_by_accuracy_on_labelled_traffic() -> None:
    """Issue 13 item 3 at the decision level: the candidate's joined accuracy is below the bound."""
    analysis = {"intervalSeconds": 10, "count": 2, "minRequests": 20,
                "checks": [{"metric": "accuracy", "min": 0.8}]}  # fmt: skip
    sim = Sim(
        deployment(
            modelVersion=V1,
            monitoring=CAPTURE,
            analysis=analysis,
            strategy={"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
        ),
        [version(1), version(2)],
    )
    sim.until(lambda s: s.status.phase == "Healthy")
    sim.dep = sim.dep.model_copy(
        update={"spec": sim.dep.spec.model_copy(update={"model_version": V2})}
    )
    sim.until(lambda s: s.status.canary_version == V2)
    doc = live_doc()
    doc["versions"].append({**doc["versions"][0], "version": V2, "accuracy": 0.4, "matched": 200})
    reading = parse_live(doc)
    for _ in range(40):
        if sim.status.phase == "Aborted":
            break
        base = MetricSample(
            time=sim.now, pods=2, requests=1000,
            latency_buckets=[LatencyBucket(le="+Inf", count=1000)], accuracy=1.0, labelled=2,
        )  # fmt: skip
        sim.step(seconds=10, sample=with_live_accuracy(base, reading, V2))
    assert sim.status.phase == "Aborted" and sim.status.stable_version == V1
    failed = [
        m for run in sim.status.analysis_runs or [] for m in run.measurements if m.phase == "Failed"
    ]
    assert failed and failed[-1].value == 0.4


def test_parsing_what_pods_and_the_aggregator_say() -> None:
    text = "\n".join(
        [
            "# TYPE modelwerk_capture_written_rows_total counter",
            'modelwerk_capture_written_rows_total{model="m",version="v",stream="predictions"} 40',
            'modelwerk_capture_written_rows_total{model="m",version="v",stream="labels"} 2',
            "# TYPE modelwerk_capture_dropped_total counter",
            'modelwerk_capture_dropped_total{model="m",version="v",stream="labels",reason="full"} 3',
            "# TYPE modelwerk_capture_healthy gauge",
            'modelwerk_capture_healthy{model="m",version="v",stream="predictions"} 0',
        ]
    )
    assert parse_capture(text) == PodCapture(42, 3, True)
    assert parse_capture("") == PodCapture()
    reading = parse_live(live_doc(error="boom"))
    assert isinstance(reading, LiveReading) and reading.store_error == "boom"
    with pytest.raises(ValueError, match="not an aggregator"):
        parse_live({"time": "x"})
    with pytest.raises(ValueError):
        parse_live([1])
