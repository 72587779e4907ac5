"""Server settings: environment variables ``MODELWERK_SERVER_*`` or ``modelwerk serve`` flags.

The operator sets the environment (one source of truth for the pod spec); flags exist for
running by hand. With ``--workers`` > 1 the CLI exports the resolved settings back into the
environment so that every worker process builds the same :class:`ServerSettings`.
"""

from __future__ import annotations

import posixpath
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelwerk.runtime.artifacts import MODEL_CARD_FILE

ENV_PREFIX = "MODELWERK_SERVER_"


class ServerSettings(BaseSettings):
    """Everything ``modelwerk serve`` can be told; field ``x_y`` is env ``MODELWERK_SERVER_X_Y``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", protected_namespaces=(), frozen=True
    )

    model_uri: str = Field(min_length=1)
    """The ``model.joblib`` (or ONNX ``model.onnx``) to serve (pvc://, file://, a local path, or
    any fsspec URL)."""
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """Expected sha256 of the artifact. Required: the server refuses to unpickle without it."""
    model_name: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """The name clients use in ``/v2/models/<name>``."""
    version: str | None = Field(default=None, min_length=1, max_length=253)
    """Version label (metrics, V2 ``model_version``); defaults to the first 12 hex of sha256."""
    model_card_uri: str | None = None
    """The model card; defaults to ``model-card.json`` next to the model."""
    profile_uri: str | None = None
    """Reference profile for drift; defaults to the model card's dataset profile."""
    drift_enabled: bool = True
    """Compute drift when a profile is available."""
    artifact_format: Literal["joblib", "onnx"] = "joblib"
    """The form of the artifact at ``model_uri`` (the ModelVersion's ``spec.artifact.format``):
    an ``onnx`` artifact (a trainer container's ``model.onnx``) is served by the onnx backend
    as it is, and the joblib backend refuses it."""
    backend: Literal["auto", "onnx", "joblib"] = "auto"
    """What predicts: ``onnx`` (the verified compiled model, or the artifact itself when it is
    ONNX), ``joblib`` (the original), or ``auto``: onnx when ``compiled_sha256`` is given or
    the artifact is ONNX, else joblib."""
    compiled_uri: str | None = None
    """The compiled ``model.onnx``; defaults to the location the model card records."""
    compiled_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """Expected sha256 of the compiled model (the ModelVersion's ``spec.compiled.sha256``)."""
    intra_op_threads: int = Field(default=1, ge=1, le=64)
    """ONNX Runtime threads per predict call in each worker."""
    allow_version_mismatch: bool = False
    """Load an artifact written by another scikit-learn minor version (unsupported by
    scikit-learn; off by default)."""

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    """Server processes; each loads the model and keeps its own drift and feedback state."""
    max_batch_size: int = Field(default=64, ge=1, le=4096)
    """Most requests merged into one predict call."""
    max_batch_delay_ms: float = Field(default=2.0, ge=0, le=1000)
    """Longest a request waits for others, and only while more requests are arriving."""
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Larger request bodies are refused with 413."""

    drift_method: Literal["psi", "ks"] = "psi"
    """The method behind ``modelwerk_model_drift_score`` (both are exported per feature)."""
    drift_window: int = Field(default=1000, ge=10, le=100_000)
    """Most recent input rows compared with the profile."""
    drift_threshold: float | None = Field(default=None, gt=0)
    """The threshold the operator compares the ``drift_method`` score with. With it, a
    feature's score is reported only once the window holds enough of its values that sampling
    noise alone crosses the threshold with probability at most ``drift_false_alarm``."""
    drift_false_alarm: float = Field(default=0.01, gt=0, lt=0.5)
    """Chance that an undrifted window's highest ``drift_method`` score crosses
    ``drift_threshold`` (per server process and window)."""
    drift_min_rows: int = Field(default=50, ge=1)
    """Rows needed before drift is reported (capped at the window): all that is needed without
    a threshold, a lower bound with one."""
    drift_interval_seconds: float = Field(default=10.0, ge=0)
    """Drift is recomputed at most this often (lazily, at scrape time)."""

    feedback_capacity: int = Field(default=10_000, ge=1)
    """Predictions remembered by request id for feedback (LRU)."""
    feedback_window: int = Field(default=1000, ge=1)
    """Labelled rows behind the rolling live accuracy / MAE."""

    capture: bool = False
    """Write every prediction (and a sample of the inputs) and every label to the store, under
    ``captures/`` and ``labels/`` (see :mod:`modelwerk.runtime.capture`)."""
    capture_root: str | None = None
    """The store's root URI (``pvc://<claim>``, ``s3://bucket/prefix``, a directory); defaults
    to ``MODELWERK_ARTIFACT_ROOT``."""
    namespace: str = Field(default="default", min_length=1, max_length=253)
    """The namespace in capture paths."""
    deployment: str | None = Field(default=None, min_length=1, max_length=253)
    """The Deployment in capture paths; defaults to the model name."""
    track: str | None = Field(default=None, max_length=63)
    """The pod's color (blue, green), recorded with each prediction."""
    pod: str | None = Field(default=None, min_length=1, max_length=253)
    """The pod's name, recorded with each row and in file names; defaults to the host name."""
    capture_input_rate: float = Field(default=0.1, ge=0, le=1)
    """Share of requests whose inputs are captured (predictions always are)."""
    capture_probabilities: bool = True
    """Capture class probabilities when the model has predict_proba."""
    capture_flush_seconds: float = Field(default=10.0, gt=0, le=3600)
    """Buffered rows are written at least this often."""
    capture_file_rows: int = Field(default=50_000, ge=1)
    """Rows per Parquet file at most; a full file's worth is written at once."""
    capture_buffer_rows: int = Field(default=100_000, ge=1)
    """Rows a process buffers at most per stream; beyond, rows are dropped and counted."""

    access_log: bool = False
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @property
    def resolved_card_uri(self) -> str:
        if self.model_card_uri:
            return self.model_card_uri
        return posixpath.join(posixpath.dirname(self.model_uri.rstrip("/")), MODEL_CARD_FILE)

    def to_env(self) -> dict[str, str]:
        """The settings as ``MODELWERK_SERVER_*`` variables (for worker processes)."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is not None:
                env[ENV_PREFIX + name.upper()] = (
                    str(value).lower() if isinstance(value, bool) else str(value)
                )
        return env
