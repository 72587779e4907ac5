"""ModelVersion: an immutable, hash-verified model artifact with lineage; only stage changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from modelwerk.api.base import ApiModel, CrdMeta, PrinterColumn, Resource, name_rules, with_cel
from modelwerk.api.v1alpha1.champion import ChampionResult
from modelwerk.api.v1alpha1.common import ResourceName, StatusBase, Uri
from modelwerk.api.v1alpha1.evaluation import (
    FairnessSummary,
    RobustnessSummary,
    RuntimeEnvironment,
    TrackingRecord,
)

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
    "compiled",
    "fairness",
    "robustness",
    "environment",
    "tracking",
    "champion",
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
    """Where model.joblib (or model.onnx) lives, for example
    pvc://modelwerk-artifacts/models/iris/<sha256>/model.joblib."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """Lower-case hex sha256 of the file; the server refuses to load anything else."""
    format: Literal["joblib", "onnx"] = "joblib"
    """Serialization format: joblib (a pickled scikit-learn compatible pipeline) or onnx (an
    ONNX model, for example a trainer container's model.onnx, served by ONNX Runtime; it has
    no joblib pipeline, so Deployments must not ask for the joblib backend). Defaults to
    joblib."""
    framework: Literal["scikit-learn", "onnx"] = "scikit-learn"
    """The library that reads the model: scikit-learn (joblib) or onnx. Defaults to
    scikit-learn."""
    framework_version: str | None = Field(default=None, max_length=64)
    """Version of that library, for example 1.5.2; for onnx the graph's opset, as opset 18."""


class Compiled(ApiModel):
    """The pipeline compiled to ONNX at registration, and how closely it agreed with the
    original on the training data. Only a verified compiled model is ever served."""

    verified: bool
    """True when the compiled model agreed with the original on every compared row: the same
    label on each row, probabilities and regression values within the stated tolerances."""
    reason: str | None = Field(default=None, max_length=1024)
    """Why there is no verified compiled model (an unsupported estimator, a disagreement, a
    missing converter); the original model is served."""
    uri: Uri | None = None
    """Where model.onnx lives, next to model.joblib; set only when verified."""
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """Lower-case hex sha256 of model.onnx; the server refuses to load anything else."""
    converter: str | None = Field(default=None, max_length=128)
    """The converter and its version, for example skl2onnx 1.20.0."""
    opset: int | None = Field(default=None, ge=1)
    """The ONNX (default domain) opset of the compiled model."""
    precision: Literal["float64", "mixed", "float32"] | None = None
    """The arithmetic of the compiled model: float64 where the converter supports it."""
    rows: int | None = Field(default=None, ge=0)
    """Rows compared: every row of the dataset snapshot (the holdout included)."""
    holdout_rows: int | None = Field(default=None, ge=0)
    """Of those, the holdout rows the metrics were measured on."""
    label_agreement: float | None = Field(default=None, ge=0, le=1)
    """Classification: the share of rows with the same predicted label (1 when verified)."""
    max_probability_diff: float | None = Field(default=None, ge=0)
    """Classification: the largest absolute difference of a class probability."""
    max_abs_diff: float | None = Field(default=None, ge=0)
    """Regression: the largest absolute difference of a predicted value."""
    max_rel_diff: float | None = Field(default=None, ge=0)
    """Regression: the largest difference relative to the original's value."""

    model_config = with_cel(
        {
            "rule": "!self.verified || (has(self.uri) && has(self.sha256))",
            "message": "a verified compiled model needs uri and sha256",
        }
    )

    @model_validator(mode="after")
    def _located(self) -> Compiled:
        if self.verified and (self.uri is None or self.sha256 is None):
            raise ValueError("a verified compiled model needs uri and sha256")
        return self


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
    compiled: Compiled | None = None
    """The ONNX compilation made at registration and its verification; absent for models
    registered before compilation existed or applied by hand without one."""
    fairness: FairnessSummary | None = None
    """Fairness figures on the holdout at training time."""
    robustness: RobustnessSummary | None = None
    """Robustness figures on the holdout at training time."""
    environment: RuntimeEnvironment | None = None
    """Python and library versions that wrote the artifact; model servers with a different
    scikit-learn minor version refuse it unless the Deployment allows the mismatch."""
    tracking: TrackingRecord | None = None
    """The experiment-tracker run that produced this version."""
    champion: ChampionResult | None = None
    """The version it beat on the same holdout before it was registered (TrainingJob
    spec.champion), with both figures."""
    stage: Stage = "None"
    """Lifecycle stage: None, Staging, Production or Archived. The only mutable field;
    at most one version per model is in Production (the operator archives the previous one)."""

    model_config = with_cel(
        *_immutability_rules(),
        {
            # A copied spec with a new artifact but the old compiled model would otherwise
            # serve the old model through ONNX: both files live in one content-addressed
            # directory, so that directory is what binds them.
            "rule": "!has(self.compiled) || !has(self.compiled.uri) || self.compiled.uri"
            ".startsWith(self.artifact.uri.substring(0, self.artifact.uri.lastIndexOf('/') + 1))",
            "message": "spec.compiled.uri must be in spec.artifact.uri's directory: a compiled "
            "model belongs to the artifact it was compiled from (drop spec.compiled when "
            "registering another artifact)",
        },
        {
            "rule": "!has(self.compiled) || !has(self.artifact.format) "
            "|| self.artifact.format != 'onnx'",
            "message": "spec.compiled describes a joblib artifact compiled to ONNX; an ONNX "
            "artifact (spec.artifact.format: onnx) is served as it is: drop spec.compiled",
        },
    )

    @model_validator(mode="after")
    def _compiled_beside_artifact(self) -> ModelVersionSpec:
        if self.compiled is not None and self.artifact.format == "onnx":
            raise ValueError("spec.compiled describes a joblib artifact compiled to ONNX")
        if self.compiled is not None and self.compiled.uri is not None:
            directory = self.artifact.uri[: self.artifact.uri.rfind("/") + 1]
            if not self.compiled.uri.startswith(directory):
                raise ValueError("spec.compiled.uri must be in spec.artifact.uri's directory")
        return self


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
    short_dataset_version: str | None = None
    """The first 12 hex digits of spec.lineage.datasetVersion, for printer columns."""
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
            # The full sha256 would make `kubectl get modelwerk` wrap; -o wide shows it.
            PrinterColumn("Dataset-Version", ".status.shortDatasetVersion"),
            PrinterColumn("Dataset-Sha256", ".spec.lineage.datasetVersion", priority=1),
            PrinterColumn("Compiled", ".spec.compiled.verified", "boolean", priority=1),
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )

    spec: ModelVersionSpec
    status: ModelVersionStatus = Field(default_factory=ModelVersionStatus)
