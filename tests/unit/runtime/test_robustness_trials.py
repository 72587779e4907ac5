"""Robustness perturbations (seeded, monotone in the noise level, only where they apply) and
the trial table (ranked, sign-corrected, parts from several workers merged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelwerk.api.v1alpha1.evaluation import Robustness
from modelwerk.api.v1alpha1.search import Search
from modelwerk.api.v1alpha1.training_job import Features
from modelwerk.runtime.data.synthetic import fairness_demo
from modelwerk.runtime.trainer import crossval, robustness, searching, trials


@pytest.fixture(scope="module")
def hiring() -> tuple[Pipeline, pd.DataFrame, pd.DataFrame, pd.Series]:
    frame = fairness_demo(rows=1200).drop(columns=["gender"])
    x, y = frame.drop(columns="hired"), frame["hired"]
    numeric = ["skill_score", "years_experience", "commute_km"]
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("n", StandardScaler(), numeric),
                        ("o", OneHotEncoder(handle_unknown="ignore"), ["district", "education"]),
                    ]
                ),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(x[:900], y[:900])
    return model, x[:900], x[900:], y[900:]


def test_flips_grow_with_the_noise_and_repeat_with_the_seed(hiring) -> None:  # type: ignore[no-untyped-def]
    model, x_train, x_test, y_test = hiring
    features = Features(one_hot=["district", "education"])
    spec = Robustness(noise_levels=[0.05, 0.5, 2.0], seed=3)
    card = robustness.assess(spec, "classification", model, x_train, x_test, y_test, features)
    flips = [card.figures[f"noise.flipRate@{level:g}"] for level in (0.05, 0.5, 2.0)]
    assert flips == sorted(flips) and flips[0] < 0.05 < flips[2]
    assert card.figures["noise.metricDrop@2"] > 0
    again = robustness.assess(spec, "classification", model, x_train, x_test, y_test, features)
    assert again.figures == card.figures and again.findings == card.findings
    # Without imputation a blank is a contract violation, not a robustness finding.
    assert "missing.flipRate" not in card.figures and "features.imputation" in card.notes[0]
    swapped = {f["feature"] for f in card.findings if f["perturbation"] == "swap"}
    assert swapped == {"district", "education"}
    skill = next(f for f in card.findings if f["feature"] == "skill_score" and f["level"] == 2.0)
    commute = next(f for f in card.findings if f["feature"] == "commute_km" and f["level"] == 2.0)
    assert skill["flipRate"] > commute["flipRate"]  # the model leans on skill, not on commute
    summary = robustness.summary(card)
    assert len(summary["mostSensitive"]) <= robustness.STATUS_FINDINGS


def test_gate_levels_are_measured_even_when_not_configured(hiring) -> None:  # type: ignore[no-untyped-def]
    model, x_train, x_test, y_test = hiring
    card = robustness.assess(
        Robustness(noise_levels=[0.1]), "classification", model, x_train, x_test, y_test,
        Features(one_hot=["district", "education"]), extra_levels=(0.3,),
    )  # fmt: skip
    assert {"noise.flipRate@0.1", "noise.flipRate@0.3"} <= set(card.figures)


def test_regression_flips_count_moves_beyond_the_tolerance() -> None:
    data = load_diabetes(as_frame=True)
    x, y = data.data, data.target
    model = Ridge().fit(x[:300], y[:300])
    loose = robustness.assess(
        Robustness(noise_levels=[0.5], tolerance=5.0), "regression", model, x[:300], x[300:],
        y[300:], Features(),
    )  # fmt: skip
    tight = robustness.assess(
        Robustness(noise_levels=[0.5], tolerance=0.01), "regression", model, x[:300], x[300:],
        y[300:], Features(),
    )  # fmt: skip
    assert loose.figures["noise.flipRate@0.5"] == 0.0 < tight.figures["noise.flipRate@0.5"]
    assert loose.metric == "rmse" and loose.figures["noise.metricDrop@0.5"] > 0


def test_trials_are_ranked_in_the_metrics_own_sign(tmp_path: Path) -> None:
    data = load_diabetes(as_frame=True)
    search = GridSearchCV(
        Pipeline([("model", Ridge())]),
        {"model__alpha": [0.01, 1.0, 100.0]},
        cv=3,
        scoring="neg_root_mean_squared_error",
    ).fit(data.data, data.target)
    evaluator = crossval.Evaluator(
        Pipeline([("model", Ridge())]), data.data, data.target, "regression", "rmse", 3, 0
    )
    spec = Search(strategy="grid", space={"alpha": [0.01, 1.0, 100.0]}, cv=3, scoring="rmse")
    records = searching.run_serial(evaluator, spec)
    assert [t.rank for t in records] == [1, 2, 3]
    assert records[0].params == {"alpha": search.best_params_["model__alpha"]}
    assert records[0].mean_score == pytest.approx(-search.best_score_) and records[0].mean_score > 0
    assert len(records[0].fold_scores) == 3 and all(s > 0 for s in records[0].fold_scores)
    directory = str(tmp_path / "run")
    target = trials.write(records[:2], directory, worker="a")
    trials.write(
        [trials.Trial(**{**records[2].__dict__, "mean_score": 1.0})], directory, worker="b"
    )
    merged = trials.read(target)
    assert [(t.worker, t.rank) for t in merged] == [("b", 1), ("a", 2), ("a", 3)]
    assert merged[1].params == records[0].params
    assert np.isclose(merged[1].mean_score, records[0].mean_score)
