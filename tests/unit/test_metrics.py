"""Operator metrics: training outcomes are counted once, when a run ends."""

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
