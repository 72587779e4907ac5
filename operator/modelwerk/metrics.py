"""The operator's own Prometheus metrics, on a dedicated registry served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
