"""The operator's own Prometheus metrics, on a dedicated registry served at /metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from modelwerk.api.v1alpha1 import Deployment, ModelVersion, TrainingJob
    from modelwerk.api.v1alpha1.production import CaptureStatus, LiveMetrics
    from modelwerk.api.v1alpha1.retraining import RetrainingStatus
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
TRACKING_FAILURES = Counter(
    "modelwerk_tracking_failures_total",
    "Training runs the experiment tracker did not fully receive, by reason "
    "(TrackingUnavailable, TrackingIncomplete).",
    ["namespace", "reason"],
    registry=REGISTRY,
)
TAG_FAILURES = Counter(
    "modelwerk_tracking_tag_failures_total",
    "ModelVersions whose MLflow run could not be tagged with them, by reason "
    "(TrackingUnavailable, TagRefused).",
    ["namespace", "reason"],
    registry=REGISTRY,
)
MODEL_METRIC = Gauge(
    "modelwerk_model_metric",
    "Holdout metrics of the latest registered version of each model.",
    ["namespace", "model", "metric"],
    registry=REGISTRY,
)


def record_training(tj: TrainingJob, plan: Plan) -> None:
    """Count a run once, when the plan moves it into a terminal phase; count a tracking
    failure once, when the Tracked condition first turns False."""
    was = next((c for c in tj.status.conditions if c.type == "Tracked"), None)
    now = next((c for c in plan.status.conditions if c.type == "Tracked"), None)
    if now is not None and now.status == "False" and was is None:
        TRACKING_FAILURES.labels(tj.metadata.namespace, now.reason).inc()
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


def record_model_version(mv: ModelVersion, plan: Plan) -> None:
    """Count a version once, when its Tracked condition turns False."""
    was = next((c for c in mv.status.conditions if c.type == "Tracked"), None)
    now = next((c for c in plan.status.conditions if c.type == "Tracked"), None)
    if now is not None and now.status == "False" and (was is None or was.status != "False"):
        TAG_FAILURES.labels(mv.metadata.namespace, now.reason).inc()


ROLLOUT_PHASES = ("Progressing", "Paused", "Healthy", "Degraded", "Aborted")


class _DeploymentGauges(Collector):
    """The per-Deployment gauges: phase, canary weight and drift score.

    Kept as plain values and turned into samples only when scraped. A labelled
    prometheus_client Gauge costs about 0.75 KiB, and a Deployment had six of them (4.4 MiB
    of the operator's memory with 1,000 Deployments, bench/operator/results.md); here a
    Deployment costs one dict entry per gauge. The exposition is the same: a phase series
    per phase, 1 for the current one and 0 for the others.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # scrapes run on the HTTP server's thread
        self._phase: dict[tuple[str, str], str | None] = {}
        self._weight: dict[tuple[str, str], float] = {}
        self._drift: dict[tuple[str, str], float] = {}

    def record(
        self, namespace: str, name: str, phase: str | None, weight: float, drift: float | None
    ) -> None:
        key = (namespace, name)
        with self._lock:
            self._phase[key] = phase
            self._weight[key] = weight
            if drift is not None:
                self._drift[key] = drift

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._lock:
            for values in (self._phase, self._weight, self._drift):
                values.pop(key, None)

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "modelwerk_rollout_phase",
                "Phase of each modelwerk Deployment: 1 for the current phase, 0 for the others.",
                labels=["namespace", "deployment", "phase"],
            ),
            GaugeMetricFamily(
                "modelwerk_rollout_canary_weight",
                "Percentage of traffic actually on the version being rolled out.",
                labels=["namespace", "deployment"],
            ),
            GaugeMetricFamily(
                "modelwerk_deployment_drift_score",
                "The highest per-feature drift of the stable version's live inputs, as last read.",
                labels=["namespace", "deployment"],
            ),
        )

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        phase, weight, drift = self._families()
        with self._lock:
            phases, weights, drifts = (
                list(self._phase.items()),
                list(self._weight.items()),
                list(self._drift.items()),
            )
        for (namespace, name), current in phases:
            for p in ROLLOUT_PHASES:
                phase.add_metric([namespace, name, p], 1.0 if current == p else 0.0)
        for (namespace, name), value in weights:
            weight.add_metric([namespace, name], value)
        for (namespace, name), value in drifts:
            drift.add_metric([namespace, name], value)
        return (phase, weight, drift)


DEPLOYMENT_GAUGES = _DeploymentGauges()
REGISTRY.register(DEPLOYMENT_GAUGES)


class _LiveGauges(Collector):
    """The live figures of each Deployment (``status.liveMetrics``), per model version, and its
    capture counters, as last read from the aggregator and the serving pods."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[tuple[str, str], tuple[LiveMetrics | None, CaptureStatus | None]] = {}

    def record(
        self, namespace: str, name: str, live: LiveMetrics | None, capture: CaptureStatus | None
    ) -> None:
        with self._lock:
            if live is None and capture is None:
                self._live.pop((namespace, name), None)
            else:
                self._live[(namespace, name)] = (live, capture)

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._live.pop((namespace, name), None)

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        version = ["namespace", "deployment", "version"]
        deployment = ["namespace", "deployment"]
        return {
            "accuracy": GaugeMetricFamily(
                "modelwerk_deployment_live_accuracy",
                "Live accuracy per version: labels joined with the captured predictions of all "
                "replicas over the capture window.",
                labels=version,
            ),
            "mae": GaugeMetricFamily(
                "modelwerk_deployment_live_mae",
                "Live mean absolute error per version.",
                labels=version,
            ),
            "rmse": GaugeMetricFamily(
                "modelwerk_deployment_live_rmse",
                "Live root mean squared error per version.",
                labels=version,
            ),
            "matched": GaugeMetricFamily(
                "modelwerk_deployment_live_matched_rows",
                "Labelled rows behind the live figures, per version.",
                labels=version,
            ),
            "labels": GaugeMetricFamily(
                "modelwerk_deployment_live_labels",
                "Label rows received in the capture window, by result (matched, unmatched, "
                "pending, duplicate).",
                labels=[*deployment, "result"],
            ),
            "dropped": GaugeMetricFamily(
                "modelwerk_deployment_capture_dropped_rows",
                "Capture rows the serving pods dropped since they started.",
                labels=deployment,
            ),
            "failing": GaugeMetricFamily(
                "modelwerk_deployment_capture_failing_pods",
                "Serving pods whose last write to the artifact store failed.",
                labels=deployment,
            ),
        }

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        with self._lock:
            items = list(self._live.items())
        for (namespace, name), (live, capture) in items:
            if live is not None:
                for v in live.versions:
                    if v.arm is not None:
                        continue
                    key = [namespace, name, v.version]
                    families["matched"].add_metric(key, v.matched)
                    for field in ("accuracy", "mae", "rmse"):
                        value = getattr(v, field)
                        if value is not None:
                            families[field].add_metric(key, value)
                labels = live.labels
                for result, count in (
                    ("matched", labels.matched),
                    ("unmatched", labels.unmatched),
                    ("pending", labels.pending),
                    ("duplicate", labels.duplicates),
                ):
                    families["labels"].add_metric([namespace, name, result], count)
            if capture is not None:
                families["dropped"].add_metric([namespace, name], capture.dropped_rows)
                families["failing"].add_metric([namespace, name], capture.failing_pods)
        return list(families.values())


LIVE_GAUGES = _LiveGauges()
REGISTRY.register(LIVE_GAUGES)
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
DRIFT_DETECTED = Counter(
    "modelwerk_drift_detected",
    "Times a Deployment's drift crossed its threshold.",
    ["namespace", "deployment"],
    registry=REGISTRY,
)
RETRAINING_RUNS = Counter(
    "modelwerk_retraining_runs",
    "Retraining TrainingJobs started, by Deployment.",
    ["namespace", "deployment"],
    registry=REGISTRY,
)
RETRAINING_TRIGGERED = Counter(
    "modelwerk_retraining_triggered",
    "Retraining runs started, by the trigger that started them.",
    ["trigger"],
    registry=REGISTRY,
)
RETRAINING_SUPPRESSED = Counter(
    "modelwerk_retraining_suppressed",
    "Triggers held back, by why (counted when a trigger starts being held back).",
    ["reason"],
    registry=REGISTRY,
)


def record_rollout(dep: Deployment, plan: Plan) -> None:
    """Export what a Deployment decision changed: phase, weight, finished rollouts, analysis
    measurements, drift and retraining runs."""
    from modelwerk.api.v1alpha1.deployment import DeploymentStatus

    old, new = dep.status, plan.status
    assert isinstance(new, DeploymentStatus)
    ns, name = dep.metadata.namespace, dep.metadata.name
    drift = new.drift.score if new.drift is not None else None
    DEPLOYMENT_GAUGES.record(ns, name, new.phase, new.actual_weight or 0, drift)
    LIVE_GAUGES.record(ns, name, new.live_metrics, new.capture)
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
    was = next((c for c in old.conditions if c.type == "DriftDetected"), None)
    now = next((c for c in new.conditions if c.type == "DriftDetected"), None)
    if now is not None and now.status == "True" and (was is None or was.status != "True"):
        DRIFT_DETECTED.labels(ns, name).inc()
    RETRAINING_RUNS.labels(ns, name).inc(sum(c.get("kind") == "TrainingJob" for c in plan.create))
    _record_retraining(old.retraining, new.retraining)


def _record_retraining(old: RetrainingStatus | None, new: RetrainingStatus | None) -> None:
    if new is None:
        return
    if new.last_run is not None and (old is None or old.last_run != new.last_run):
        RETRAINING_TRIGGERED.labels(new.last_run.trigger).inc()
    held = new.last_suppressed
    if held is not None and held.suppressed and (old is None or old.last_suppressed != held):
        RETRAINING_SUPPRESSED.labels(held.suppressed).inc()


def forget_deployment(namespace: str, name: str) -> None:
    """Drop a deleted Deployment's series so dashboards do not show ghosts."""
    DEPLOYMENT_GAUGES.forget(namespace, name)
    LIVE_GAUGES.forget(namespace, name)
