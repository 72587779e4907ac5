"""Responsible-evaluation settings and results: fairness, robustness, search trials, tracking.

The settings are optional parts of a TrainingJob's spec; the results are optional parts of its
status and of the ModelVersion it registers (immutable there, like the holdout metrics).

Gate names (``spec.gates[].metric``) extend the holdout metrics with two families:

=====================================================  =========================================
``fairness.<measure>``                                  the worst value over the sensitive features
``robustness.noise.<flipRate|metricDrop>@<level>``      Gaussian noise of ``level`` times each numeric
                                                        feature's standard deviation, all at once
``robustness.missing.<flipRate|metricDrop>``            values blanked where the pipeline imputes
``robustness.swap.<flipRate|metricDrop>``               one-hot categories swapped for another
=====================================================  =========================================

Fairness measures are fairlearn's: a *difference* is the largest minus the smallest group value
(0 is parity), a *ratio* the smallest over the largest (1 is parity).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, TypeVar, cast

from pydantic import Field, field_validator

from modelwerk.api.base import ApiModel, LocalObjectReference

CLASSIFICATION_FAIRNESS = (
    "demographicParityDifference",
    "demographicParityRatio",
    "equalizedOddsDifference",
    "equalizedOddsRatio",
    "equalOpportunityDifference",
    "equalOpportunityRatio",
    "accuracyDifference",
)
REGRESSION_FAIRNESS = ("maeDifference", "maeRatio", "rmseDifference", "rmseRatio")
LOWER_IS_BETTER_FAIRNESS = frozenset(
    m for m in CLASSIFICATION_FAIRNESS + REGRESSION_FAIRNESS if m.endswith("Difference")
)
PERTURBATIONS = ("noise", "missing", "swap")
ROBUSTNESS_MEASURES = ("flipRate", "metricDrop")
ROBUSTNESS_GATE = r"^robustness\.(noise\.(flipRate|metricDrop)@[0-9]+(\.[0-9]+)?|(missing|swap)\.(flipRate|metricDrop))$"
_ROBUSTNESS = re.compile(ROBUSTNESS_GATE)
DEFAULT_NOISE_LEVELS = (0.05, 0.1, 0.25)
_T = TypeVar("_T")


def fairness_gates(task: Literal["classification", "regression"]) -> tuple[str, ...]:
    """Gate names of the fairness figures a task has."""
    measures = CLASSIFICATION_FAIRNESS if task == "classification" else REGRESSION_FAIRNESS
    return tuple(f"fairness.{m}" for m in measures)


def robustness_name(perturbation: str, measure: str, level: float | None = None) -> str:
    """The canonical gate name of one robustness figure.

    >>> robustness_name("noise", "flipRate", 0.10)
    'robustness.noise.flipRate@0.1'
    >>> robustness_name("swap", "metricDrop")
    'robustness.swap.metricDrop'
    """
    suffix = f"@{level:g}" if perturbation == "noise" and level is not None else ""
    return f"robustness.{perturbation}.{measure}{suffix}"


def canonical_gate_metric(name: str) -> str:
    """``name`` as results are keyed: noise levels are written the shortest way.

    >>> canonical_gate_metric("robustness.noise.flipRate@0.250")
    'robustness.noise.flipRate@0.25'
    >>> canonical_gate_metric("accuracy")
    'accuracy'
    """
    level = noise_level(name)
    if level is None:
        return name
    return name.split("@", 1)[0] + f"@{level:g}"


def noise_level(name: str) -> float | None:
    """The noise level a robustness gate names, or None for any other gate."""
    if not _ROBUSTNESS.match(name) or "@" not in name:
        return None
    return float(name.split("@", 1)[1])


def is_robustness_gate(name: str) -> bool:
    return bool(_ROBUSTNESS.match(name))


def rounded(value: _T) -> _T:
    """Floats (also inside lists and dicts) to 6 significant digits, for status and results:
    the model card keeps full precision.

    >>> rounded({"a": [0.764841624373397, 2], "b": "x"})
    {'a': [0.764842, 2], 'b': 'x'}
    """
    out: Any = value
    if isinstance(value, float):
        out = float(f"{value:.6g}")
    elif isinstance(value, dict):
        out = {k: rounded(v) for k, v in value.items()}
    elif isinstance(value, list):
        out = [rounded(v) for v in value]
    return cast(_T, out)


def gate_figures(
    metrics: dict[str, float],
    fairness: dict[str, float] | None = None,
    robustness: dict[str, float] | None = None,
) -> dict[str, float]:
    """Everything a gate can name, by gate name.

    >>> gate_figures({"accuracy": 0.9}, {"demographicParityRatio": 0.7}, {"swap.flipRate": 0.01})
    {'accuracy': 0.9, 'fairness.demographicParityRatio': 0.7, 'robustness.swap.flipRate': 0.01}
    """
    out = dict(metrics)
    out.update({f"fairness.{k}": v for k, v in (fairness or {}).items()})
    out.update({f"robustness.{k}": v for k, v in (robustness or {}).items()})
    return out


# --------------------------------------------------------------------------- settings


class Bootstrap(ApiModel):
    """Bootstrap confidence intervals of the fairness figures (resampling the holdout)."""

    samples: int = Field(default=200, ge=10, le=5000)
    """Bootstrap resamples. Defaults to 200."""
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    """Coverage of the interval, for example 0.95 for the 2.5 % and 97.5 % quantiles."""
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    """Seed of the resampling. Defaults to 0."""


class Fairness(ApiModel):
    """Group fairness on the holdout set (fairlearn's MetricFrame and disparity metrics)."""

    sensitive_features: list[str] = Field(min_length=1, max_length=8)
    """Columns that define the groups. They may also be listed in features.drop: a dropped
    column never reaches the model, but still reaches the evaluation. Each column is assessed
    on its own; a gate takes the worst value over them."""
    min_group_size: int = Field(default=30, ge=1, le=1_000_000)
    """Groups with fewer holdout rows are reported but left out of the disparity figures and
    so of the gates. Defaults to 30."""
    positive_label: str | None = Field(default=None, max_length=256)
    """The favourable outcome of a classifier, as a string (for example "1" or "approved");
    defaults to the larger of a binary classifier's two labels. Multiclass models need it for
    the parity measures."""
    bootstrap: Bootstrap | None = None
    """Confidence intervals of the figures; without it only point estimates are reported."""


class Robustness(ApiModel):
    """Perturbation tests on the holdout: how much do predictions move when inputs are worse."""

    noise_levels: list[float] = Field(
        default_factory=lambda: list(DEFAULT_NOISE_LEVELS), min_length=1, max_length=8
    )
    """Gaussian noise added to numeric features, as multiples of each feature's standard
    deviation on the training part. Defaults to [0.05, 0.1, 0.25]."""
    missing_rate: float = Field(default=0.1, ge=0, le=1)
    """Share of values blanked in each feature the pipeline imputes (needs features.imputation).
    Defaults to 0.1."""
    swap_rate: float = Field(default=0.1, ge=0, le=1)
    """Share of rows whose one-hot category is replaced by another category seen in training.
    Defaults to 0.1."""
    tolerance: float = Field(default=0.05, gt=0, le=10)
    """Regression: a prediction counts as flipped when it moves by more than this multiple of
    the holdout target's standard deviation. Defaults to 0.05."""
    metric: str | None = Field(default=None, max_length=32)
    """Holdout metric whose drop is reported; defaults to accuracy (classification) or rmse
    (regression). For errors, the drop is the increase."""
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    """Seed of the perturbations. Defaults to 0."""

    @field_validator("noise_levels")
    @classmethod
    def _positive_levels(cls, levels: list[float]) -> list[float]:
        if any(not (0 < level <= 10) or not math.isfinite(level) for level in levels):
            raise ValueError("noise levels must lie in (0, 10]")
        return levels


class MlflowTracking(ApiModel):
    """An MLflow tracking server that receives every run of this TrainingJob."""

    tracking_uri: str = Field(pattern=r"^https?://[^\s@]+$", max_length=2048)
    """http(s) address of the tracking server, without credentials (put those in the Secret)."""
    experiment: str = Field(default="modelwerk", min_length=1, max_length=256)
    """Experiment name; created when missing. Defaults to modelwerk."""
    credentials_secret: LocalObjectReference | None = None
    """A Secret whose keys become the trainer's environment: MLFLOW_TRACKING_TOKEN, or
    MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD."""


class Tracking(ApiModel):
    """Where runs are tracked besides the cluster."""

    mlflow: MlflowTracking | None = None
    """Log params, metrics, trials, the dataset, lineage and the model card to MLflow."""


# --------------------------------------------------------------------------- results


class GroupFigures(ApiModel):
    """One group of one sensitive feature on the holdout."""

    feature: str
    """The sensitive feature."""
    group: str
    """The group's value, as a string."""
    count: int = Field(ge=0)
    """Holdout rows in the group."""
    gated: bool
    """False when the group is smaller than minGroupSize: reported, not in the figures."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """Per-group values: selectionRate, truePositiveRate, falsePositiveRate, accuracy
    (classification) or mae, rmse (regression)."""


class FairnessSummary(ApiModel):
    """Fairness figures of a run on its holdout."""

    sensitive_features: list[str] = Field(max_length=8)
    """The columns assessed."""
    positive_label: str | None = None
    """The favourable outcome the parity measures count."""
    figures: dict[str, float] = Field(default_factory=dict)
    """Gateable figures by gate name without the fairness. prefix: the worst over the
    features."""
    intervals: dict[str, list[float]] | None = None
    """Bootstrap interval [low, high] of each figure."""
    confidence: float | None = None
    """Coverage of the intervals."""
    groups: list[GroupFigures] | None = Field(default=None, max_length=64)
    """Per-group values (at most 64; the model card has all)."""
    notes: list[str] | None = Field(default=None, max_length=8)
    """Why a figure is missing, for example fewer than two groups of minGroupSize."""


class RobustnessFinding(ApiModel):
    """How one perturbation of one feature changed the predictions."""

    perturbation: str
    """noise, missing or swap."""
    feature: str
    """The feature perturbed alone."""
    level: float | None = None
    """The noise level (noise only)."""
    flip_rate: float
    """Share of holdout predictions that changed."""
    metric_drop: float
    """How much worse the metric got."""


class RobustnessSummary(ApiModel):
    """Robustness figures of a run on its holdout."""

    metric: str
    """The metric whose drop is reported."""
    baseline: float | None = None
    """Its unperturbed holdout value."""
    figures: dict[str, float] = Field(default_factory=dict)
    """Gateable figures by gate name without the robustness. prefix, every feature perturbed
    at once."""
    most_sensitive: list[RobustnessFinding] | None = Field(default=None, max_length=10)
    """The features whose perturbation flipped most predictions (the model card has all)."""


class TrialSummary(ApiModel):
    """One candidate of a hyperparameter search."""

    rank: int = Field(ge=1)
    """1 is the best mean cross-validation score."""
    params: dict[str, Any] = Field(
        default_factory=dict, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """The candidate's parameters."""
    mean_score: float | None = None
    """Mean cross-validation score, in the metric's own sign (an rmse reads as an rmse)."""
    std_score: float | None = None
    """Standard deviation over the folds."""
    fit_seconds: float | None = None
    """Mean fit time of one fold."""


class MlflowRun(ApiModel):
    """The MLflow run a training run was logged as."""

    tracking_uri: str
    """The tracking server."""
    experiment_id: str | None = None
    """The experiment's id."""
    run_id: str
    """The run's id."""


class TrackingRecord(ApiModel):
    """Where a run was tracked outside the cluster."""

    mlflow: MlflowRun | None = None
    """The MLflow run."""


class RuntimeEnvironment(ApiModel):
    """The Python and libraries that produced an artifact: unpickling needs the same ones."""

    python: str | None = Field(default=None, max_length=32)
    """Python version, for example 3.11.2."""
    libraries: dict[str, str] = Field(default_factory=dict)
    """Library versions by name: scikit-learn, numpy, scipy, joblib, pandas, …"""
