"""Retraining triggers and the rule against hollow runs, walked through the simulated cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1 import Dataset, ModelVersion, TrainingJob
from modelwerk.api.v1alpha1.deployment import LatencyBucket, MetricSample
from modelwerk.api.v1alpha1.production import LiveMetrics, LiveVersion
from modelwerk.api.v1alpha1.retraining import RetrainingGate, RetrainingRecord, RetrainingTriggers
from modelwerk.builders.retraining import (
    DATASET_VERSION_ANNOTATION,
    REASON_ANNOTATION,
    TRIGGER_LABEL,
    build_retraining_job,
)
from modelwerk.logic.drift import DriftInput
from modelwerk.logic.live import LiveInput, LiveReading
from modelwerk.logic.retraining import RetrainingInput, RetrainingRun
from modelwerk.metrics import RETRAINING_SUPPRESSED, RETRAINING_TRIGGERED, record_rollout

from .rollout_sim import MODEL, Sim, deployment

V1 = f"{MODEL}-v1"
OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64


def served(dataset_version: str = OLD) -> ModelVersion:
    sha = "01" * 32
    return ModelVersion.from_k8s(
        {
            "metadata": {"name": V1, "namespace": "ns"},
            "spec": {
                "model": MODEL,
                "version": 1,
                "task": "classification",
                "artifact": {
                    "uri": f"pvc://modelwerk-artifacts/models/m/{sha}/model.joblib",
                    "sha256": sha,
                },
                "lineage": {
                    "dataset": "iris",
                    "datasetVersion": dataset_version,
                    "trainingJob": "iris-rf",
                },
            },
            "status": {"phase": "Ready"},
        }
    )


def template(champion: dict[str, Any] | None = None, **extra: Any) -> TrainingJob:
    spec: dict[str, Any] = {
        **extra,
        "datasetRef": {"name": "iris"},
        "model": {"name": MODEL},
        "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 10}},
    }
    if champion:
        spec["champion"] = champion
    return TrainingJob.from_k8s(
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "iris-rf", "namespace": "ns"},
            "spec": spec,
            "status": {"phase": "Succeeded", "datasetVersion": OLD},
        }
    )


def dataset(version: str, phase: str = "Ready") -> Dataset:
    return Dataset.from_k8s(
        {
            "metadata": {"name": "iris", "namespace": "ns", "generation": 1},
            "spec": {"source": {"builtin": "iris"}, "target": "target"},
            "status": {
                "phase": phase,
                "version": version,
                "shortVersion": version[7:19],
                "observedGeneration": 1,
            },
        }
    )


def monitored(**triggers: Any) -> dict[str, Any]:
    return {
        "drift": {"threshold": 0.2, "intervalSeconds": 30},
        "retraining": {
            "trainingJobRef": {"name": "iris-rf"},
            "minIntervalSeconds": 600,
            "triggers": triggers,
        },
    }


def healthy(monitoring: dict[str, Any]) -> Sim:
    sim = Sim(deployment(modelVersion=V1, monitoring=monitoring), [served()])
    sim.until(lambda s: s.status.phase == "Healthy")
    return sim


def drifting(t: datetime, score: float = 0.5) -> DriftInput:
    return DriftInput(
        sample=MetricSample(
            time=t,
            pods=1,
            requests=100,
            errors=0,
            latency_buckets=[LatencyBucket(le="+Inf", count=100)],
            drift_score=score,
            drift_feature="petal_length",
        )
    )


def inputs(version: str, runs: list[RetrainingRun] | None = None, **kw: Any) -> RetrainingInput:
    return RetrainingInput(
        runs=runs or [], template=kw.get("template") or template(), dataset=dataset(version)
    )


def retraining_condition(sim: Sim) -> tuple[str, str, str]:
    found = get_condition(sim.status.conditions, "Retraining")
    assert found is not None
    return found.status, found.reason, found.message


def test_drift_without_new_data_starts_nothing_and_says_it_waits() -> None:
    sim = healthy(monitored())
    plan = sim.step(drift=drifting(sim.now), retraining=inputs(OLD))
    assert plan.create == ()
    status, reason, message = retraining_condition(sim)
    assert (status, reason) == ("False", "WaitingForNewData")
    assert message.startswith("drift persists") and "waiting for new labelled data" in message
    held = sim.status.retraining.last_suppressed
    assert (held.trigger, held.suppressed) == ("drift", "WaitingForNewData")
    assert [e.reason for e in plan.events if e.reason.startswith("Retraining")] == [
        "RetrainingSuppressed"
    ]
    # persisting drift is one episode: recorded once, no event storm
    first = held.time
    plan = sim.step(seconds=30, drift=drifting(sim.now), retraining=inputs(OLD))
    assert plan.create == () and sim.status.retraining.last_suppressed.time == first
    assert not [e for e in plan.events if e.reason == "RetrainingSuppressed"]


def test_a_new_dataset_version_under_drift_starts_exactly_one_run_recording_why() -> None:
    sim = healthy(monitored())
    sim.step(drift=drifting(sim.now), retraining=inputs(OLD))
    plan = sim.step(seconds=30, drift=drifting(sim.now), retraining=inputs(NEW))
    (run,) = plan.create
    meta = run["metadata"]
    assert meta["name"] == "iris-retrain-1"
    assert meta["labels"][TRIGGER_LABEL] == "drift"
    assert "PSI" in meta["annotations"][REASON_ANNOTATION]
    assert meta["annotations"][DATASET_VERSION_ANNOTATION] == NEW
    assert run["spec"]["datasetRef"]["version"] == NEW
    assert run["spec"]["champion"] == {"deployment": "iris", "margin": 0.0, "relative": False}
    last = sim.status.retraining.last_run
    assert (last.trigger, last.training_job, last.dataset_version) == ("drift", meta["name"], NEW)
    assert retraining_condition(sim)[:2] == ("True", "Started")
    assert sim.status.drift.last_retraining_job == "iris-retrain-1"
    # the run exists and trains on NEW: nothing else starts, during or after it
    running = [RetrainingRun("iris-retrain-1", "Running", 1, NEW)]
    plan = sim.step(seconds=30, drift=drifting(sim.now), retraining=inputs(NEW, running))
    assert plan.create == () and retraining_condition(sim)[1] == "RunInFlight"
    done = [RetrainingRun("iris-retrain-1", "Rejected", 1, NEW)]
    sim.now += timedelta(seconds=3600)
    plan = sim.step(drift=drifting(sim.now), retraining=inputs(NEW, done))
    assert plan.create == () and retraining_condition(sim)[1] == "WaitingForNewData"


def test_min_interval_holds_a_run_on_new_data_back_until_it_passes() -> None:
    sim = healthy(monitored())
    sim.step(drift=drifting(sim.now), retraining=inputs(NEW))
    done = [RetrainingRun("iris-retrain-1", "Succeeded", 1, NEW)]
    third = "sha256:" + "c" * 64
    plan = sim.step(seconds=30, drift=drifting(sim.now), retraining=inputs(third, done))
    assert plan.create == () and retraining_condition(sim)[1] == "MinInterval"
    assert plan.requeue_after is not None and plan.requeue_after <= 570
    sim.now += timedelta(seconds=600)
    plan = sim.step(drift=drifting(sim.now), retraining=inputs(third, done))
    assert [c["metadata"]["name"] for c in plan.create] == ["iris-retrain-2"]


def test_a_restart_after_creating_a_run_does_not_create_another() -> None:
    sim = healthy(monitored())
    # created by an operator that crashed before writing the status; not started yet
    runs = [RetrainingRun("iris-retrain-1", None, 1, NEW)]
    plan = sim.step(drift=drifting(sim.now), retraining=inputs(NEW, runs))
    assert plan.create == ()


def test_the_template_and_the_served_versions_data_count_as_seen() -> None:
    sim = healthy(monitored(newData=True))
    plan = sim.step(retraining=inputs(OLD))  # the template and v1 trained on OLD
    assert plan.create == () and retraining_condition(sim)[1] == "NoTrigger"
    plan = sim.step(retraining=inputs(NEW))
    (run,) = plan.create
    assert run["metadata"]["labels"][TRIGGER_LABEL] == "newData"
    assert sim.status.retraining.last_run.reason.startswith("Dataset iris has a new version")


def test_a_dataset_not_ready_holds_the_trigger_back() -> None:
    sim = healthy(monitored())
    inp = RetrainingInput(template=template(), dataset=dataset(NEW, phase="Validating"))
    plan = sim.step(drift=drifting(sim.now), retraining=inp)
    assert plan.create == () and retraining_condition(sim)[1] == "DatasetNotReady"


def test_a_missing_template_holds_the_trigger_back() -> None:
    sim = healthy(monitored())
    plan = sim.step(drift=drifting(sim.now), retraining=RetrainingInput(dataset=dataset(NEW)))
    assert plan.create == () and retraining_condition(sim)[1] == "TemplateMissing"


def live(accuracy: float, matched: int, version: str = V1) -> LiveInput:
    metrics = LiveMetrics(
        measured_time=datetime(2026, 1, 1, tzinfo=UTC),
        window_seconds=3600,
        versions=[LiveVersion(version=version, matched=matched, accuracy=accuracy)],
    )
    return LiveInput(reading=LiveReading(metrics), pods=[])


@pytest.mark.parametrize(
    ("accuracy", "matched", "starts"),
    [(0.80, 200, True), (0.90, 200, False), (0.80, 50, False)],
)
def test_live_accuracy_below_the_bound_with_enough_labels_triggers(
    accuracy: float, matched: int, starts: bool
) -> None:
    spec = monitored(
        drift=False, liveMetric={"metric": "accuracy", "bound": 0.85, "minLabelled": 100}
    )
    spec["capture"] = {}
    sim = healthy(spec)
    plan = sim.step(live=live(accuracy, matched), retraining=inputs(NEW))
    assert bool(plan.create) == starts
    if starts:
        assert plan.create[0]["metadata"]["labels"][TRIGGER_LABEL] == "liveMetric"
        assert "live accuracy of iris-classifier-v1 0.8 < 0.85" in (
            sim.status.retraining.last_run.reason
        )


def test_drift_off_ignores_drift() -> None:
    sim = healthy(monitored(drift=False))
    plan = sim.step(drift=drifting(sim.now), retraining=inputs(NEW))
    assert plan.create == () and retraining_condition(sim)[1] == "NoTrigger"


def test_a_schedule_fires_once_per_time_it_names_and_only_on_new_data() -> None:
    sim = healthy(monitored(drift=False, schedule="0 * * * *"))  # every hour on the hour
    sim.step(retraining=inputs(NEW))
    started = sim.status.retraining.schedule_time
    assert started is not None
    assert sim.plans[-1].create == ()
    to_hour = 3600 - (sim.now.minute * 60 + sim.now.second) + 1
    sim.now += timedelta(seconds=to_hour)
    plan = sim.step(retraining=inputs(NEW))
    (run,) = plan.create
    assert run["metadata"]["labels"][TRIGGER_LABEL] == "schedule"
    done = [RetrainingRun("iris-retrain-1", "Succeeded", 1, NEW)]
    plan = sim.step(seconds=60, retraining=inputs(NEW, done))
    assert plan.create == () and retraining_condition(sim)[1] == "NoTrigger"
    sim.now += timedelta(hours=1)
    plan = sim.step(retraining=inputs(NEW, done))
    assert plan.create == () and retraining_condition(sim)[1] == "WaitingForNewData"
    assert plan.requeue_after is not None and plan.requeue_after <= 3600


def test_a_bad_cron_expression_is_refused() -> None:
    with pytest.raises(ValueError, match="not a cron expression"):
        RetrainingTriggers(schedule="every monday")


def test_the_gate_can_be_turned_off_and_a_templates_champion_wins() -> None:
    spec = monitored()
    spec["retraining"]["gate"] = {"enabled": False}
    sim = healthy(spec)
    plan = sim.step(drift=drifting(sim.now), retraining=inputs(NEW))
    assert "champion" not in plan.create[0]["spec"]
    sim = healthy(monitored())
    own = template(champion={"modelVersion": "iris-classifier-v7", "margin": 0.02})
    plan = sim.step(drift=drifting(sim.now), retraining=inputs(NEW, template=own))
    assert plan.create[0]["spec"]["champion"] == {
        "modelVersion": "iris-classifier-v7",
        "margin": 0.02,
    }


def test_triggers_and_suppressions_are_counted_once_per_episode() -> None:
    def value(counter: Any, label: str) -> float:
        return float(counter.labels(label)._value.get())

    triggered, waiting = (
        value(RETRAINING_TRIGGERED, "drift"),
        value(RETRAINING_SUPPRESSED, "WaitingForNewData"),
    )
    sim = healthy(monitored())
    for _ in range(3):
        before = sim.dep
        plan = sim.step(seconds=30, drift=drifting(sim.now), retraining=inputs(OLD))
        record_rollout(before, plan)
    assert value(RETRAINING_SUPPRESSED, "WaitingForNewData") == waiting + 1
    before = sim.dep
    plan = sim.step(drift=drifting(sim.now), retraining=inputs(NEW))
    record_rollout(before, plan)
    assert value(RETRAINING_TRIGGERED, "drift") == triggered + 1


def test_a_suspended_template_is_copied_into_a_run_that_is_not() -> None:
    suspended = template(suspend=True)
    assert suspended.spec.suspend
    record = RetrainingRecord(
        trigger="newData",
        reason="new data",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        dataset_version=NEW,
    )
    dep = healthy(monitored()).dep
    run = build_retraining_job(dep, suspended, 1, record, RetrainingGate())
    assert "suspend" not in run["spec"]
    assert TrainingJob.from_k8s(run).spec.suspend is False
