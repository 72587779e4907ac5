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

from modelwerk.api.v1alpha1.champion import ChampionResult
from modelwerk.api.v1alpha1.evaluation import Robustness, is_robustness_gate, noise_level
from modelwerk.api.v1alpha1.training_job import TrainingJobSpec
from modelwerk.runtime.artifacts import FairnessCard, RobustnessCard, Signature, Task
from modelwerk.runtime.trainer import (
    crossval,
    evaluate,
    fairness,
    features,
    robustness,
    search,
    searching,
    signature,
    trials,
)
from modelwerk.runtime.trainer import estimator as estimators
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
    holdout: list[Any] = field(default_factory=list)
    """Index labels of the holdout rows in the training frame."""
    fairness: FairnessCard | None = None
    robustness: RobustnessCard | None = None
    trials: list[trials.Trial] = field(default_factory=list)
    champion: ChampionResult | None = None
    """The champion scored on the same holdout rows (spec.champion)."""


@dataclass
class Prepared:
    """A spec's pipeline and the data cut into training and holdout parts."""

    pipeline: Any
    task: Task
    params: dict[str, Any]
    x: pd.DataFrame
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series

    def evaluator(self, spec: TrainingJobSpec) -> crossval.Evaluator:
        """Cross-validation of candidates on the training part (needs spec.search)."""
        assert spec.search is not None
        return crossval.Evaluator(
            self.pipeline,
            self.x_train,
            self.y_train,
            self.task,
            spec.search.scoring or search.default_scoring(self.task),
            spec.search.cv,
            spec.split.seed,
        )


def prepare(spec: TrainingJobSpec, frame: pd.DataFrame, target: str) -> Prepared:
    """Check the spec against the data, build the unfitted pipeline and split (no fitting)."""
    assert spec.estimator is not None  # a trainer container trains elsewhere
    task = spec.task
    model, params = estimators.build(spec.estimator.name, spec.estimator.params, spec.split.seed)
    if spec.search is not None:
        estimators.check_space(spec.estimator.name, params, spec.search.space)
    columns = features.feature_columns(frame, target, spec.features)
    if spec.fairness is not None:
        fairness.check_columns(frame, target, spec.fairness)
    x = frame[columns]

    from sklearn.pipeline import Pipeline

    pipeline = Pipeline(
        [("features", features.preprocessor(frame, columns, spec.features)), (search.STEP, model)]
    )
    x_train, x_test, y_train, y_test = split(x, frame[target], task, spec)
    return Prepared(pipeline, task, params, x, x_train, x_test, y_train, y_test)


def fit(
    spec: TrainingJobSpec,
    frame: pd.DataFrame,
    target: str,
    searched: list[trials.Trial] | None = None,
) -> Trained:
    """Train ``spec`` on ``frame`` (label column ``target``) and evaluate on the holdout.

    With a search, ``searched`` holds the trials of a search that ran in its own pods; without
    it the search runs here. Either way the best candidate is fitted on the whole training part.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ready = prepare(spec, frame, target)
        task, x, x_train, x_test = ready.task, ready.x, ready.x_train, ready.x_test
        y_train, y_test = ready.y_train, ready.y_test
        started = time.perf_counter()
        tried: list[trials.Trial] = []
        best: dict[str, Any] | None = None
        searched_summary = None
        try:
            model = ready.pipeline
            if spec.search is not None:
                if searched is None:
                    tried = searching.run_serial(ready.evaluator(spec), spec.search)
                else:
                    tried = trials.ranked(searched)
                winner = searching.best(tried)
                best = dict(winner.params)
                searched_summary = searching.summary(tried, spec.search, winner)
                from sklearn.base import clone

                model = clone(model).set_params(
                    **{f"{search.STEP}__{k}": v for k, v in best.items()}
                )
            fitted = model.fit(x_train, y_train)
        except (ValueError, TypeError, ArithmeticError, MemoryError) as error:
            raise TrainingFailure("TrainingError", _explain(error, spec)) from error
        fit_seconds = time.perf_counter() - started
        scores, details, fair, robust = assess(spec, task, fitted, frame, x_train, x_test, y_test)
    return Trained(
        model=fitted,
        task=task,
        metrics=scores,
        params=ready.params,
        best_params=best,
        signature=signature.build(x, fitted, task),
        train_rows=len(x_train),
        test_rows=len(x_test),
        fit_seconds=fit_seconds,
        details=details,
        search=searched_summary,
        warnings=_distinct(caught),
        holdout=list(x_test.index),
        fairness=fair,
        robustness=robust,
        trials=tried,
    )


Assessment = tuple[dict[str, float], dict[str, Any], FairnessCard | None, RobustnessCard | None]


def assess(
    spec: TrainingJobSpec,
    task: Task,
    fitted: Any,
    frame: pd.DataFrame,
    x_train: pd.DataFrame,
    x_test: pd.DataFrame,
    y_test: pd.Series,
) -> Assessment:
    """A fitted model on the holdout: metrics (+ details), fairness and robustness as the spec
    asks. The same for a model trained here and one a trainer container delivered."""
    if task == "classification":
        scores, details = evaluate.classification(fitted, x_test, y_test)
    else:
        scores, details = evaluate.regression(fitted, x_test, y_test), {}
    fair = None
    if spec.fairness is not None:
        fair = fairness.assess(
            spec.fairness,
            task,
            y_test,
            fitted.predict(x_test),
            frame.loc[x_test.index, spec.fairness.sensitive_features],
            details.get("labels"),
        )
    robust = None
    gated = [g.metric for g in spec.gates if is_robustness_gate(g.metric)]
    if spec.robustness is not None or gated:
        robust = robustness.assess(
            spec.robustness or Robustness(),
            task,
            fitted,
            x_train,
            x_test,
            y_test,
            spec.features,
            tuple(level for g in gated if (level := noise_level(g)) is not None),
        )
    return scores, details, fair, robust


def split(
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
