"""The server's side of inference capture: what each predict call and each label hands to the
store's writers, and the counters that say how that goes.

Every worker process has its own two writers (predictions, labels), each with its own bounded
buffer and thread; the request path only appends to a buffer (see
:mod:`modelwerk.runtime.capture.writer`). Predictions are recorded in the batcher's thread,
once per predict call, so the event loop does no capture work at all.
"""

from __future__ import annotations

import functools
import os
import random
import socket
from collections.abc import Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from modelwerk.runtime.capture import layout
from modelwerk.runtime.capture.records import (
    LabelBatch,
    PredictionBatch,
    PredictionEncoder,
    class_text,
    encode_labels,
)
from modelwerk.runtime.capture.store import Store
from modelwerk.runtime.capture.writer import PartitionedWriter
from modelwerk.runtime.server.experiment import ENV_PREFIX as EXPERIMENT_ENV_PREFIX
from modelwerk.runtime.server.feedback import FeedbackItem
from modelwerk.runtime.server.model import LoadedModel
from modelwerk.runtime.server.settings import ServerSettings

ROOT_ENV = "MODELWERK_ARTIFACT_ROOT"
ARM_ENV = EXPERIMENT_ENV_PREFIX + "ARM"
SHUTDOWN_SECONDS = 10.0
"""Longest the writers get at shutdown: within the pod's 30 s grace after the 5 s preStop."""


class CaptureError(Exception):
    """Capture is on but cannot work (no store named); the message says why."""


class _StreamMetrics:
    """One writer's counters (``stream`` = predictions or labels), as its observer."""

    def __init__(self, metrics: CaptureMetrics, stream: str) -> None:
        labels = (*metrics.mv, stream)
        self._written = metrics.written.labels(*labels)
        self._files = metrics.files.labels(*labels)
        self._errors = metrics.errors.labels(*labels)
        self._buffered = metrics.buffered.labels(*labels)
        self._healthy = metrics.healthy.labels(*labels)
        self._dropped = metrics.dropped
        self._labels = labels
        self._healthy.set(1)

    def written(self, rows: int, files: int) -> None:
        self._written.inc(rows)
        self._files.inc(files)

    def dropped(self, rows: int, reason: str) -> None:
        self._dropped.labels(*self._labels, reason).inc(rows)

    def failed(self) -> None:
        self._errors.inc()

    def state(self, queued_rows: int, healthy: bool) -> None:
        self._buffered.set(queued_rows)
        self._healthy.set(1 if healthy else 0)


class CaptureMetrics:
    def __init__(self, registry: CollectorRegistry, model: str, version: str) -> None:
        self.mv = (model, version)
        labels = ["model", "version", "stream"]
        self.written = Counter(
            "modelwerk_capture_written_rows",
            "Rows written to the store (stream: predictions or labels).",
            labels,
            registry=registry,
        )
        self.files = Counter(
            "modelwerk_capture_files", "Parquet files written.", labels, registry=registry
        )
        self.dropped = Counter(
            "modelwerk_capture_dropped",
            "Rows not written: the buffer was full (the store is slow or down), encoding failed, "
            "or the process stopped before the store took them.",
            [*labels, "reason"],
            registry=registry,
        )
        self.errors = Counter(
            "modelwerk_capture_write_errors",
            "Failed writes to the store (their rows are retried).",
            labels,
            registry=registry,
        )
        self.buffered = Gauge(
            "modelwerk_capture_buffered_rows",
            "Rows waiting to be written.",
            labels,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.healthy = Gauge(
            "modelwerk_capture_healthy",
            "1 while the last write to the store succeeded (or none was needed), else 0.",
            labels,
            registry=registry,
            multiprocess_mode="livemin",
        )


class ServerCapture:
    """Capture for one served model in one process."""

    def __init__(
        self,
        settings: ServerSettings,
        model: LoadedModel,
        registry: CollectorRegistry,
        store: Store | None = None,
    ) -> None:
        root = settings.capture_root or os.environ.get(ROOT_ENV)
        if store is None:
            if not root:
                raise CaptureError(
                    f"capture is on but no store is named: set --capture-root or {ROOT_ENV}"
                )
            store = Store(root)
        pod = settings.pod or socket.gethostname()
        namespace, deployment = settings.namespace, settings.deployment or model.name
        metrics = CaptureMetrics(registry, model.name, model.version)
        common: dict[str, Any] = {
            "flush_seconds": settings.capture_flush_seconds,
            "file_rows": settings.capture_file_rows,
            "capacity_rows": settings.capture_buffer_rows,
        }
        encoder = PredictionEncoder(
            model=model.name,
            version=model.version,
            track=settings.track,
            pod=pod,
            task=model.task,
            columns=model.columns,
            datatypes=model.datatypes,
            classes=model.classes,
        )
        self.predictions: PartitionedWriter[PredictionBatch] = PartitionedWriter(
            store,
            layout.captures_prefix(namespace, deployment, model.version),
            pod,
            encoder,
            observer=_StreamMetrics(metrics, "predictions"),
            name="capture-predictions",
            **common,
        )
        self.labels: PartitionedWriter[LabelBatch] = PartitionedWriter(
            store,
            layout.labels_prefix(namespace, deployment),
            pod,
            functools.partial(encode_labels, model.task, pod),
            observer=_StreamMetrics(metrics, "labels"),
            name="capture-labels",
            **common,
        )
        self.task = model.task
        self.input_rate = settings.capture_input_rate
        self.probabilities = settings.capture_probabilities and model.has_proba
        # A pod of an experiment serves one arm, whichever pod assigned the request: its rows
        # carry the arm, so the aggregator can add up each arm's labels over the experiment.
        self.arm = os.environ.get(ARM_ENV) or None
        self._random = random.Random()

    def predicted(
        self,
        when: float,
        request_ids: Sequence[str],
        counts: Sequence[int],
        x: np.ndarray,
        prediction: np.ndarray,
        probabilities: np.ndarray | None,
        units: Sequence[str | None] | None = None,
    ) -> None:
        """Record one predict call (runs in the batcher's thread); ``units`` are the
        experiment units of the requests (None outside experiments)."""
        rate = self.input_rate
        sampled = [rate >= 1.0 or self._random.random() < rate for _ in request_ids]
        self.predictions.offer(
            PredictionBatch(
                time=when,
                request_ids=list(request_ids),
                counts=list(counts),
                prediction=prediction,
                probabilities=probabilities if self.probabilities else None,
                x=x if any(sampled) else None,
                sampled=sampled,
                arms=[self.arm] * len(request_ids) if self.arm else None,
                units=list(units) if units is not None and self.arm else None,
            )
        )

    def labelled(self, items: list[FeedbackItem], when: float) -> int | None:
        """Buffer the label rows of ``items``; how many, or None when the buffer is full
        (the caller answers 503 so that the client sends them again)."""
        batch = LabelBatch(time=when, request_ids=[], row=[], labels=[], rewards=[])
        regression = self.task == "regression"
        for item in items:
            for k, row in enumerate(item.rows):
                label = item.labels[k] if item.labels is not None else None
                batch.request_ids.append(item.request_id)
                batch.row.append(row)
                batch.labels.append(
                    None if label is None else float(label) if regression else _class(label)
                )
                batch.rewards.append(item.rewards[k])
        return batch.rows if self.labels.offer(batch) else None

    def close(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """Write what is buffered (both writers share ``timeout``); blocks."""
        for writer in (self.predictions, self.labels):
            writer.stop(timeout)
        for writer in (self.predictions, self.labels):
            writer.join(timeout)


def _class(label: Any) -> str:
    text: str = class_text(np.array([label], dtype=object))[0]
    return text
