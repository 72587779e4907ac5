"""Operator metrics: training outcomes counted once, rollout phases, weights and outcomes."""

from datetime import UTC, datetime

from modelwerk.api.v1alpha1 import TrainingJob
from modelwerk.logic.plan import Plan
from modelwerk.metrics import REGISTRY, record_training

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 22, 12, 2, tzinfo=UTC)


def _tj(phase: str | None) -> TrainingJob:
    return TrainingJob.from_k8s(
        {
            "metadata": {"name": "t", "namespace": "metrics-test"},
            "spec": {
                "datasetRef": {"name": "d"},
                "model": {"name": "m"},
                "estimator": {"name": "SVC"},
            },
            "status": {"phase": phase} if phase else {},
        }
    )


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_finished_run_is_counted_once_with_its_duration_and_metrics() -> None:
    before = _value("modelwerk_training_runs_total", namespace="metrics-test", outcome="Succeeded")
    running = _tj("Running")
    done = running.status.model_copy(
        update={
            "phase": "Succeeded",
            "start_time": T0,
            "completion_time": T1,
            "metrics": {"accuracy": 0.95},
        }
    )
    record_training(running, Plan(status=done))
    record_training(running.model_copy(update={"status": done}), Plan(status=done))  # seen again
    assert (
        _value("modelwerk_training_runs_total", namespace="metrics-test", outcome="Succeeded")
        == before + 1
    )
    assert _value("modelwerk_training_duration_seconds_sum", namespace="metrics-test") >= 120
    assert (
        _value("modelwerk_model_metric", namespace="metrics-test", model="m", metric="accuracy")
        == 0.95
    )


def test_rollout_metrics_follow_the_deployment_decisions() -> None:
    from modelwerk.metrics import forget_deployment, record_rollout
    from tests.unit.logic.rollout_sim import Sim, deployment, version

    ns = {"namespace": "ns", "deployment": "iris"}
    sim = Sim(
        deployment(
            modelVersion="iris-classifier-v1",
            strategy={"canary": {"steps": [{"setWeight": 25}, {"analysis": {}}]}},
            analysis={
                "intervalSeconds": 10,
                "minRequests": 1,
                "checks": [{"metric": "errorRate", "max": 0.1}],
            },
        ),
        [version(1), version(2)],
    )
    promoted = _value("modelwerk_rollouts_total", namespace="ns", outcome="Promoted")
    aborted = _value("modelwerk_rollouts_total", namespace="ns", outcome="Aborted")

    def step(**kwargs: object) -> None:
        before = sim.dep
        plan = sim.step(**kwargs)  # type: ignore[arg-type]
        record_rollout(before, plan)

    step()
    step()
    assert _value("modelwerk_rollout_phase", **ns, phase="Healthy") == 1
    assert _value("modelwerk_rollouts_total", namespace="ns", outcome="Promoted") == promoted + 1
    sim.set_spec(modelVersion="iris-classifier-v2")
    step()
    step()
    step()
    assert _value("modelwerk_rollout_phase", **ns, phase="Progressing") == 1
    assert _value("modelwerk_rollout_phase", **ns, phase="Healthy") == 0
    assert _value("modelwerk_rollout_canary_weight", **ns) == 25
    from modelwerk.api.v1alpha1.deployment import MetricSample

    failed = _value(
        "modelwerk_analysis_measurements_total", **ns, metric="errorRate", phase="Failed"
    )
    step(seconds=10, sample=MetricSample(time=sim.now, pods=1, requests=0))
    step(sample=MetricSample(time=sim.now, pods=1, requests=100, errors=50))
    assert _value("modelwerk_rollout_phase", **ns, phase="Aborted") == 1
    assert _value("modelwerk_rollouts_total", namespace="ns", outcome="Aborted") == aborted + 1
    assert (
        _value("modelwerk_analysis_measurements_total", **ns, metric="errorRate", phase="Failed")
        == failed + 1
    )
    assert REGISTRY.get_sample_value(
        "modelwerk_rollout_duration_seconds_count", {"namespace": "ns", "outcome": "Aborted"}
    )
    forget_deployment("ns", "iris")
    assert REGISTRY.get_sample_value("modelwerk_rollout_phase", {**ns, "phase": "Aborted"}) is None


def test_per_deployment_gauges_are_exposed_and_forgotten_with_the_deployment() -> None:
    from prometheus_client import generate_latest

    from modelwerk.metrics import DEPLOYMENT_GAUGES, forget_deployment

    DEPLOYMENT_GAUGES.record("gauges", "a", "Paused", 50, 0.3)
    DEPLOYMENT_GAUGES.record("gauges", "a", "Healthy", 0, None)  # no new drift reading
    DEPLOYMENT_GAUGES.record("gauges", "b", None, 0, None)  # not decided yet: no phase is 1
    text = generate_latest(REGISTRY).decode()
    a, b = 'deployment="a",namespace="gauges"', 'deployment="b",namespace="gauges"'
    assert f'modelwerk_rollout_phase{{{a},phase="Healthy"}} 1.0' in text
    assert f'modelwerk_rollout_phase{{{a},phase="Paused"}} 0.0' in text
    assert f"modelwerk_rollout_canary_weight{{{a}}} 0.0" in text
    assert f"modelwerk_deployment_drift_score{{{a}}} 0.3" in text  # the last reading stays
    assert text.count(f"modelwerk_rollout_phase{{{b},") == 5
    assert f'modelwerk_rollout_phase{{{b},phase="Healthy"}} 0.0' in text
    forget_deployment("gauges", "a")
    forget_deployment("gauges", "b")
    assert 'namespace="gauges"' not in generate_latest(REGISTRY).decode()


def test_live_figures_are_exposed_per_version_and_forgotten_with_the_deployment() -> None:
    from datetime import UTC, datetime

    from prometheus_client import generate_latest

    from modelwerk.api.v1alpha1.production import (
        CaptureStatus,
        LiveLabels,
        LiveMetrics,
        LiveVersion,
    )
    from modelwerk.metrics import LIVE_GAUGES, forget_deployment

    now = datetime(2026, 1, 1, tzinfo=UTC)
    live = LiveMetrics(
        measured_time=now,
        window_seconds=3600,
        labels=LiveLabels(received=12, matched=10, unmatched=2),
        versions=[
            LiveVersion(version="m-v1", matched=6, accuracy=0.5),
            LiveVersion(version="m-v2", matched=4, accuracy=1.0),
            LiveVersion(version="m-v2", arm="B", matched=4, accuracy=1.0),  # experiments: elsewhere
        ],
    )
    capture = CaptureStatus(measured_time=now, pods=2, dropped_rows=7, failing_pods=1)
    LIVE_GAUGES.record("live", "iris", live, capture)
    text = generate_latest(REGISTRY).decode()
    v1 = 'deployment="iris",namespace="live",version="m-v1"'
    assert f"modelwerk_deployment_live_accuracy{{{v1}}} 0.5" in text
    assert f"modelwerk_deployment_live_matched_rows{{{v1}}} 6.0" in text
    dep = 'deployment="iris",namespace="live"'
    # Only this Deployment's series: the integration tier's operator (same process under
    # `make test`) records its own Deployments in the same registry.
    assert text.count(f"modelwerk_deployment_live_accuracy{{{dep},") == 2
    assert f'modelwerk_deployment_live_labels{{{dep},result="unmatched"}} 2.0' in text
    assert f"modelwerk_deployment_capture_dropped_rows{{{dep}}} 7.0" in text
    assert f"modelwerk_deployment_capture_failing_pods{{{dep}}} 1.0" in text
    forget_deployment("live", "iris")
    assert 'namespace="live"' not in generate_latest(REGISTRY).decode()
