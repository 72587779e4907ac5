"""The operator's own Prometheus metrics, on a dedicated registry served at /metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

if TYPE_CHECKING:
    from modelwerk.api.v1alpha1 import TrainingJob
    from modelwerk.logic.plan import Plan

# *_created series double the series count and no dashboard reads them.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "modelwerk_reconcile_total",
    "Reconciles by kind and result (success, error).",
    ["kind", "result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "modelwerk_reconcile_duration_seconds",
    "Time from reading an object to having applied its plan.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "modelwerk_workqueue_depth",
    "Objects waiting to be reconciled.",
    registry=REGISTRY,
)
LEADER = Gauge(
    "modelwerk_leader",
    "1 while this replica may reconcile (it holds the leader Lease, or leader election is "
    "off), else 0.",
    registry=REGISTRY,
)
API_RETRIES = Counter(
    "modelwerk_api_retries_total",
    "API requests retried after a throttling (429), conflict (409) or server error (5xx) "
    "answer, by HTTP status.",
    ["code"],
    registry=REGISTRY,
)
TRAINING_RUNS = Counter(
    "modelwerk_training_runs_total",
    "Finished training runs by outcome (Succeeded, Failed, Rejected).",
    ["namespace", "outcome"],
    registry=REGISTRY,
)
TRAINING_SECONDS = Histogram(
    "modelwerk_training_duration_seconds",
    "Wall time of finished training runs, from Job creation to completion.",
    ["namespace"],
    buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
    registry=REGISTRY,
)
MODEL_METRIC = Gauge(
    "modelwerk_model_metric",
    "Holdout metrics of the latest registered version of each model.",
    ["namespace", "model", "metric"],
    registry=REGISTRY,
)


def record_training(tj: TrainingJob, plan: Plan) -> None:
    """Count a run once, when the plan moves it into a terminal phase."""
    before, after = tj.status.phase, plan.status.phase
    if after == before or after not in ("Succeeded", "Failed", "Rejected"):
        return
    namespace = tj.metadata.namespace
    TRAINING_RUNS.labels(namespace, after).inc()
    status = plan.status
    start, end = getattr(status, "start_time", None), getattr(status, "completion_time", None)
    if start and end:
        TRAINING_SECONDS.labels(namespace).observe((end - start).total_seconds())
    if after == "Succeeded":
        for metric, value in (getattr(status, "metrics", None) or {}).items():
            MODEL_METRIC.labels(namespace, tj.spec.model.name, metric).set(value)
