"""Prometheus metrics of one model server, on a registry of its own.

Each app instance gets a fresh :class:`~prometheus_client.CollectorRegistry` (no global state,
so tests and several apps in one process do not see each other's numbers). Labels are low
cardinality: model, version, protocol, status code, class, feature, method; never a request.

With several worker processes the CLI turns on prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``): counters and histograms are summed over workers at scrape time,
whichever worker answers the scrape. Gauges that describe per-process state aggregate as
declared below: drift takes the highest worker's score (``livemax``), live accuracy the lowest
(``livemin``), MAE the highest, so a rollout check sees the worst worker. The rows a feature's
drift score waits for are the same in every worker; the window rows are summed over workers,
although each worker scores (and waits with) its own window.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from modelwerk.runtime.server.drift import DriftScores
from modelwerk.runtime.server.feedback import FeedbackResult

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class ServerMetrics:
    def __init__(
        self,
        model: str,
        version: str,
        sha256: str,
        classes: Sequence[Any] | None,
        value_buckets: Sequence[float] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        mv = ("model", "version")
        self._mv = (model, version)
        info = Gauge(
            "modelwerk_model_info",
            "The model served (value 1).",
            [*mv, "sha256"],
            registry=r,
            multiprocess_mode="max",
        )
        info.labels(model, version, sha256).set(1)
        self._requests = Counter(
            "modelwerk_model_requests",
            "Inference requests by protocol and HTTP status code.",
            [*mv, "protocol", "code"],
            registry=r,
        )
        self._request_children: dict[tuple[str, int], Any] = {}
        self.latency = Histogram(
            "modelwerk_model_request_seconds",
            "Inference request latency, receive to response.",
            mv,
            buckets=LATENCY_BUCKETS,
            registry=r,
        ).labels(*self._mv)
        self.in_flight = Gauge(
            "modelwerk_model_requests_in_flight",
            "Inference requests being served.",
            mv,
            registry=r,
            multiprocess_mode="livesum",
        ).labels(*self._mv)
        self.predict_seconds = Histogram(
            "modelwerk_model_predict_seconds",
            "Duration of one (merged) predict call in the batch thread.",
            mv,
            buckets=LATENCY_BUCKETS,
            registry=r,
        ).labels(*self._mv)
        self.batch_requests = Histogram(
            "modelwerk_model_batch_requests",
            "Requests merged into one predict call.",
            mv,
            buckets=BATCH_BUCKETS,
            registry=r,
        ).labels(*self._mv)
        self.batch_rows = Histogram(
            "modelwerk_model_batch_rows",
            "Rows in one predict call.",
            mv,
            buckets=BATCH_BUCKETS,
            registry=r,
        ).labels(*self._mv)
        self._class_children: dict[str, Any] = {}
        self._values = None
        if classes is not None:
            self._predictions = Counter(
                "modelwerk_model_predictions",
                "Predicted rows by class.",
                [*mv, "class"],
                registry=r,
            )
            for c in classes:  # series exist (at 0) before the first prediction of each class
                self._class_children[str(c)] = self._predictions.labels(*self._mv, str(c))
        else:
            self._values = Histogram(
                "modelwerk_model_prediction_value",
                "Predicted values (regression).",
                mv,
                buckets=tuple(value_buckets) if value_buckets else Histogram.DEFAULT_BUCKETS,
                registry=r,
            ).labels(*self._mv)
        self._drift = Gauge(
            "modelwerk_model_feature_drift",
            "Drift of a feature's recent inputs from the training profile (psi or ks).",
            [*mv, "feature", "method"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self._drift_score = Gauge(
            "modelwerk_model_drift_score",
            "The highest feature drift for the configured method.",
            [*mv, "method"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.drift_rows = Gauge(
            "modelwerk_model_drift_window_rows",
            "Rows in the drift window.",
            mv,
            registry=r,
            multiprocess_mode="livesum",
        ).labels(*self._mv)
        self._drift_needed = Gauge(
            "modelwerk_model_drift_rows_needed",
            "Values of a feature the drift window must hold before its score (of the configured "
            "method) is reported; +Inf when no window is enough.",
            [*mv, "feature", "method"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self._feedback = Counter(
            "modelwerk_model_feedback",
            "Feedback rows: correct/incorrect (classification), matched (regression), unmatched.",
            [*mv, "result"],
            registry=r,
        )
        self.feedback_abs_error = Counter(
            "modelwerk_model_feedback_absolute_error",
            "Sum of absolute errors of matched feedback rows (regression).",
            mv,
            registry=r,
        ).labels(*self._mv)
        # No series until a worker has feedback: in multiprocess mode a worker's 0 would
        # otherwise win livemin and report an accuracy of 0 for the whole pod.
        self._live_accuracy = Gauge(
            "modelwerk_model_live_accuracy",
            "Accuracy over the last labelled rows.",
            mv,
            registry=r,
            multiprocess_mode="livemin",
        )
        self._live_mae = Gauge(
            "modelwerk_model_live_mae",
            "Mean absolute error over the last labelled rows.",
            mv,
            registry=r,
            multiprocess_mode="livemax",
        )
        self.live_labelled = Gauge(
            "modelwerk_model_live_labelled_rows",
            "Labelled rows behind live accuracy / MAE.",
            mv,
            registry=r,
            multiprocess_mode="livesum",
        ).labels(*self._mv)

    @property
    def live_accuracy(self) -> Any:
        return self._live_accuracy.labels(*self._mv)

    @property
    def live_mae(self) -> Any:
        return self._live_mae.labels(*self._mv)

    def request(self, protocol: str, code: int) -> None:
        child = self._request_children.get((protocol, code))
        if child is None:
            child = self._requests.labels(*self._mv, protocol, str(code))
            self._request_children[(protocol, code)] = child
        child.inc()

    def predictions(self, pred: np.ndarray) -> None:
        if self._values is not None:
            for v in pred.tolist():
                self._values.observe(float(v))
            return
        values, counts = np.unique(pred, return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            key = str(value)
            child = self._class_children.get(key)
            if child is None:
                child = self._class_children[key] = self._predictions.labels(*self._mv, key)
            child.inc(count)

    def feedback(self, result: str, rows: int) -> None:
        if rows:
            self._feedback.labels(*self._mv, result).inc(rows)

    def record_feedback(
        self, task: str, result: FeedbackResult, labelled: int, value: float | None
    ) -> None:
        """This process's view of feedback: counters, and its rolling accuracy or MAE."""
        self.feedback("unmatched", result.unmatched)
        if task == "classification":
            self.feedback("correct", result.correct)
            self.feedback("incorrect", result.matched - result.correct)
        else:
            self.feedback("matched", result.matched)
            self.feedback_abs_error.inc(result.abs_error)
        self.live_labelled.set(labelled)
        if value is not None:
            (self.live_accuracy if task == "classification" else self.live_mae).set(value)

    def set_drift(self, scores: DriftScores, method: str) -> None:
        self.drift_rows.set(scores.rows)
        best = None
        for (feature, m), value in scores.scores.items():
            self._drift.labels(*self._mv, feature, m).set(value)
            if m == method and (best is None or value > best):
                best = value
        if best is not None:
            self._drift_score.labels(*self._mv, method).set(best)

    def set_drift_needed(self, needed: dict[tuple[str, str], float], method: str) -> None:
        """The rows each feature's score of ``method`` waits for (fixed for the process)."""
        for (feature, m), rows in needed.items():
            if m == method:
                self._drift_needed.labels(*self._mv, feature, m).set(rows)

    def exposition(self) -> bytes:
        if multiprocess_mode():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
