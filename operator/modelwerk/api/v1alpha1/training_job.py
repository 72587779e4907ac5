"""TrainingJob: fit a feature pipeline and estimator on a Dataset, evaluate, gate, register."""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, JsonValue, model_validator

from modelwerk.api.base import (
    ApiModel,
    CrdMeta,
    LocalObjectReference,
    PrinterColumn,
    Resource,
    name_rules,
    with_cel,
)
from modelwerk.api.v1alpha1.common import ResourceRequirements, StatusBase
from modelwerk.api.v1alpha1.estimators import (
    CLASSIFICATION_METRICS,
    ESTIMATORS,
    METRICS,
    REGRESSION_METRICS,
    EstimatorName,
    task_of,
)

TrainingPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Rejected"]
Metric = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "rmse", "mae", "r2"]
Params = dict[str, Any]

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_PRESERVE: dict[str, JsonValue] = {"x-kubernetes-preserve-unknown-fields": True}


def _metric_rules(task: Literal["classification", "regression"]) -> list[dict[str, str]]:
    """CEL twins of ``TrainingJobSpec._metrics_fit_task`` for one task: one rule for the gates,
    one for the search's scoring, so that a refusal names the field at fault."""
    estimators = [name for name, (_, t) in ESTIMATORS.items() if t == task]
    allowed = list(CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)
    message = f"a {task} estimator can only be scored on {', '.join(allowed)}"
    applies = f"!(self.estimator.name in {estimators})"
    return [
        {
            "rule": f"{applies} || !has(self.gates) || self.gates.all(g, g.metric in {allowed})",
            "message": message,
            "fieldPath": ".gates",
        },
        {
            "rule": f"{applies} || !has(self.search) || !has(self.search.scoring) || "
            f"self.search.scoring in {allowed}",
            "message": message,
            "fieldPath": ".search.scoring",
        },
    ]


class ModelTarget(ApiModel):
    """The registered model that successful runs add versions to."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=53)
    """Registered model name; versions are ModelVersions named <name>-v<N> (at most 53
    characters, so that a version name fits in 63)."""


class Estimator(ApiModel):
    """The scikit-learn estimator and its constructor parameters."""

    name: EstimatorName
    """An allowlisted scikit-learn estimator class, for example RandomForestClassifier."""
    params: Params = Field(default_factory=dict, json_schema_extra=_PRESERVE)
    """Constructor parameters, for example n_estimators: 200; checked by the trainer against
    the estimator's signature."""


class Imputation(ApiModel):
    """Fill missing values."""

    strategy: Literal["mean", "median", "most_frequent", "constant"] = "median"
    """How numeric gaps are filled; categorical gaps always use most_frequent. Defaults to median."""
    fill_value: float | None = None
    """Value used by the constant strategy."""


class Features(ApiModel):
    """The feature pipeline, compiled into an sklearn Pipeline saved inside the artifact."""

    drop: list[str] = Field(default_factory=list, max_length=1000)
    """Columns not used as features."""
    one_hot: list[str] = Field(default_factory=list, max_length=1000)
    """Categorical columns to one-hot encode (unknown values at serving time are ignored)."""
    scaling: Literal["none", "standard", "minmax", "robust"] = "none"
    """Scaling applied to numeric columns. Defaults to none."""
    imputation: Imputation | None = None
    """Missing-value handling; without it, missing values fail training."""


class Split(ApiModel):
    """How the holdout set is cut."""

    test_size: float = Field(default=0.2, gt=0, lt=1)
    """Fraction of rows held out for evaluation. Defaults to 0.2."""
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    """Random seed for the split, the search and the estimator. Defaults to 42."""
    stratify: bool = True
    """Keep class proportions in both parts (classification only). Defaults to true."""


class Search(ApiModel):
    """Hyperparameter search with cross-validation on the training part."""

    strategy: Literal["grid", "random", "halving"]
    """grid (every combination), random (maxTrials samples) or halving (successive halving)."""
    space: dict[str, list[Any]] = Field(min_length=1, max_length=32)
    """Candidate values per estimator parameter, for example max_depth: [3, 5, null]."""
    cv: int = Field(default=5, ge=2, le=20)
    """Number of cross-validation folds. Defaults to 5."""
    scoring: Metric | None = None
    """Metric to optimise; defaults to accuracy (classification) or rmse (regression)."""
    max_trials: int = Field(default=20, ge=1, le=1000)
    """Most candidates tried by random search. Defaults to 20."""


class Gate(ApiModel):
    """A holdout metric the model must reach before it is registered."""

    metric: Metric
    """accuracy, precision, recall, f1, roc_auc (classification) or rmse, mae, r2 (regression)."""
    operator: Literal[">=", ">", "<=", "<"] = ">="
    """Comparison of the metric against the threshold. Defaults to >=."""
    threshold: float
    """The value to compare with."""

    def passes(self, value: float) -> bool:
        """Whether ``value`` satisfies the gate.

        >>> Gate(metric="accuracy", operator=">=", threshold=0.9).passes(0.93)
        True
        """
        return _COMPARISONS[self.operator](value, self.threshold)


class TrainingJobSpec(ApiModel):
    """Desired state of a TrainingJob."""

    dataset_ref: LocalObjectReference
    """The Dataset to train on (same namespace); training waits until it is Ready."""
    model: ModelTarget
    """The registered model a passing run adds a version to."""
    estimator: Estimator
    """The scikit-learn estimator."""
    features: Features = Field(default_factory=Features)
    """Feature pipeline steps."""
    split: Split = Field(default_factory=Split)
    """Train/test split."""
    search: Search | None = None
    """Optional hyperparameter search."""
    gates: list[Gate] = Field(default_factory=list, max_length=16)
    """Every gate must pass for the model to be registered; otherwise the run is Rejected."""
    resources: ResourceRequirements | None = None
    """Resources of the training pod."""
    active_deadline_seconds: int = Field(default=3600, ge=10, le=7 * 86400)
    """How long the training Job may run. Defaults to 3600."""
    backoff_limit: int = Field(default=0, ge=0, le=10)
    """Retries of a failed training pod. Defaults to 0: training is deterministic, so a
    failure usually repeats."""
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0, le=2**31 - 1)
    """Delete the finished Job (not the TrainingJob or the model) after this many seconds."""

    model_config = with_cel(*_metric_rules("classification"), *_metric_rules("regression"))

    @model_validator(mode="after")
    def _metrics_fit_task(self) -> TrainingJobSpec:
        task = task_of(self.estimator.name)
        allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
        named = [g.metric for g in self.gates]
        if self.search and self.search.scoring:
            named.append(self.search.scoring)
        wrong = sorted({m for m in named if m not in allowed})
        if wrong:
            raise ValueError(
                f"{', '.join(wrong)} cannot score a {task} model; use one of {', '.join(allowed)}"
            )
        return self


assert set(METRICS) == set(get_args(Metric))  # the enum and the metric lists stay in step


class GateResult(ApiModel):
    """The outcome of one gate."""

    metric: str
    """The metric gated on."""
    operator: str
    """The comparison."""
    threshold: float
    """The required value."""
    value: float | None = None
    """The value reached on the holdout set."""
    passed: bool
    """Whether the gate passed."""


class TrainingJobStatus(StatusBase):
    """Observed state of a TrainingJob."""

    phase: TrainingPhase | None = None
    """Pending, Running, Succeeded, Failed or Rejected."""
    job_name: str | None = None
    """The batch/v1 Job of the current run."""
    dataset_version: str | None = None
    """The Dataset version this run trains on."""
    metrics: dict[str, float] | None = None
    """Holdout metrics of the run."""
    primary_metric: str | None = None
    """The headline metric as name=value, for printer columns."""
    best_params: Params | None = Field(default=None, json_schema_extra=_PRESERVE)
    """Parameters chosen by the search."""
    gate_results: list[GateResult] | None = Field(default=None, max_length=16)
    """One entry per gate."""
    model_version: str | None = None
    """The ModelVersion this run registered."""
    artifact_uri: str | None = None
    """Where the trained model was written."""
    start_time: datetime | None = None
    """When the training Job started."""
    completion_time: datetime | None = None
    """When the run finished."""


class TrainingJob(Resource):
    """One training run definition: re-applying an unchanged spec does not retrain."""

    crd: ClassVar[CrdMeta] = CrdMeta(
        kind="TrainingJob",
        plural="trainingjobs",
        singular="trainingjob",
        short_names=("tj",),
        extra_validations=name_rules(),
        printer_columns=(
            PrinterColumn("Dataset", ".spec.datasetRef.name"),
            PrinterColumn("Estimator", ".spec.estimator.name", priority=1),
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Metric", ".status.primaryMetric"),
            PrinterColumn("Model-Version", ".status.modelVersion"),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )

    spec: TrainingJobSpec
    status: TrainingJobStatus = Field(default_factory=TrainingJobStatus)
