"""Group fairness on the holdout with fairlearn: per-group metrics and disparity figures.

Each sensitive feature is assessed on its own (its values are the groups; missing values form
the group ``<missing>``). Per group, fairlearn's ``MetricFrame`` computes the selection rate,
true and false positive rates and accuracy (classification) or MAE and RMSE (regression). The
disparity figures follow fairlearn's ``between_groups`` definitions over the groups that have
at least ``minGroupSize`` holdout rows:

* demographic parity — selection rates; equal opportunity — true positive rates;
* equalized odds — the worse of the true and false positive rate disparities (fairlearn's
  ``agg="worst_case"``);
* a *difference* is max - min over the groups, a *ratio* min / max.

Smaller groups are still reported (``gated: false``) but say too little to gate a model on: a
group of five rows has a selection rate of 0.2 or 0.4 by chance alone. A gate reads the worst
value over the features.

Q: Why not ``MetricFrame(n_boot=…)`` for the intervals?
A: Two reasons. fairlearn's bootstrap gives an interval per statistic of one MetricFrame
   (``difference_ci`` of the TPR, of the FPR), but equalized odds is the *larger* of two
   differences, and the quantiles of a maximum are not the maximum of the quantiles. And it
   builds one MetricFrame per resample: 200 resamples of the sample's 1,000 holdout rows took
   about two minutes on the loaded 2-core machine. Here every resample is a row of weights,
   all per-group values of all resamples come from one matrix product, with the same
   definitions as fairlearn's metrics (a unit test holds them equal), and every figure is
   derived from them as from the point estimate. The resamples are seeded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from modelwerk.api.v1alpha1.evaluation import Fairness, rounded
from modelwerk.runtime.artifacts import FairnessCard, Task
from modelwerk.runtime.trainer.errors import TrainingFailure

MISSING_GROUP = "<missing>"
MAX_GROUPS = 50
"""A sensitive feature with more distinct values is not a group structure: bin it first."""
STATUS_GROUPS = 64


def check_columns(frame: pd.DataFrame, target: str, spec: Fairness) -> None:
    """Refuse sensitive features that are absent, the label itself, or not groups."""
    missing = [c for c in spec.sensitive_features if c not in frame.columns]
    if missing:
        raise TrainingFailure(
            "InvalidSpec",
            f"fairness.sensitiveFeatures names unknown column(s): {', '.join(missing)}",
        )
    if target in spec.sensitive_features:
        raise TrainingFailure(
            "InvalidSpec", f"fairness.sensitiveFeatures must not list the target {target!r}"
        )
    for column in spec.sensitive_features:
        distinct = frame[column].nunique(dropna=False)
        if distinct > MAX_GROUPS:
            raise TrainingFailure(
                "InvalidSpec",
                f"sensitive feature {column!r} has {distinct} distinct values (at most "
                f"{MAX_GROUPS}): bin it into groups in the data first",
            )


def positive_label(spec: Fairness, labels: list[Any]) -> Any | None:
    """The favourable label: the spec's (matched as a string), else a binary model's larger."""
    if spec.positive_label is not None:
        for label in labels:
            if str(label) == spec.positive_label:
                return label
        raise TrainingFailure(
            "InvalidSpec",
            f"fairness.positiveLabel {spec.positive_label!r} is not one of the classes "
            f"{', '.join(str(v) for v in labels)}",
        )
    return labels[-1] if len(labels) == 2 else None


def assess(
    spec: Fairness,
    task: Task,
    y_true: pd.Series,
    y_pred: np.ndarray,
    sensitive: pd.DataFrame,
    labels: list[Any] | None = None,
) -> FairnessCard:
    """Every figure, per feature and the worst over them, with optional bootstrap intervals."""
    positive = positive_label(spec, list(labels or [])) if task == "classification" else None
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if positive is not None:
        y_true, y_pred = (y_true == positive).astype(int), (y_pred == positive).astype(int)
    notes: list[str] = []
    if task == "classification" and positive is None:
        notes.append(
            "parity and odds measures need fairness.positiveLabel for a multiclass model; "
            "only accuracyDifference is reported"
        )
    by_feature: dict[str, dict[str, float]] = {}
    intervals_by_feature: dict[str, dict[str, list[float]]] = {}
    groups: list[dict[str, Any]] = []
    for feature in spec.sensitive_features:
        column = sensitive[feature]
        values = np.where(column.isna(), MISSING_GROUP, column.astype(str)).astype(object)
        per_group = _by_group(task, positive is not None, y_true, y_pred, values)
        counts = pd.Series(values).value_counts()
        for group, row in per_group.iterrows():
            count = int(counts.get(group, 0))
            groups.append(
                {
                    "feature": feature,
                    "group": str(group),
                    "count": count,
                    "gated": count >= spec.min_group_size,
                    "metrics": {k: float(v) for k, v in row.items() if np.isfinite(v)},
                }
            )
        kept = counts[counts >= spec.min_group_size].index
        if len(kept) < 2:
            notes.append(
                f"{feature}: fewer than two groups with at least {spec.min_group_size} holdout "
                "rows; no disparity figures"
            )
            continue
        rows = np.isin(values, kept)
        figures = _figures(task, positive is not None, y_true[rows], y_pred[rows], values[rows])
        by_feature[feature] = figures
        if spec.bootstrap is not None:
            intervals_by_feature[feature] = _intervals(
                spec, task, positive is not None, y_true[rows], y_pred[rows], values[rows]
            )
    worst = _worst(by_feature)
    intervals = None
    if spec.bootstrap is not None and by_feature:
        intervals = {
            name: intervals_by_feature[_worst_feature(by_feature, name)][name]
            for name in worst
            if name in intervals_by_feature[_worst_feature(by_feature, name)]
        }
    return FairnessCard(
        sensitive_features=list(spec.sensitive_features),
        positive_label=None if positive is None else str(positive),
        min_group_size=spec.min_group_size,
        figures=worst,
        intervals=intervals,
        confidence=spec.bootstrap.confidence if spec.bootstrap else None,
        by_feature=by_feature,
        groups=groups,
        notes=notes,
    )


def summary(card: FairnessCard) -> dict[str, Any]:
    """The status form (FairnessSummary, camelCase), groups capped."""
    out = card.model_dump(by_alias=True, exclude={"by_feature", "min_group_size"})
    out["groups"] = out["groups"][:STATUS_GROUPS]
    out["notes"] = out["notes"][:8] or None
    return rounded({k: v for k, v in out.items() if v is not None})


def _by_group(
    task: Task, binary: bool, y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray
) -> pd.DataFrame:
    from fairlearn.metrics import (
        MetricFrame,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, mean_absolute_error, root_mean_squared_error

    metrics: dict[str, Any]
    if task == "regression":
        metrics = {"mae": mean_absolute_error, "rmse": root_mean_squared_error}
    elif binary:
        metrics = {
            "selectionRate": selection_rate,
            "truePositiveRate": true_positive_rate,
            "falsePositiveRate": false_positive_rate,
            "accuracy": accuracy_score,
        }
    else:
        metrics = {"accuracy": accuracy_score}
    frame = MetricFrame(
        metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=groups
    ).by_group
    return frame.astype(float)


def _figures(
    task: Task, binary: bool, y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray
) -> dict[str, float]:
    """The disparity figures from fairlearn's per-group values."""
    table = _by_group(task, binary, y_true, y_pred, groups)
    return _disparities(task, binary, {str(k): table[k].to_numpy() for k in table.columns})


def _disparities(task: Task, binary: bool, table: dict[str, np.ndarray]) -> dict[str, float]:
    """Figures from per-group values (one array per metric, one entry per group)."""

    def diff(name: str) -> float:
        values = table[name]
        return float(np.max(values) - np.min(values))

    def ratio(name: str) -> float:
        values = table[name]
        high = float(np.max(values))
        return float(np.min(values)) / high if high > 0 else 1.0

    with np.errstate(invalid="ignore"):
        if task == "regression":
            out = {
                "maeDifference": diff("mae"),
                "maeRatio": ratio("mae"),
                "rmseDifference": diff("rmse"),
                "rmseRatio": ratio("rmse"),
            }
        else:
            out = {"accuracyDifference": diff("accuracy")}
            if binary:
                out |= {
                    "demographicParityDifference": diff("selectionRate"),
                    "demographicParityRatio": ratio("selectionRate"),
                    "equalOpportunityDifference": diff("truePositiveRate"),
                    "equalOpportunityRatio": ratio("truePositiveRate"),
                    "equalizedOddsDifference": max(
                        diff("truePositiveRate"), diff("falsePositiveRate")
                    ),
                    "equalizedOddsRatio": min(
                        ratio("truePositiveRate"), ratio("falsePositiveRate")
                    ),
                }
    return {k: v for k, v in out.items() if np.isfinite(v)}


def _resampled_tables(
    task: Task,
    binary: bool,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    weights: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-group values of many resamples at once: ``weights[b, i]`` is how often row ``i``
    is drawn in resample ``b``; the result has one row per resample, one column per group.
    The same definitions as the fairlearn metrics in :func:`_by_group`, as weighted counts."""
    onehot = np.eye(n_groups)[codes]  # rows times groups

    def per_group(values: np.ndarray) -> np.ndarray:
        return np.asarray(weights @ (onehot * values[:, None]))

    with np.errstate(divide="ignore", invalid="ignore"):
        count = per_group(np.ones(len(codes)))
        if task == "regression":
            error = y_pred.astype(float) - y_true.astype(float)
            return {
                "mae": per_group(np.abs(error)) / count,
                "rmse": np.sqrt(per_group(error**2) / count),
            }
        out = {"accuracy": per_group((y_true == y_pred).astype(float)) / count}
        if binary:
            positive, negative = (y_true == 1).astype(float), (y_true == 0).astype(float)
            predicted = (y_pred == 1).astype(float)
            out |= {
                "selectionRate": per_group(predicted) / count,
                "truePositiveRate": per_group(predicted * positive) / per_group(positive),
                "falsePositiveRate": per_group(predicted * negative) / per_group(negative),
            }
    return out


def _intervals(
    spec: Fairness,
    task: Task,
    binary: bool,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: np.ndarray,
) -> dict[str, list[float]]:
    boot = spec.bootstrap
    assert boot is not None
    rng = np.random.default_rng(boot.seed)
    names, codes = np.unique(groups, return_inverse=True)
    n = len(y_true)
    weights = np.zeros((boot.samples, n))
    for b in range(boot.samples):
        np.add.at(weights[b], rng.integers(0, n, n), 1.0)
    tables = _resampled_tables(task, binary, y_true, y_pred, codes, len(names), weights)
    samples: dict[str, list[float]] = {}
    for b in range(boot.samples):
        table = {k: v[b][np.isfinite(v[b])] for k, v in tables.items()}
        if any(len(v) < 2 for v in table.values()):
            continue  # a group missing from this resample: no disparity to measure
        for name, value in _disparities(task, binary, table).items():
            samples.setdefault(name, []).append(value)
    tail = (1 - boot.confidence) / 2
    return {
        name: [float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))]
        for name, values in samples.items()
    }


def _worst(by_feature: dict[str, dict[str, float]]) -> dict[str, float]:
    names = {name for figures in by_feature.values() for name in figures}
    return {name: by_feature[_worst_feature(by_feature, name)][name] for name in sorted(names)}


def _worst_feature(by_feature: dict[str, dict[str, float]], name: str) -> str:
    """The feature with the least fair value of figure ``name``."""
    having = [f for f in by_feature if name in by_feature[f]]
    if name.endswith("Ratio"):
        return min(having, key=lambda f: by_feature[f][name])
    return max(having, key=lambda f: by_feature[f][name])
