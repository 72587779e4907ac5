"""The artifact contract shared by the validator, the trainer, the server and the operator.

Layout of the artifact store (a directory, or any fsspec URL, named by ``MODELWERK_ARTIFACT_ROOT``)::

    datasets/<dataset>/<sha256>/snapshot.parquet     canonical snapshot (content-addressed)
    datasets/<dataset>/<sha256>/profile.json         :class:`~modelwerk.runtime.profile.Profile`
    models/<model>/<sha256>/model.joblib             fitted sklearn Pipeline
    models/<model>/<sha256>/model-card.json          :class:`ModelCard`

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
    format: Literal["joblib"] = "joblib"
    framework: Literal["scikit-learn"] = "scikit-learn"
    framework_version: str = Field(alias="frameworkVersion")


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
