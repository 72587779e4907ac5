"""Holdout evaluation: the metrics gates are checked on, named as in the API's Metric enum.

Classification: accuracy, macro precision/recall/F1 (``zero_division=0``: a class the model
never predicts scores 0 instead of warning) and ROC-AUC when it is defined — the model gives
probabilities (or, for binary tasks, decision scores) and the holdout holds every class.
Regression: rmse, mae, r2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from modelwerk.runtime.trainer.signature import plain


def classification(
    model: Any, x_test: pd.DataFrame, y_test: pd.Series
) -> tuple[dict[str, float], dict[str, Any]]:
    """(metrics, details: labels and confusion matrix)."""
    from sklearn import metrics

    labels = model.classes_
    predicted = model.predict(x_test)
    scores = {
        "accuracy": float(metrics.accuracy_score(y_test, predicted)),
        "precision": float(
            metrics.precision_score(
                y_test, predicted, labels=labels, average="macro", zero_division=0
            )
        ),
        "recall": float(
            metrics.recall_score(y_test, predicted, labels=labels, average="macro", zero_division=0)
        ),
        "f1": float(
            metrics.f1_score(y_test, predicted, labels=labels, average="macro", zero_division=0)
        ),
    }
    auc = _roc_auc(model, x_test, y_test, labels)
    if auc is not None:
        scores["roc_auc"] = auc
    matrix = metrics.confusion_matrix(y_test, predicted, labels=labels)
    details = {
        "labels": [plain(v) for v in labels],
        "confusionMatrix": [[int(c) for c in row] for row in matrix],
    }
    return scores, details


def _roc_auc(model: Any, x_test: pd.DataFrame, y_test: pd.Series, labels: Any) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y_test)) != len(labels):
        return None  # a class absent from the holdout leaves ROC-AUC undefined
    try:
        if hasattr(model, "predict_proba"):
            proba = model.predict_proba(x_test)
            if len(labels) == 2:
                return float(roc_auc_score(y_test, proba[:, 1]))
            return float(roc_auc_score(y_test, proba, multi_class="ovr", labels=labels))
        if len(labels) == 2 and hasattr(model, "decision_function"):
            return float(roc_auc_score(y_test, model.decision_function(x_test)))
    except ValueError:
        return None
    return None


def regression(model: Any, x_test: pd.DataFrame, y_test: pd.Series) -> dict[str, float]:
    from sklearn import metrics

    predicted = model.predict(x_test)
    return {
        "rmse": float(metrics.root_mean_squared_error(y_test, predicted)),
        "mae": float(metrics.mean_absolute_error(y_test, predicted)),
        "r2": float(metrics.r2_score(y_test, predicted)),
    }
