"""Fitting one TrainingJob spec on one frame: split, (search,) fit, evaluate. No I/O.

Q: Why record warnings instead of letting them through?
A: A pod's stderr is rarely read, and scikit-learn's ConvergenceWarning or a split warning
   says something about the model. They are captured while fitting and returned (deduplicated,
   at most a few) so they reach the model card readers and the local table; the process itself
   stays quiet.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from modelwerk.api.v1alpha1.estimators import task_of
from modelwerk.api.v1alpha1.training_job import TrainingJobSpec
from modelwerk.runtime.artifacts import Signature, Task
from modelwerk.runtime.trainer import estimator as estimators
from modelwerk.runtime.trainer import evaluate, features, search, signature
from modelwerk.runtime.trainer.errors import TrainingFailure

MAX_WARNINGS = 5


@dataclass
class Trained:
    """A fitted pipeline and everything learned about it."""

    model: Any
    task: Task
    metrics: dict[str, float]
    params: dict[str, Any]
    best_params: dict[str, Any] | None
    signature: Signature
    train_rows: int
    test_rows: int
    fit_seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


def fit(spec: TrainingJobSpec, frame: pd.DataFrame, target: str) -> Trained:
    """Train ``spec`` on ``frame`` (label column ``target``) and evaluate on the holdout."""
    task = task_of(spec.estimator.name)
    seed = spec.split.seed
    model, params = estimators.build(spec.estimator.name, spec.estimator.params, seed)
    if spec.search is not None:
        estimators.check_space(spec.estimator.name, params, spec.search.space)
    columns = features.feature_columns(frame, target, spec.features)
    x = frame[columns]
    y = frame[target]

    from sklearn.pipeline import Pipeline

    pipeline = Pipeline(
        [("features", features.preprocessor(frame, columns, spec.features)), (search.STEP, model)]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x_train, x_test, y_train, y_test = _split(x, y, task, spec)
        n_classes = int(y_train.nunique()) if task == "classification" else 0
        started = time.perf_counter()
        try:
            if spec.search is None:
                fitted = pipeline.fit(x_train, y_train)
                best: dict[str, Any] | None = None
                searched = None
            else:
                runner = search.make_search(pipeline, spec.search, task, n_classes, seed)
                runner.fit(x_train, y_train)
                fitted = runner.best_estimator_
                best = {k: signature.plain(v) for k, v in search.best_params(runner).items()}
                searched = search.summary(runner, spec.search, task)
        except (ValueError, TypeError, ArithmeticError, MemoryError) as error:
            raise TrainingFailure("TrainingError", _explain(error, spec)) from error
        fit_seconds = time.perf_counter() - started
        if task == "classification":
            scores, details = evaluate.classification(fitted, x_test, y_test)
        else:
            scores, details = evaluate.regression(fitted, x_test, y_test), {}
    return Trained(
        model=fitted,
        task=task,
        metrics=scores,
        params=params,
        best_params=best,
        signature=signature.build(x, fitted, task),
        train_rows=len(x_train),
        test_rows=len(x_test),
        fit_seconds=fit_seconds,
        details=details,
        search=searched,
        warnings=_distinct(caught),
    )


def _split(
    x: pd.DataFrame, y: pd.Series, task: Task, spec: TrainingJobSpec
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    from sklearn.model_selection import train_test_split

    stratify = y if task == "classification" and spec.split.stratify else None
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=spec.split.test_size, random_state=spec.split.seed, stratify=stratify
        )
    except ValueError as error:
        hint = "; set split.stratify: false or add rows" if stratify is not None else ""
        raise TrainingFailure("TrainingError", f"cannot split the data: {error}{hint}") from error
    return x_train, x_test, y_train, y_test


def _explain(error: BaseException, spec: TrainingJobSpec) -> str:
    text = f"{type(error).__name__}: {error}"
    if "NaN" in text and spec.features.imputation is None:
        text += " (the data has missing values: set features.imputation)"
    return text


def _distinct(caught: list[warnings.WarningMessage]) -> list[str]:
    seen: list[str] = []
    for item in caught:
        text = f"{item.category.__name__}: {item.message}"
        if text not in seen:
            seen.append(text)
    return seen[:MAX_WARNINGS]
