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
from modelwerk.api.v1alpha1.champion import Champion, ChampionResult
from modelwerk.api.v1alpha1.common import ResourceRequirements, StatusBase
from modelwerk.api.v1alpha1.estimators import (
    CLASSIFICATION_METRICS,
    ESTIMATORS,
    METRICS,
    REGRESSION_METRICS,
    EstimatorName,
    task_of,
)
from modelwerk.api.v1alpha1.evaluation import (
    ROBUSTNESS_GATE,
    Fairness,
    FairnessSummary,
    Robustness,
    RobustnessSummary,
    Tracking,
    TrackingRecord,
    TrialSummary,
    canonical_gate_metric,
    fairness_gates,
    is_robustness_gate,
)
from modelwerk.api.v1alpha1.search import (
    Metric,
    Search,
    SearchProgress,
    SearchRange,
    Stage,
    search_plan,
)
from modelwerk.api.v1alpha1.trainer import Trainer

__all__ = ["Search", "SearchRange", "Stage", "search_plan"]  # re-exported: the spec's parts

TrainingPhase = Literal[
    "Pending", "Suspended", "Searching", "Running", "Succeeded", "Failed", "Rejected"
]
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
    gateable = allowed + list(fairness_gates(task))
    message = f"a {task} estimator can only be scored on {', '.join(allowed)}"
    gate_message = (
        f"{message}; gates may also name {', '.join(fairness_gates(task))} or robustness figures"
    )
    applies = (
        f"!((has(self.estimator) && self.estimator.name in {estimators}) || "
        f"(has(self.trainer) && self.trainer.task == '{task}'))"
    )
    robust = ROBUSTNESS_GATE.replace("\\", "\\\\")
    return [
        {
            "rule": f"{applies} || !has(self.gates) || "
            f"self.gates.all(g, g.metric in {gateable} || g.metric.matches('{robust}'))",
            "message": gate_message,
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


class Gate(ApiModel):
    """A holdout figure the model must reach before it is registered."""

    metric: str = Field(min_length=1, max_length=64)
    """A holdout metric — accuracy, precision, recall, f1, roc_auc (classification) or rmse,
    mae, r2 (regression) — or a fairness figure (fairness.demographicParityRatio, …; needs
    spec.fairness) or a robustness figure (robustness.noise.flipRate@0.1,
    robustness.missing.metricDrop, robustness.swap.flipRate, …)."""
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

    def result(self, figures: dict[str, float]) -> GateResult:
        """The gate checked against ``figures`` (see ``evaluation.gate_figures``); a figure
        that was not measured fails the gate.

        >>> Gate(metric="robustness.noise.flipRate@0.10", operator="<=", threshold=0.05).result(
        ...     {"robustness.noise.flipRate@0.1": 0.02}).passed
        True
        """
        value = figures.get(canonical_gate_metric(self.metric))
        return GateResult(
            metric=self.metric,
            operator=self.operator,
            threshold=self.threshold,
            value=value,
            passed=value is not None and self.passes(value),
        )


class DatasetReference(LocalObjectReference):
    """A Dataset, and optionally one of its published versions."""

    version: str | None = Field(default=None, pattern=r"^(sha256:)?[0-9a-f]{12,64}$")
    """Train on this version (sha256:… or its first 12 or more hex digits) instead of the
    current one: any version in the Dataset's status.history, or, by its full hash, an older
    snapshot still in the store."""


class Reproducibility(ApiModel):
    """What a run needs to be repeated exactly: same spec, same data, same code."""

    dataset: str
    """The Dataset."""
    dataset_version: str | None = None
    """The exact version trained on."""
    seed: int
    """The seed of the split, the search and the estimator."""
    spec_hash: str
    """Fingerprint of the TrainingJob spec (the run label of its Jobs)."""
    image: str | None = None
    """The modelwerk image that trained (or, with spec.trainer, evaluated)."""
    trainer_image: str | None = None
    """The bring-your-own trainer image, when spec.trainer is used."""
    python: str | None = Field(default=None, max_length=32)
    """Python version in the training pod."""
    libraries: dict[str, str] = Field(default_factory=dict)
    """Library versions reported by the training pod (scikit-learn, numpy, scipy, pandas,
    joblib, modelwerk)."""
    artifact_sha256: str | None = None
    """sha256 of the model it produced: the same spec on the same version gives the same."""


class TrainingJobSpec(ApiModel):
    """Desired state of a TrainingJob."""

    dataset_ref: DatasetReference
    """The Dataset to train on (same namespace); training waits until it is Ready, or takes
    the pinned version from its history."""
    model: ModelTarget
    """The registered model a passing run adds a version to."""
    estimator: Estimator | None = None
    """The scikit-learn estimator (or spec.trainer: exactly one of the two)."""
    trainer: Trainer | None = None
    """Bring your own trainer: a container image that trains the model on the training split;
    modelwerk evaluates, gates and registers it (instead of spec.estimator)."""
    features: Features = Field(default_factory=Features)
    """Feature pipeline steps (with spec.estimator)."""
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
    fairness: Fairness | None = None
    """Group fairness on the holdout; fairness.* gates need it."""
    robustness: Robustness | None = None
    """Perturbation tests on the holdout; robustness.* gates turn them on with the defaults."""
    tracking: Tracking | None = None
    """Log every run to an experiment tracker as well (default: the operator's setting)."""
    champion: Champion | None = None
    """Register the model only when it beats this reference on the same holdout rows by the
    margin; otherwise the run is Rejected with both figures. Retraining runs a Deployment
    starts set it to the version the Deployment serves."""
    suspend: bool = False
    """Start no run (phase Suspended): a template that a Deployment's retraining copies, so
    that only the retraining triggers start runs from it (the copies drop it). Setting it back
    to false starts the run; a run already started is not stopped. Defaults to false."""

    model_config = with_cel(
        {
            "rule": "has(self.estimator) != has(self.trainer)",
            "message": "set exactly one of spec.estimator and spec.trainer",
        },
        {
            "rule": "!has(self.trainer) || (!has(self.search) && !has(self.features))",
            "message": "search and features belong to spec.estimator; a trainer does its own",
            "fieldPath": ".trainer",
        },
        *_metric_rules("classification"),
        *_metric_rules("regression"),
        {
            "rule": "has(self.fairness) || !has(self.gates) || "
            "!self.gates.exists(g, g.metric.startsWith('fairness.'))",
            "message": "fairness gates need spec.fairness.sensitiveFeatures",
            "fieldPath": ".gates",
        },
    )

    @property
    def task(self) -> Literal["classification", "regression"]:
        """What the model predicts: from the estimator, or as the trainer declares."""
        if self.estimator is not None:
            return task_of(self.estimator.name)
        assert self.trainer is not None  # _one_of
        return self.trainer.task

    @model_validator(mode="after")
    def _one_of(self) -> TrainingJobSpec:
        if (self.estimator is None) == (self.trainer is None):
            raise ValueError("set exactly one of spec.estimator and spec.trainer")
        if self.trainer is not None and (self.search is not None or self.features != Features()):
            raise ValueError("search and features belong to spec.estimator; a trainer does its own")
        return self

    @model_validator(mode="after")
    def _metrics_fit_task(self) -> TrainingJobSpec:
        task = self.task
        allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
        scored = [self.search.scoring] if self.search and self.search.scoring else []
        wrong = sorted({m for m in scored if m not in allowed})
        if wrong:
            raise ValueError(
                f"{', '.join(wrong)} cannot score a {task} model; use one of {', '.join(allowed)}"
            )
        gateable: tuple[str, ...] = (*allowed, *fairness_gates(task))
        refused = sorted(
            g.metric
            for g in self.gates
            if g.metric not in gateable and not is_robustness_gate(g.metric)
        )
        if refused:
            raise ValueError(
                f"{', '.join(refused)} cannot score a {task} model; use one of "
                f"{', '.join(gateable)} or a robustness figure"
            )
        if self.fairness is None and any(g.metric.startswith("fairness.") for g in self.gates):
            raise ValueError("fairness gates need spec.fairness.sensitiveFeatures")
        if self.robustness and self.robustness.metric and self.robustness.metric not in allowed:
            raise ValueError(
                f"robustness.metric {self.robustness.metric} cannot score a {task} model; "
                f"use one of {', '.join(allowed)}"
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


class TrainerRecord(ApiModel):
    """The outcome of a bring-your-own trainer container."""

    exit_code: int | None = None
    """The container's exit code."""
    reason: str | None = None
    """Why it ended (Completed, Error, OOMKilled, …)."""
    model_format: str | None = None
    """The form of the model it wrote (joblib or onnx)."""
    model_sha256: str | None = None
    """sha256 of the model file as it left the container, before modelwerk evaluated it."""
    log_tail: str | None = Field(default=None, max_length=2048)
    """The end of its output when it failed."""


class TrainingJobStatus(StatusBase):
    """Observed state of a TrainingJob."""

    phase: TrainingPhase | None = None
    """Pending, Searching (parallel search), Running, Succeeded, Failed or Rejected."""
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
    duration_seconds: float | None = None
    """Wall time of the training pod's run."""
    fairness: FairnessSummary | None = None
    """Fairness figures on the holdout (spec.fairness)."""
    robustness: RobustnessSummary | None = None
    """Robustness figures on the holdout (spec.robustness or robustness gates)."""
    trials: list[TrialSummary] | None = Field(default=None, max_length=5)
    """The best candidates of the search, best first (the full table is at trialsUri)."""
    trial_count: int | None = None
    """How many candidates the search tried."""
    trials_uri: str | None = None
    """The run's trial table (parquet) in the artifact store."""
    tracking: TrackingRecord | None = None
    """Where the run was tracked (an MLflow run id)."""
    search: SearchProgress | None = None
    """Progress of a parallel search (spec.search.parallelism > 1)."""
    trainer: TrainerRecord | None = None
    """What the trainer container of spec.trainer did."""
    reproducibility: Reproducibility | None = None
    """The exact dataset version, seed, image and library versions of the finished run."""
    champion: ChampionResult | None = None
    """Champion and challenger on the same holdout (spec.champion)."""
    champion_version: str | None = None
    """The ModelVersion resolved as the champion when the run started."""


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
            PrinterColumn("Trainer", ".spec.trainer.image", priority=1),
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Metric", ".status.primaryMetric"),
            PrinterColumn("Model-Version", ".status.modelVersion"),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )

    spec: TrainingJobSpec
    status: TrainingJobStatus = Field(default_factory=TrainingJobStatus)
