"""Hyperparameter search on the training part: grid, random or successive halving, with CV.

``search.space`` names *estimator* params (``max_depth``), as a user thinks of them; the
estimator sits in the pipeline step ``model``, so names are prefixed here (``model__max_depth``)
and the prefix is stripped from the best params again. Candidate failures raise instead of
scoring NaN (``error_score="raise"``): a broken candidate is a spec error worth seeing.
"""

from __future__ import annotations

import math
from typing import Any

from modelwerk.api.v1alpha1.training_job import Search
from modelwerk.runtime.artifacts import Task

STEP = "model"
_PREFIX = f"{STEP}__"

# Our metric names → scikit-learn scorer names. Errors are negated by scikit-learn so that
# "greater is better" holds for every scorer.
_SCORERS: dict[str, str] = {
    "accuracy": "accuracy",
    "precision": "precision_macro",
    "recall": "recall_macro",
    "f1": "f1_macro",
    "roc_auc": "roc_auc",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
}


def default_scoring(task: Task) -> str:
    return "accuracy" if task == "classification" else "rmse"


def scorer(metric: str, n_classes: int) -> str:
    """The scikit-learn scorer for one of our metric names."""
    if metric == "roc_auc" and n_classes > 2:
        return "roc_auc_ovr"
    return _SCORERS[metric]


def make_search(pipeline: Any, search: Search, task: Task, n_classes: int, seed: int) -> Any:
    """An unfitted search estimator wrapping ``pipeline``."""
    grid = {_PREFIX + key: list(values) for key, values in search.space.items()}
    scoring = scorer(search.scoring or default_scoring(task), n_classes)
    common: dict[str, Any] = {"cv": search.cv, "scoring": scoring, "error_score": "raise"}
    if search.strategy == "grid":
        from sklearn.model_selection import GridSearchCV

        return GridSearchCV(pipeline, grid, **common)
    if search.strategy == "random":
        from sklearn.model_selection import RandomizedSearchCV

        # Cap at the grid size: scikit-learn warns (and runs fewer) when n_iter exceeds it.
        size = math.prod(len(v) for v in grid.values())
        return RandomizedSearchCV(
            pipeline, grid, n_iter=min(search.max_trials, size), random_state=seed, **common
        )
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401  (registers it)
    from sklearn.model_selection import HalvingGridSearchCV

    return HalvingGridSearchCV(pipeline, grid, random_state=seed, **common)


def best_params(fitted_search: Any) -> dict[str, Any]:
    """The winning estimator params, without the pipeline prefix."""
    params: dict[str, Any] = fitted_search.best_params_
    return {key.removeprefix(_PREFIX): value for key, value in params.items()}


def summary(fitted_search: Any, search: Search, task: Task) -> dict[str, Any]:
    """What the search did, for the model card (best CV score in our metric's sign)."""
    metric = search.scoring or default_scoring(task)
    best = float(fitted_search.best_score_)
    if metric in ("rmse", "mae"):
        best = -best  # undo scikit-learn's negation so the number reads as the metric
    return {
        "strategy": search.strategy,
        "scoring": metric,
        "cv": search.cv,
        "candidates": len(fitted_search.cv_results_["params"]),
        "bestScore": best,
    }
