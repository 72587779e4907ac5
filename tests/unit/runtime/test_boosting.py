"""XGBoost and LightGBM through their scikit-learn interfaces: searched, trained, published
reproducibly (the same spec gives the same bytes), and loadable by the model server."""

from __future__ import annotations

from typing import Any

import pytest

from modelwerk.runtime.server.model import load_model
from modelwerk.runtime.server.settings import ServerSettings

from .test_trainer import iris_csv, train, validated

__all__ = ["iris_csv"]

SPACE = {
    "learning_rate": {"low": 0.01, "high": 0.5, "log": True},
    "max_depth": {"low": 2, "high": 6, "type": "int"},
    "n_estimators": [20, 40],
}


@pytest.mark.parametrize("name", ["XGBClassifier", "LGBMClassifier"])
def test_boosted_trees_search_train_reproducibly_and_serve(
    root: str, iris_csv: str, name: str
) -> None:
    data = validated(root, uri=iris_csv, format="csv")
    spec: dict[str, Any] = {
        "estimator": {"name": name},
        "search": {"strategy": "bayesian", "space": SPACE, "cv": 3, "maxTrials": 6},
        "gates": [{"metric": "accuracy", "threshold": 0.85}],
    }
    first = train(root, data, **spec)
    assert first.ok, first.result
    again = train(root, data, **spec)
    assert first.result["artifact"]["sha256"] == again.result["artifact"]["sha256"]
    assert first.result["bestParams"] == again.result["bestParams"]
    assert 0.01 <= first.result["bestParams"]["learning_rate"] <= 0.5
    assert first.result["gatesPassed"] is True
    loaded = load_model(
        ServerSettings(
            model_uri=first.result["artifact"]["uri"],
            sha256=first.result["artifact"]["sha256"],
            model_name="m",
            model_card_uri=first.result["modelCardUri"],
            drift_enabled=False,
        )
    )
    assert loaded.has_proba and loaded.classes == [0, 1, 2]
