"""One pass for labels and probabilities: the very answers of the estimator's own
``predict`` and ``predict_proba``, element for element, on real data and on constructed ties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from modelwerk.runtime.server.backends import one_pass
from modelwerk.runtime.server.model import load_model

from .helpers import write_artifact


def _data(name: str) -> tuple[pd.DataFrame, pd.Series]:
    loader = {"cancer": load_breast_cancer, "iris": load_iris, "wine": load_wine}[name]
    data = loader(as_frame=True)
    return data.data, data.target


def _assert_same(estimator: Any, x: Any) -> None:
    both = one_pass.rule_for(estimator)
    assert both is not None
    labels, proba = both(x)
    expected_labels = estimator.predict(x)
    expected_proba = estimator.predict_proba(x)
    assert labels.dtype == expected_labels.dtype
    np.testing.assert_array_equal(labels, expected_labels, strict=True)
    np.testing.assert_array_equal(proba, expected_proba, strict=True)


CASES = [
    ("cancer", lambda: GradientBoostingClassifier(n_estimators=30, random_state=0)),
    (
        "cancer",
        lambda: GradientBoostingClassifier(n_estimators=30, loss="exponential", random_state=0),
    ),
    ("iris", lambda: GradientBoostingClassifier(n_estimators=30, random_state=0)),
    ("wine", lambda: GradientBoostingClassifier(n_estimators=20, random_state=0)),
    ("cancer", lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0)),
    ("iris", lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0)),
]


@pytest.mark.parametrize(("dataset", "make"), CASES)
def test_same_answers_as_the_estimator(dataset: str, make: Any) -> None:
    frame, target = _data(dataset)
    bare = make().fit(frame.to_numpy(), target.to_numpy())
    _assert_same(bare, frame.to_numpy())
    # as the trainer ships it: a pipeline fitted on a frame, with string classes
    named = target.map(lambda k: f"class-{k}")
    piped = Pipeline([("scale", StandardScaler()), ("gb", make())]).fit(frame, named)
    _assert_same(piped, frame)


def _tie(estimator: Any) -> tuple[Any, np.ndarray]:
    """A model whose raw score is exactly 0 everywhere: a feature that says nothing and a
    balanced target (prior log-odds 0, every leaf's gradients cancel)."""
    x = np.zeros((8, 1))
    y = np.array(["no", "yes"] * 4)
    return estimator.fit(x, y), x


def test_tie_at_raw_score_zero_gradient_boosting() -> None:
    model, x = _tie(
        GradientBoostingClassifier(n_estimators=3, init="zero", max_depth=1, random_state=0)
    )
    assert (model.decision_function(x) == 0).all()  # the tie really happens
    _assert_same(model, x)
    # GradientBoosting answers the second class at a tie, argmax(proba) would answer the first
    assert (model.predict(x) == "yes").all()
    assert (model.predict_proba(x) == 0.5).all()


def test_tie_at_raw_score_zero_hist_gradient_boosting() -> None:
    model, x = _tie(HistGradientBoostingClassifier(max_iter=3, random_state=0))
    assert (model.decision_function(x) == 0).all()
    _assert_same(model, x)
    assert (model.predict(x) == "no").all()  # strict threshold: raw > 0


def test_other_models_keep_two_passes() -> None:
    frame, target = _data("iris")
    x = frame.to_numpy()
    assert one_pass.rule_for(LogisticRegression(max_iter=500).fit(x, target)) is None
    assert one_pass.rule_for(RandomForestClassifier(n_estimators=3).fit(x, target)) is None


def test_backend_walks_the_trees_once(tmp_path: Path) -> None:
    frame, target = _data("cancer")
    estimator = Pipeline(
        [("scale", StandardScaler()), ("gb", GradientBoostingClassifier(n_estimators=20))]
    )
    artifact = write_artifact(tmp_path, "cancer", estimator, frame, target, "classification")
    model = load_model(artifact.settings())
    x = frame.to_numpy(dtype=np.float64)
    expected = (
        model.backend.estimator.predict(frame),
        model.backend.estimator.predict_proba(frame),
    )  # type: ignore[attr-defined]
    final = model.backend.estimator[-1]  # type: ignore[attr-defined]
    calls = {"decision_function": 0}
    original = final.decision_function

    def counted(data: Any) -> Any:
        calls["decision_function"] += 1
        return original(data)

    final.decision_function = counted
    pred, proba = model.predict(x, True)
    assert calls["decision_function"] == 1
    np.testing.assert_array_equal(pred, expected[0], strict=True)
    np.testing.assert_array_equal(proba, expected[1], strict=True)
    # without probabilities nothing changes: predict alone
    calls["decision_function"] = 0
    only, none = model.predict(x, False)
    assert none is None and calls["decision_function"] == 1
    np.testing.assert_array_equal(only, expected[0], strict=True)
