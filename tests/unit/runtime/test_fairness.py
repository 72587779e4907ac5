"""Fairness figures: fairlearn's definitions, groups too small to gate, seeded intervals whose
coverage is checked by simulation, and a dropped sensitive column that still reaches them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn import metrics as fl

from modelwerk.api.v1alpha1.evaluation import Bootstrap, Fairness
from modelwerk.api.v1alpha1.training_job import TrainingJobSpec
from modelwerk.runtime.data.synthetic import fairness_demo
from modelwerk.runtime.trainer import fairness, train
from modelwerk.runtime.trainer.errors import TrainingFailure


def _binary(
    n: int, rates: dict[str, float], seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = rng.choice(list(rates), size=n)
    y_true = (rng.random(n) < 0.5).astype(int)
    y_pred = (rng.random(n) < np.vectorize(rates.get)(groups)).astype(int)
    return y_true, y_pred, groups


def test_the_figures_are_fairlearns() -> None:
    y_true, y_pred, groups = _binary(2000, {"a": 0.3, "b": 0.5, "c": 0.45})
    card = fairness.assess(
        Fairness(sensitive_features=["g"]), "classification", pd.Series(y_true), y_pred,
        pd.DataFrame({"g": groups}), [0, 1],
    )  # fmt: skip
    expected = {
        "demographicParityDifference": fl.demographic_parity_difference,
        "demographicParityRatio": fl.demographic_parity_ratio,
        "equalizedOddsDifference": fl.equalized_odds_difference,
        "equalizedOddsRatio": fl.equalized_odds_ratio,
        "equalOpportunityDifference": fl.equal_opportunity_difference,
        "equalOpportunityRatio": fl.equal_opportunity_ratio,
    }
    for name, function in expected.items():
        assert card.figures[name] == pytest.approx(
            function(y_true, y_pred, sensitive_features=groups), abs=1e-12
        ), name


def test_the_vectorised_resamples_use_the_same_definitions_as_metricframe() -> None:
    y_true, y_pred, groups = _binary(500, {"a": 0.3, "b": 0.6})
    names, codes = np.unique(groups, return_inverse=True)
    weights = np.random.default_rng(3).integers(0, 3, (4, len(codes))).astype(float)
    tables = fairness._resampled_tables(
        "classification", True, y_true, y_pred, codes, len(names), weights
    )
    for b in range(4):
        rows = np.repeat(np.arange(len(codes)), weights[b].astype(int))
        frame = fairness._by_group("classification", True, y_true[rows], y_pred[rows], groups[rows])
        for metric in frame.columns:
            assert tables[metric][b] == pytest.approx(frame[metric].to_numpy()), metric


def test_small_groups_are_reported_but_not_gated() -> None:
    y_true, y_pred, groups = _binary(400, {"a": 0.5, "b": 0.5})
    groups = groups.astype(object)
    groups[:10] = "tiny"
    y_pred[:10] = 0  # a group that is never selected would wreck the ratio if it counted
    card = fairness.assess(
        Fairness(sensitive_features=["g"], min_group_size=30), "classification",
        pd.Series(y_true), y_pred, pd.DataFrame({"g": groups}), [0, 1],
    )  # fmt: skip
    tiny = next(g for g in card.groups if g["group"] == "tiny")
    assert tiny == {**tiny, "count": 10, "gated": False}
    assert tiny["metrics"]["selectionRate"] == 0.0
    assert card.figures["demographicParityRatio"] > 0.8


def test_fewer_than_two_gateable_groups_give_no_figures_and_say_why() -> None:
    y_true, y_pred, groups = _binary(100, {"a": 0.5, "b": 0.5})
    card = fairness.assess(
        Fairness(sensitive_features=["g"], min_group_size=80), "classification",
        pd.Series(y_true), y_pred, pd.DataFrame({"g": groups}), [0, 1],
    )  # fmt: skip
    assert card.figures == {} and "fewer than two groups" in card.notes[0]


def test_regression_reports_per_group_errors() -> None:
    rng = np.random.default_rng(1)
    groups = np.array(["a", "b"] * 200)
    y_true = rng.normal(size=400)
    y_pred = y_true + np.where(groups == "a", 0.1, 0.5) * rng.standard_normal(400)
    card = fairness.assess(
        Fairness(sensitive_features=["g"]), "regression", pd.Series(y_true), y_pred,
        pd.DataFrame({"g": groups}),
    )  # fmt: skip
    by_group = {g["group"]: g["metrics"] for g in card.groups}
    assert by_group["b"]["mae"] > 3 * by_group["a"]["mae"]
    assert card.figures["maeDifference"] == pytest.approx(
        by_group["b"]["mae"] - by_group["a"]["mae"]
    )
    assert set(card.figures) == {"maeDifference", "maeRatio", "rmseDifference", "rmseRatio"}


def test_multiclass_needs_a_positive_label_for_parity() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    frame = pd.DataFrame({"g": rng.choice(["a", "b"], 300)})
    card = fairness.assess(
        Fairness(sensitive_features=["g"]), "classification", pd.Series(y), y, frame, [0, 1, 2]
    )
    assert set(card.figures) == {"accuracyDifference"} and "positiveLabel" in card.notes[0]
    card = fairness.assess(
        Fairness(sensitive_features=["g"], positive_label="2"), "classification",
        pd.Series(y), y, frame, [0, 1, 2],
    )  # fmt: skip
    assert card.positive_label == "2" and "demographicParityRatio" in card.figures
    with pytest.raises(TrainingFailure, match="positiveLabel '7'"):
        fairness.assess(
            Fairness(sensitive_features=["g"], positive_label="7"), "classification",
            pd.Series(y), y, frame, [0, 1, 2],
        )  # fmt: skip


def test_bootstrap_intervals_are_seeded_and_cover_the_truth() -> None:
    """Seeded simulation: 200 holdouts drawn from known selection rates (0.4 and 0.5, true
    demographic parity difference 0.1); the 90 % intervals must cover 0.1 about 90 % of the
    time (binomial sd of the coverage over 200 holdouts: 2.1 points)."""
    spec = Fairness(
        sensitive_features=["g"], bootstrap=Bootstrap(samples=200, confidence=0.9, seed=5)
    )
    y_true, y_pred, groups = _binary(400, {"a": 0.4, "b": 0.5})
    args = ("classification", pd.Series(y_true), y_pred, pd.DataFrame({"g": groups}), [0, 1])
    card = fairness.assess(spec, *args)
    assert fairness.assess(spec, *args).intervals == card.intervals
    low, high = card.intervals["demographicParityDifference"]
    assert low <= card.figures["demographicParityDifference"] <= high
    covered = 0
    for seed in range(200):
        y_true, y_pred, groups = _binary(400, {"a": 0.4, "b": 0.5}, seed=seed)
        intervals = fairness._intervals(spec, "classification", True, y_true, y_pred, groups)
        low, high = intervals["demographicParityDifference"]
        covered += low <= 0.1 <= high
    assert 0.84 <= covered / 200 <= 0.96, covered


def test_a_dropped_sensitive_column_still_reaches_the_evaluation() -> None:
    spec = TrainingJobSpec.model_validate(
        {
            "datasetRef": {"name": "hiring"},
            "model": {"name": "m"},
            "estimator": {"name": "LogisticRegression", "params": {"max_iter": 300}},
            "features": {"drop": ["gender"], "oneHot": ["district", "education"]},
            "fairness": {"sensitiveFeatures": ["gender"]},
        }
    )
    trained = train.fit(spec, fairness_demo(rows=1500), "hired")
    assert "gender" not in [t.name for t in trained.signature.inputs]
    assert trained.fairness is not None
    assert {g["group"] for g in trained.fairness.groups} == {"female", "male"}
    # The proxy carries the historical bias: women are selected far less often.
    assert trained.fairness.figures["demographicParityRatio"] < 0.8


def test_sensitive_columns_are_checked() -> None:
    frame = pd.DataFrame({"x": range(100), "id": range(100), "y": [0, 1] * 50})
    with pytest.raises(TrainingFailure, match="unknown column"):
        fairness.check_columns(frame, "y", Fairness(sensitive_features=["nope"]))
    with pytest.raises(TrainingFailure, match="must not list the target"):
        fairness.check_columns(frame, "y", Fairness(sensitive_features=["y"]))
    with pytest.raises(TrainingFailure, match="100 distinct values"):
        fairness.check_columns(frame, "y", Fairness(sensitive_features=["id"]))
