"""ModelVersion: an immutable, hash-verified model artifact with lineage; only stage changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from modelwerk.api.base import ApiModel, CrdMeta, PrinterColumn, Resource, name_rules, with_cel
from modelwerk.api.v1alpha1.common import ResourceName, StatusBase, Uri

Stage = Literal["None", "Staging", "Production", "Archived"]
ModelVersionPhase = Literal["Pending", "Ready", "Failed"]
Datatype = Literal["FP64", "FP32", "INT64", "INT32", "BOOL", "BYTES"]

IMMUTABLE_FIELDS = (
    "model",
    "version",
    "task",
    "artifact",
    "signature",
    "metrics",
    "params",
    "lineage",
)


def _immutability_rules() -> list[dict[str, str]]:
    """One transition rule per field, so the error names the field that was changed.

    Written as ``has(...) == has(...)`` plus equality so that adding or removing an optional
    field is refused too, not only changing it.
    """
    return [
        {
            "rule": f"has(self.{f}) == has(oldSelf.{f}) && (!has(self.{f}) || self.{f} == oldSelf.{f})",
            "message": f"spec.{f} is immutable: only spec.stage may change; register a new ModelVersion instead",
        }
        for f in IMMUTABLE_FIELDS
    ]


class Artifact(ApiModel):
    """The serialized model and the hash it must match before anything unpickles it."""

    uri: Uri
    """Where model.joblib lives, for example pvc://modelwerk-artifacts/models/iris/<sha256>/model.joblib."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """Lower-case hex sha256 of the file; the server refuses to load anything else."""
    format: Literal["joblib"] = "joblib"
    """Serialization format. Defaults to joblib."""
    framework: Literal["scikit-learn"] = "scikit-learn"
    """The library that produced the model. Defaults to scikit-learn."""
    framework_version: str | None = Field(default=None, max_length=64)
    """Version of that library, for example 1.5.2."""


class Tensor(ApiModel):
    """A named input or output in Open Inference Protocol terms."""

    name: str = Field(min_length=1, max_length=256)
    """Name: a feature column for inputs."""
    datatype: Datatype
    """FP64, FP32, INT64, INT32, BOOL or BYTES."""
    shape: list[int] = Field(default_factory=lambda: [-1], max_length=8)
    """Shape with -1 for a variable dimension. Defaults to [-1]."""


class Signature(ApiModel):
    """The model's inputs and outputs."""

    inputs: list[Tensor] = Field(max_length=4096)
    """Feature columns, in the order the model expects them."""
    outputs: list[Tensor] = Field(max_length=64)
    """Outputs, for example predict."""
    classes: list[str] | None = Field(default=None, max_length=10000)
    """Class labels of a classifier, as strings."""


class Lineage(ApiModel):
    """Where the model came from."""

    dataset: str | None = None
    """The Dataset it was trained on."""
    dataset_version: str | None = None
    """The exact content version of that Dataset."""
    training_job: str | None = None
    """The TrainingJob that produced it."""
    training_job_uid: str | None = None
    """The uid of that TrainingJob (names can be reused; uids cannot)."""


class ModelVersionSpec(ApiModel):
    """Desired state of a ModelVersion; everything but stage is immutable."""

    model: ResourceName
    """The registered model this is a version of."""
    version: int = Field(ge=1)
    """Version number, increasing per model."""
    task: Literal["classification", "regression"]
    """What the model predicts."""
    artifact: Artifact
    """The serialized model."""
    signature: Signature | None = None
    """Inputs and outputs."""
    metrics: dict[str, float] | None = None
    """Holdout metrics recorded at training time."""
    params: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """Estimator parameters."""
    lineage: Lineage | None = None
    """Dataset version and training run behind this model."""
    stage: Stage = "None"
    """Lifecycle stage: None, Staging, Production or Archived. The only mutable field;
    at most one version per model is in Production (the operator archives the previous one)."""

    model_config = with_cel(*_immutability_rules())


class StageTransition(ApiModel):
    """A recorded stage change."""

    stage: Stage
    """The stage entered."""
    time: datetime
    """When the operator observed it."""
    reason: str | None = None
    """Why, for example Promoted or ArchivedByNewerProduction."""


class ModelVersionStatus(StatusBase):
    """Observed state of a ModelVersion."""

    phase: ModelVersionPhase | None = None
    """Pending, Ready or Failed."""
    verified_sha256: str | None = None
    """The hash the operator computed from the artifact."""
    last_verified_time: datetime | None = None
    """When the artifact was last verified."""
    key_metric: str | None = None
    """The headline metric as name=value, for printer columns."""
    stage_history: list[StageTransition] | None = Field(default=None, max_length=100)
    """Stage changes, oldest first."""


class ModelVersion(Resource):
    """An immutable version of a registered model."""

    crd: ClassVar[CrdMeta] = CrdMeta(
        kind="ModelVersion",
        plural="modelversions",
        singular="modelversion",
        short_names=("mv",),
        extra_validations=name_rules(),
        printer_columns=(
            PrinterColumn("Model", ".spec.model"),
            PrinterColumn("Version", ".spec.version", "integer"),
            PrinterColumn("Stage", ".spec.stage"),
            PrinterColumn("Metric", ".status.keyMetric"),
            PrinterColumn("Dataset-Version", ".spec.lineage.datasetVersion"),
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )

    spec: ModelVersionSpec
    status: ModelVersionStatus = Field(default_factory=ModelVersionStatus)
