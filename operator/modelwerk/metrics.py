"""The operator's own Prometheus metrics, on a dedicated registry served at /metrics."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

if TYPE_CHECKING:
    from modelwerk.api.v1alpha1 import Deployment, TrainingJob
    from modelwerk.logic.plan import Plan

# *_created series double the series count and no dashboard reads them.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "modelwerk_reconcile_total",
    "Reconciles by kind and result (success, error; skipped: its namespace is being deleted).",
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


ROLLOUT_PHASES = ("Progressing", "Paused", "Healthy", "Degraded", "Aborted")
ROLLOUT_PHASE = Gauge(
    "modelwerk_rollout_phase",
    "Phase of each modelwerk Deployment: 1 for the current phase, 0 for the others.",
    ["namespace", "deployment", "phase"],
    registry=REGISTRY,
)
CANARY_WEIGHT = Gauge(
    "modelwerk_rollout_canary_weight",
    "Percentage of traffic actually on the version being rolled out.",
    ["namespace", "deployment"],
    registry=REGISTRY,
)
ROLLOUTS = Counter(
    "modelwerk_rollouts",
    "Finished rollouts by outcome (Promoted, Aborted, RolledBack, Superseded).",
    ["namespace", "outcome"],
    registry=REGISTRY,
)
ROLLOUT_SECONDS = Histogram(
    "modelwerk_rollout_duration_seconds",
    "Time from the start of a rollout to its end.",
    ["namespace", "outcome"],
    buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
    registry=REGISTRY,
)
ANALYSIS_MEASUREMENTS = Counter(
    "modelwerk_analysis_measurements",
    "Analysis measurements by metric and verdict (Successful, Failed, Inconclusive, Error).",
    ["namespace", "deployment", "metric", "phase"],
    registry=REGISTRY,
)
DRIFT_SCORE = Gauge(
    "modelwerk_deployment_drift_score",
    "The highest per-feature drift of the stable version's live inputs, as last read.",
    ["namespace", "deployment"],
    registry=REGISTRY,
)
DRIFT_DETECTED = Counter(
    "modelwerk_drift_detected",
    "Times a Deployment's drift crossed its threshold.",
    ["namespace", "deployment"],
    registry=REGISTRY,
)
RETRAINING_RUNS = Counter(
    "modelwerk_retraining_runs",
    "Retraining TrainingJobs started because of drift.",
    ["namespace", "deployment"],
    registry=REGISTRY,
)


def record_rollout(dep: Deployment, plan: Plan) -> None:
    """Export what a Deployment decision changed: phase, weight, finished rollouts, analysis
    measurements, drift and retraining runs."""
    from modelwerk.api.v1alpha1.deployment import DeploymentStatus

    old, new = dep.status, plan.status
    assert isinstance(new, DeploymentStatus)
    ns, name = dep.metadata.namespace, dep.metadata.name
    for phase in ROLLOUT_PHASES:
        ROLLOUT_PHASE.labels(ns, name, phase).set(1 if new.phase == phase else 0)
    CANARY_WEIGHT.labels(ns, name).set(new.actual_weight or 0)
    before = old.history[0] if old.history else None
    after = new.history[0] if new.history else None
    if after is not None and after.finish_time is not None and after != before:
        ROLLOUTS.labels(ns, after.outcome).inc()
        if after.start_time is not None:
            seconds = (after.finish_time - after.start_time).total_seconds()
            ROLLOUT_SECONDS.labels(ns, after.outcome).observe(seconds)
    seen = max((m.time for run in old.analysis_runs or [] for m in run.measurements), default=None)
    for run in new.analysis_runs or []:
        for m in run.measurements:
            if seen is None or m.time > seen:
                ANALYSIS_MEASUREMENTS.labels(ns, name, m.metric, m.phase).inc()
    if new.drift is not None and new.drift.score is not None:
        DRIFT_SCORE.labels(ns, name).set(new.drift.score)
    was = next((c for c in old.conditions if c.type == "DriftDetected"), None)
    now = next((c for c in new.conditions if c.type == "DriftDetected"), None)
    if now is not None and now.status == "True" and (was is None or was.status != "True"):
        DRIFT_DETECTED.labels(ns, name).inc()
    RETRAINING_RUNS.labels(ns, name).inc(sum(c.get("kind") == "TrainingJob" for c in plan.create))


def forget_deployment(namespace: str, name: str) -> None:
    """Drop a deleted Deployment's series so dashboards do not show ghosts."""
    for phase in ROLLOUT_PHASES:
        _remove(ROLLOUT_PHASE, namespace, name, phase)
    for gauge in (CANARY_WEIGHT, DRIFT_SCORE):
        _remove(gauge, namespace, name)


def _remove(metric: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
