"""The artifact contract shared by the validator, the trainer, the server and the operator.

Layout of the artifact store (a directory, or any fsspec URL, named by ``MODELWERK_ARTIFACT_ROOT``)::

    datasets/<dataset>/<sha256>/snapshot.parquet     canonical snapshot (content-addressed)
    datasets/<dataset>/<sha256>/profile.json         :class:`~modelwerk.runtime.profile.Profile`
    models/<model>/<sha256>/model.joblib             fitted sklearn Pipeline
    models/<model>/<sha256>/model.onnx               the same pipeline compiled (when verified),
                                                     or, alone, a trainer container's ONNX model
    models/<model>/<sha256>/model-card.json          :class:`ModelCard`
    runs/<namespace>/<trainingjob>/<uid>/<run>/trials/part-*.parquet   search trials

Paths are content-addressed, so an artifact is never overwritten: the same bytes land at the
same path, different bytes at a different one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Task = Literal["classification", "regression"]
Datatype = Literal["FP64", "FP32", "INT64", "INT32", "BOOL", "BYTES"]
"""Open Inference Protocol (V2) tensor datatypes used in signatures."""

MODEL_FILE = "model.joblib"
MODEL_CARD_FILE = "model-card.json"
COMPILED_FILE = "model.onnx"
SNAPSHOT_FILE = "snapshot.parquet"
PROFILE_FILE = "profile.json"
TERMINATION_MESSAGE_LIMIT = 4096
"""Kubernetes truncates termination messages at 4 KiB; results must fit."""


class _Contract(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class TensorSpec(_Contract):
    """One named input or output of a model."""

    name: str
    datatype: Datatype
    shape: list[int] = Field(default_factory=lambda: [-1])


class Signature(_Contract):
    """What a model takes and returns; the server validates requests against it."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    classes: list[str | int | float | bool] | None = None


class ArtifactRef(_Contract):
    """Where the serialized model lives and how to verify it before unpickling."""

    uri: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(alias="sizeBytes", ge=0)
    format: Literal["joblib", "onnx"] = "joblib"
    """joblib: a pickled pipeline; onnx: a trainer container's ONNX model, served as it is."""
    framework: Literal["scikit-learn", "onnx"] = "scikit-learn"
    framework_version: str = Field(alias="frameworkVersion")
    """scikit-learn's version (joblib); the graph's ONNX opset, as ``opset 18`` (onnx)."""


class DatasetLineage(_Contract):
    name: str
    version: str
    profile_uri: str | None = Field(default=None, alias="profileUri")


class TrainingLineage(_Contract):
    name: str
    namespace: str
    uid: str | None = None


class Evaluation(_Contract):
    """How the model was evaluated; written by the trainer, informational for everyone else."""

    train_rows: int = Field(alias="trainRows", ge=0)
    test_rows: int = Field(alias="testRows", ge=0)
    labels: list[str | int | float | bool] | None = None
    """Classifier labels, the row and column order of ``confusion_matrix``."""
    confusion_matrix: list[list[int]] | None = Field(default=None, alias="confusionMatrix")
    """Holdout counts: row = true label, column = predicted label."""
    search: dict[str, Any] | None = None
    """Hyperparameter search summary: strategy, scoring, cv, candidates, bestScore."""
    warnings: list[str] = Field(default_factory=list)
    """Warnings raised while fitting (for example ConvergenceWarning), deduplicated."""


class Agreement(_Contract):
    """How the compiled model's answers compared with the original's on one set of rows."""

    rows: int = Field(ge=0)
    label_agreement: float | None = Field(default=None, alias="labelAgreement", ge=0, le=1)
    """Classification: share of rows with the same predicted label."""
    max_probability_diff: float | None = Field(default=None, alias="maxProbabilityDiff", ge=0)
    max_abs_diff: float | None = Field(default=None, alias="maxAbsDiff", ge=0)
    max_rel_diff: float | None = Field(default=None, alias="maxRelDiff", ge=0)


class CompiledArtifact(_Contract):
    """The pipeline compiled to ONNX next to ``model.joblib``, and its verification.

    ``uri`` and ``sha256`` are set only when ``verified``: an unverified compilation is never
    written, so it cannot be served by mistake.
    """

    verified: bool
    reason: str | None = None
    """Why there is no verified compiled model."""
    uri: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    size_bytes: int | None = Field(default=None, alias="sizeBytes", ge=0)
    format: Literal["onnx"] = "onnx"
    converter: str | None = None
    """The converter and its version, for example ``skl2onnx 1.20.0``."""
    opsets: dict[str, int] = Field(default_factory=dict)
    """Opset per domain (``""`` is the ONNX default domain, ``ai.onnx.ml`` the ML operators)."""
    precision: Literal["float64", "mixed", "float32"] | None = None
    libraries: dict[str, str] = Field(default_factory=dict)
    """onnx, onnxruntime and converter versions used to compile and verify."""
    tolerance: dict[str, float] = Field(default_factory=dict)
    """The bounds the comparison had to meet (probability, abs, rel)."""
    snapshot: Agreement | None = None
    """Every row of the dataset snapshot."""
    holdout: Agreement | None = None
    """The holdout rows (a subset of the snapshot)."""
    seconds: float | None = Field(default=None, ge=0)
    """Time spent converting and verifying."""


class FairnessCard(_Contract):
    """Group fairness on the holdout (``runtime.trainer.fairness``); everything it measured."""

    sensitive_features: list[str] = Field(alias="sensitiveFeatures")
    positive_label: str | None = Field(default=None, alias="positiveLabel")
    min_group_size: int = Field(alias="minGroupSize", ge=1)
    figures: dict[str, float] = Field(default_factory=dict)
    """The worst value of each figure over the sensitive features (what gates read)."""
    intervals: dict[str, list[float]] | None = None
    """Bootstrap interval [low, high] of each worst figure."""
    confidence: float | None = None
    by_feature: dict[str, dict[str, float]] = Field(default_factory=dict, alias="byFeature")
    """Each figure of each sensitive feature."""
    groups: list[dict[str, Any]] = Field(default_factory=list)
    """Every group: feature, group, count, gated, metrics."""
    notes: list[str] = Field(default_factory=list)


class RobustnessCard(_Contract):
    """Perturbation tests on the holdout (``runtime.trainer.robustness``)."""

    metric: str
    baseline: float | None = None
    tolerance: float | None = None
    """Regression: the flip threshold, as a multiple of the holdout target's std."""
    figures: dict[str, float] = Field(default_factory=dict)
    """Every feature perturbed at once, by gate name without the ``robustness.`` prefix."""
    findings: list[dict[str, Any]] = Field(default_factory=list)
    """Each feature perturbed alone: perturbation, feature, level, flipRate, metricDrop."""
    notes: list[str] = Field(default_factory=list)


class TrialsRef(_Contract):
    """Where the run's search trials are (``runtime.trainer.trials``)."""

    uri: str
    count: int = Field(ge=0)
    scoring: str
    best: list[dict[str, Any]] = Field(default_factory=list)


class ModelCard(_Contract):
    """Written next to ``model.joblib``; the one description of a trained model."""

    schema_version: Literal[1] = Field(default=1, alias="schemaVersion")
    model: str
    task: Task
    estimator: str
    artifact: ArtifactRef
    signature: Signature
    metrics: dict[str, float]
    params: dict[str, Any] = Field(default_factory=dict)
    best_params: dict[str, Any] | None = Field(default=None, alias="bestParams")
    dataset: DatasetLineage
    training_job: TrainingLineage | None = Field(default=None, alias="trainingJob")
    libraries: dict[str, str] = Field(default_factory=dict)
    created_at: datetime = Field(alias="createdAt")
    evaluation: Evaluation | None = None
    duration_seconds: float | None = Field(default=None, alias="durationSeconds", ge=0)
    """Wall time of the training run that produced the artifact."""
    compiled: CompiledArtifact | None = None
    """The ONNX compilation of the pipeline (absent on cards written before it existed)."""
    fairness: FairnessCard | None = None
    robustness: RobustnessCard | None = None
    trials: TrialsRef | None = None
    champion: dict[str, Any] | None = None
    """The champion it was compared with on the same holdout, and both figures."""
