"""Production data on a Deployment: what is captured (spec), and the live figures the join of
labels with the captured predictions gives (status)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from modelwerk.api.base import ApiModel


class Capture(ApiModel):
    """Inference capture: every serving pod writes each prediction (with its request id, time,
    model version, color and pod), class probabilities, a sample of the inputs, and every label
    sent to ``/feedback``, as Parquet files in the artifact store under
    ``captures/<namespace>/<deployment>/<version>/date=…/hour=…/`` and
    ``labels/<namespace>/<deployment>/date=…/hour=…/``. A small aggregator pod (``<name>-monitor``)
    joins labels with the predictions of all replicas: the live accuracy (or MAE/RMSE) per
    version in ``status.liveMetrics``, which the ``accuracy`` analysis check uses. Inputs are
    personal data in many domains: ``inputSampleRate`` and ``retentionDays`` bound what is
    kept."""

    enabled: bool = True
    """Capture on (the default when this block is present)."""
    input_sample_rate: float = Field(default=0.1, ge=0, le=1)
    """Share of requests whose inputs are stored (predictions always are). Defaults to 0.1."""
    probabilities: bool = True
    """Store class probabilities (classifiers with predict_proba). Defaults to true."""
    retention_days: int = Field(default=30, ge=1, le=3650)
    """Captures and labels older than this are deleted, an hour partition at a time.
    Defaults to 30."""
    flush_interval_seconds: int = Field(default=10, ge=1, le=3600)
    """Each serving process writes what it buffered at least this often (a file per stream and
    hour). Defaults to 10."""
    max_file_rows: int = Field(default=50_000, ge=100, le=5_000_000)
    """Rows per file at most; a process writes as soon as it holds this many. Defaults to
    50000."""
    buffer_rows: int = Field(default=100_000, ge=100, le=10_000_000)
    """Rows a serving process buffers per stream while the store is slow or down; beyond,
    rows are dropped and counted (predictions are never slowed down). Defaults to 100000."""
    window_seconds: int = Field(default=3600, ge=60, le=2_592_000)
    """Live figures cover the labels received in this window. Defaults to 3600."""
    label_delay_seconds: int = Field(default=3600, ge=60, le=604_800)
    """How long after a prediction its label may arrive and still be joined; later labels
    count as unmatched. The aggregator holds the predictions of this span in memory (about 40
    bytes a row). Defaults to 3600."""
    interval_seconds: int = Field(default=30, ge=5, le=3600)
    """How often the operator reads the live figures and the pods' capture counters. Defaults
    to 30."""


class LiveVersion(ApiModel):
    """The joined labels of one model version (and experiment arm) over the window."""

    version: str
    """The ModelVersion."""
    arm: str | None = None
    """The experiment arm, when the predictions carried one."""
    matched: int = Field(default=0, ge=0)
    """Labelled rows joined with this version's predictions."""
    accuracy: float | None = None
    """Share of them predicted right (classification)."""
    mae: float | None = None
    """Mean absolute error (regression)."""
    rmse: float | None = None
    """Root mean squared error (regression)."""
    rewards: int = Field(default=0, ge=0)
    """Rows with a reward."""
    reward_mean: float | None = None
    """Mean reward."""


class LiveLabels(ApiModel):
    """Label rows received in the window, by what became of them."""

    received: int = Field(default=0, ge=0)
    """All of them."""
    matched: int = Field(default=0, ge=0)
    """Joined with a captured prediction."""
    unmatched: int = Field(default=0, ge=0)
    """No captured prediction with that request id and row within labelDelaySeconds (an
    unknown, expired or never-captured request)."""
    pending: int = Field(default=0, ge=0)
    """Waiting for their prediction's file (written every flushIntervalSeconds)."""
    duplicates: int = Field(default=0, ge=0)
    """Second labels for a row that already had one (ignored)."""


class LiveMetrics(ApiModel):
    """The join of labels with the captured predictions of all replicas, as last read."""

    measured_time: datetime
    """When the aggregator computed them."""
    window_seconds: int = Field(ge=0)
    """The window they cover."""
    labels: LiveLabels = Field(default_factory=LiveLabels)
    """Label rows in the window."""
    versions: list[LiveVersion] = Field(default_factory=list, max_length=32)
    """Per model version (and arm)."""


class CaptureStatus(ApiModel):
    """How capture goes in the serving pods and the aggregator, as last read."""

    measured_time: datetime
    """When it was read."""
    pods: int = Field(default=0, ge=0)
    """Serving pods that answered."""
    written_rows: float = Field(default=0, ge=0)
    """Rows the answering pods wrote (predictions and labels) since they started."""
    dropped_rows: float = Field(default=0, ge=0)
    """Rows they dropped since they started (buffer full, or not written at shutdown)."""
    failing_pods: int = Field(default=0, ge=0)
    """Pods whose last write to the store failed."""
    store_error: str | None = Field(default=None, max_length=1024)
    """Why the aggregator could not read the store, when it could not."""
