"""The baseline: a plain scikit-learn script doing the trainer's job by hand.

Read the same parquet snapshot, split 80/20 stratified with the same seed, fit the same
estimator, score the same holdout metrics, save the model with joblib. No modelwerk imports:
this is what a data scientist would write without the platform.

    python plain.py SNAPSHOT TARGET ESTIMATOR PARAMS_JSON OUT_FILE
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

MODULES = {
    "RandomForestClassifier": "sklearn.ensemble",
    "GradientBoostingClassifier": "sklearn.ensemble",
    "HistGradientBoostingClassifier": "sklearn.ensemble",
}


def train(
    snapshot: str, target: str, estimator: str, params: dict[str, Any], out: str
) -> dict[str, float]:
    import joblib
    import pandas as pd
    from sklearn import metrics
    from sklearn.model_selection import train_test_split

    frame = pd.read_parquet(snapshot)
    x = frame.drop(columns=[target])
    y = frame[target]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=42, stratify=y
    )
    cls = getattr(importlib.import_module(MODULES[estimator]), estimator)
    model = cls(**params, random_state=42).fit(x_train, y_train)
    predicted = model.predict(x_test)
    proba = model.predict_proba(x_test)
    scores = {
        "accuracy": metrics.accuracy_score(y_test, predicted),
        "precision": metrics.precision_score(y_test, predicted, average="macro", zero_division=0),
        "recall": metrics.recall_score(y_test, predicted, average="macro", zero_division=0),
        "f1": metrics.f1_score(y_test, predicted, average="macro", zero_division=0),
        "roc_auc": (
            metrics.roc_auc_score(y_test, proba[:, 1])
            if proba.shape[1] == 2
            else metrics.roc_auc_score(y_test, proba, multi_class="ovr")
        ),
    }
    metrics.confusion_matrix(y_test, predicted)
    joblib.dump(model, out)
    return {k: float(v) for k, v in scores.items()}


if __name__ == "__main__":
    snapshot, target, estimator, params, out = sys.argv[1:6]
    print(json.dumps(train(snapshot, target, estimator, json.loads(params), out)))
