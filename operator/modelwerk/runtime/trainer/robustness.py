"""Perturbation tests on the holdout: how far do predictions move when the inputs get worse?

Three perturbations, each applied to every feature at once (the gated figures) and to each
feature alone (the findings, to see which feature the model leans on):

* ``noise`` — Gaussian noise with standard deviation ``level`` times the feature's standard
  deviation on the training part, added to numeric (non-boolean) features, at each level;
* ``missing`` — a share of values blanked, only in features the pipeline imputes (that is every
  feature once ``features.imputation`` is set; without it a gap fails the model, which is not a
  robustness finding but a contract);
* ``swap`` — a share of rows of each one-hot feature get another category seen in training.

Two measures per perturbation: the *flip rate* — the share of holdout predictions that changed
(classification: another label; regression: moved by more than ``tolerance`` times the holdout
target's standard deviation) — and the *metric drop* — how much worse the holdout metric got
(the decrease of a score, the increase of an error). Every random draw comes from a generator
seeded with ``seed`` and the perturbation's position, so a run repeats exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from modelwerk.api.v1alpha1.evaluation import Robustness, robustness_name, rounded
from modelwerk.api.v1alpha1.training_job import Features
from modelwerk.runtime.artifacts import RobustnessCard, Task
from modelwerk.runtime.trainer import evaluate

MAX_FEATURES = 100
"""Features tested one by one; wider data is tested all at once only."""
STATUS_FINDINGS = 5
_LOWER_IS_BETTER = frozenset({"rmse", "mae"})

Perturb = Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]


def default_metric(task: Task) -> str:
    return "accuracy" if task == "classification" else "rmse"


def assess(
    spec: Robustness,
    task: Task,
    model: Any,
    x_train: pd.DataFrame,
    x_test: pd.DataFrame,
    y_test: pd.Series,
    features: Features,
    extra_levels: tuple[float, ...] = (),
) -> RobustnessCard:
    """Every perturbation of ``x_test`` against the unperturbed predictions of ``model``."""
    metric = spec.metric or default_metric(task)
    base_pred = np.asarray(model.predict(x_test))
    baseline: float | None = _score(task, model, x_test, y_test).get(metric)
    scale = float(np.std(np.asarray(y_test, dtype=float))) if task == "regression" else 0.0

    def measure(perturbed: pd.DataFrame) -> tuple[float, float]:
        pred = np.asarray(model.predict(perturbed))
        if task == "classification":
            flips = float(np.mean(pred != base_pred))
        else:
            moved = np.abs(pred.astype(float) - base_pred.astype(float))
            flips = float(np.mean(moved > spec.tolerance * scale))
        value: float | None = _score(task, model, perturbed, y_test).get(metric)
        if value is None or baseline is None:
            return flips, float("nan")
        drop = value - baseline if metric in _LOWER_IS_BETTER else baseline - value
        return flips, float(drop)

    one_hot = [c for c in x_test.columns if c in set(features.one_hot)]
    numeric = [c for c in x_test.columns if c not in set(one_hot) and _noisy(x_test[c])]
    std = {c: float(np.nanstd(x_train[c].astype(float))) for c in numeric}
    categories = {c: sorted(x_train[c].dropna().unique().tolist(), key=str) for c in one_hot}
    plans: list[tuple[str, float | None, list[str], Callable[[str], Perturb]]] = []
    for noise_level in sorted({*spec.noise_levels, *extra_levels}):

        def noise(column: str, level: float = noise_level) -> Perturb:
            return _noise(column, level * std[column])

        plans.append(("noise", noise_level, numeric, noise))
    notes: list[str] = []
    if features.imputation is not None:
        plans.append(
            ("missing", None, list(x_test.columns), lambda c: _blank(c, spec.missing_rate))
        )
    else:
        notes.append("missing: not tested, the pipeline does not impute (features.imputation)")
    if one_hot:
        plans.append(("swap", None, one_hot, lambda c: _swap(c, categories[c], spec.swap_rate)))
    else:
        notes.append("swap: not tested, no one-hot features")
    if not numeric:
        notes.append("noise: not tested, no numeric features")
    figures: dict[str, float] = {}
    findings: list[dict[str, Any]] = []
    for index, (kind, level, columns, make) in enumerate(plans):
        if not columns:
            continue
        rng = np.random.default_rng([spec.seed, index])
        everything = x_test.copy()
        for column in columns:
            everything = make(column)(everything, rng)
        try:
            flips, drop = measure(everything)
        except (ValueError, TypeError) as error:  # the model cannot take such rows at all
            notes.append(f"{kind}: the model failed on perturbed rows: {error}"[:300])
            continue
        figures[robustness_name(kind, "flipRate", level).removeprefix("robustness.")] = flips
        if np.isfinite(drop):
            figures[robustness_name(kind, "metricDrop", level).removeprefix("robustness.")] = drop
        if len(x_test.columns) > MAX_FEATURES:
            continue
        for position, column in enumerate(columns):
            alone = make(column)(x_test.copy(), np.random.default_rng([spec.seed, index, position]))
            flips, drop = measure(alone)
            findings.append(
                {
                    "perturbation": kind,
                    "feature": column,
                    "level": level,
                    "flipRate": flips,
                    "metricDrop": drop if np.isfinite(drop) else None,
                }
            )
    if len(x_test.columns) > MAX_FEATURES:
        notes.append(f"more than {MAX_FEATURES} features: no per-feature findings")
    return RobustnessCard(
        metric=metric,
        baseline=baseline,
        tolerance=spec.tolerance if task == "regression" else None,
        figures=figures,
        findings=findings,
        notes=notes,
    )


def summary(card: RobustnessCard) -> dict[str, Any]:
    """The status form (RobustnessSummary): the features that flipped most predictions."""
    worst = sorted(card.findings, key=lambda f: (-f["flipRate"], f["feature"]))[:STATUS_FINDINGS]
    out: dict[str, Any] = {"metric": card.metric, "figures": card.figures}
    if card.baseline is not None:
        out["baseline"] = card.baseline
    if worst:
        out["mostSensitive"] = [
            {k: v for k, v in finding.items() if v is not None} for finding in worst
        ]
    return rounded(out)


def _score(task: Task, model: Any, x: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    if task == "classification":
        return evaluate.classification(model, x, y)[0]
    return evaluate.regression(model, x, y)


def _noisy(series: pd.Series) -> bool:
    return bool(ptypes.is_numeric_dtype(series.dtype) and not ptypes.is_bool_dtype(series.dtype))


def _noise(column: str, sigma: float) -> Perturb:
    def apply(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        frame[column] = frame[column].astype(float) + rng.normal(0.0, sigma, len(frame))
        return frame

    return apply


def _blank(column: str, rate: float) -> Perturb:
    def apply(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        hit = rng.random(len(frame)) < rate
        numeric = ptypes.is_numeric_dtype(frame[column].dtype)
        frame[column] = frame[column].astype(float if numeric else object).mask(hit)
        return frame

    return apply


def _swap(column: str, seen: list[Any], rate: float) -> Perturb:
    def apply(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        if len(seen) < 2:
            return frame
        values = frame[column].to_numpy(dtype=object, copy=True)
        for i in np.flatnonzero(rng.random(len(frame)) < rate):
            others = [v for v in seen if v != values[i]]
            values[i] = others[int(rng.integers(0, len(others)))]
        frame[column] = values
        return frame

    return apply
