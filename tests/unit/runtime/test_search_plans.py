"""Search plans and the search engine: partitioning, rounds, rungs, determinism, and the
parallel search finding what the serial one finds (and what scikit-learn's searches find)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from modelwerk.api.v1alpha1.search import Search, rung_sizes, search_plan, trial_count
from modelwerk.runtime.data import load
from modelwerk.runtime.trainer import job, search_pod, searching, train, trials
from modelwerk.runtime.trainer.errors import TrainingFailure

from .helpers import training_job
from .test_trainer import iris_csv, validated

__all__ = ["iris_csv"]  # the module-scoped fixture, shared


def _search(**fields: Any) -> Search:
    return Search.model_validate(fields)


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    return load.load_builtin("iris")


def _prepared(frame: pd.DataFrame, search: dict[str, Any], estimator: dict[str, Any]) -> Any:
    tj = training_job(estimator=estimator, search=search)
    return tj.spec, train.prepare(tj.spec, frame, "target")


TREE = {"name": "DecisionTreeClassifier"}
GRID = {"max_depth": [1, 2, 3, 4, None], "min_samples_leaf": [1, 5, 10]}


# --- plans -------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("trials_", [1, 5, 15, 16])
def test_shares_cover_every_candidate_exactly_once(width: int, trials_: int) -> None:
    (stage,) = search_plan(
        _search(
            strategy="random",
            space={"a": {"low": 0, "high": 1}},
            maxTrials=trials_,
            parallelism=width,
        )
    )
    assert stage.indexes == min(width, trials_)
    positions = [p for i in range(stage.indexes) for p in stage.share(i)]
    assert sorted(positions) == list(range(trials_))
    sizes = [len(stage.share(i)) for i in range(stage.indexes)]
    assert max(sizes) - min(sizes) <= 1  # balanced


def test_grid_plan_is_one_stage_of_the_whole_grid() -> None:
    (stage,) = search_plan(_search(strategy="grid", space=GRID, parallelism=4))
    assert (stage.kind, stage.indexes, stage.trials, stage.first_trial) == ("trials", 4, 15, 0)


def test_random_over_lists_is_capped_at_the_grid() -> None:
    assert trial_count(_search(strategy="random", space=GRID, maxTrials=100)) == 15
    assert trial_count(_search(strategy="random", space=GRID, maxTrials=6)) == 6


def test_halving_rungs_divide_by_the_factor() -> None:
    assert rung_sizes(15, 3) == [15, 5, 2]
    assert rung_sizes(27, 3) == [27, 9, 3, 1]
    assert rung_sizes(2, 3) == [2]
    plan = search_plan(_search(strategy="halving", space=GRID, parallelism=4))
    assert [(s.kind, s.indexes, s.trials, s.first_trial) for s in plan] == [
        ("rung", 4, 15, 0),
        ("rung", 4, 5, 15),
        ("rung", 2, 2, 20),
    ]


def test_bayesian_rounds_are_at_least_ten_trials_and_spend_the_budget() -> None:
    space = {"C": {"low": 0.01, "high": 100, "log": True}}
    serial = search_plan(_search(strategy="bayesian", space=space, maxTrials=30))
    assert [(s.indexes, s.trials) for s in serial] == [(1, 30)]
    wide = search_plan(_search(strategy="bayesian", space=space, maxTrials=30, parallelism=16))
    assert [(s.indexes, s.trials) for s in wide] == [(16, 16), (14, 14)]
    numbers = [s.first_trial for s in wide]
    assert numbers == [0, 16]


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"strategy": "grid", "space": {"C": {"low": 1, "high": 2}}}, "grid search needs lists"),
        ({"strategy": "bayesian", "space": {"C": {"low": 2, "high": 1}}}, "smaller than high"),
        ({"strategy": "bayesian", "space": {"C": {"low": 0, "high": 1, "log": True}}}, "low > 0"),
        ({"strategy": "random", "space": {"n": {"low": 1.5, "high": 4, "type": "int"}}}, "whole"),
        ({"strategy": "random", "space": {"C": []}}, "empty list"),
        ({"strategy": "random", "space": {"C": 3}}, "must be a list"),
    ],
)
def test_bad_spaces_are_refused_naming_the_entry(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        _search(**fields)


# --- the engine against scikit-learn -----------------------------------------------------


def test_grid_engine_scores_like_grid_search_cv(iris: pd.DataFrame) -> None:
    from sklearn.model_selection import GridSearchCV

    spec, ready = _prepared(iris, {"strategy": "grid", "space": GRID, "cv": 4}, TREE)
    records = searching.run_serial(ready.evaluator(spec), spec.search)
    reference = GridSearchCV(
        ready.pipeline, {f"model__{k}": v for k, v in GRID.items()}, cv=4, scoring="accuracy"
    ).fit(ready.x_train, ready.y_train)
    by_trial = {r.trial: r for r in records}
    for i, score in enumerate(reference.cv_results_["mean_test_score"]):
        assert by_trial[i].mean_score == pytest.approx(score, abs=1e-12)
    best = searching.best(records).params
    assert {f"model__{k}": v for k, v in best.items()} == reference.best_params_


def test_random_engine_samples_like_randomized_search_cv(iris: pd.DataFrame) -> None:
    from sklearn.model_selection import RandomizedSearchCV

    space = {"strategy": "random", "space": GRID, "cv": 3, "maxTrials": 7}
    spec, ready = _prepared(iris, space, TREE)
    records = searching.run_serial(ready.evaluator(spec), spec.search)
    reference = RandomizedSearchCV(
        ready.pipeline,
        {f"model__{k}": v for k, v in GRID.items()},
        n_iter=7,
        cv=3,
        random_state=spec.split.seed,
    ).fit(ready.x_train, ready.y_train)
    ordered = sorted(records, key=lambda r: r.trial)
    assert [{f"model__{k}": v for k, v in r.params.items()} for r in ordered] == list(
        reference.cv_results_["params"]
    )


# --- serial == parallel -------------------------------------------------------------------


@pytest.mark.parametrize(
    "search",
    [
        {"strategy": "grid", "space": GRID, "cv": 3},
        {
            "strategy": "random",
            "space": {
                "max_depth": {"low": 1, "high": 8, "type": "int"},
                "min_samples_leaf": [1, 3, 9],
            },
            "maxTrials": 9,
        },
        {"strategy": "halving", "space": GRID, "cv": 3},
    ],
    ids=["grid", "random", "halving"],
)
@pytest.mark.parametrize("width", [2, 3])
def test_parallel_search_finds_what_the_serial_one_finds(
    iris: pd.DataFrame, search: dict[str, Any], width: int
) -> None:
    spec, ready = _prepared(iris, search, TREE)
    serial = searching.run_serial(ready.evaluator(spec), spec.search)
    parallel = searching.run_serial(ready.evaluator(spec), spec.search, width=width)
    assert {w.worker for w in parallel} != {"0"}  # really split among pods
    key = [(r.trial, r.params, r.mean_score, r.iteration) for r in serial]
    assert key == [(r.trial, r.params, r.mean_score, r.iteration) for r in parallel]
    assert searching.best(serial).params == searching.best(parallel).params


def test_halving_gives_later_rungs_more_samples_and_fewer_candidates(iris: pd.DataFrame) -> None:
    spec, ready = _prepared(iris, {"strategy": "halving", "space": GRID, "cv": 3}, TREE)
    records = searching.run_serial(ready.evaluator(spec), spec.search)
    per_rung = {r.iteration: (r.resources, 0) for r in records}
    counts = {rung: sum(1 for r in records if r.iteration == rung) for rung in per_rung}
    assert counts == {0: 15, 1: 5, 2: 2}
    resources = [per_rung[r][0] for r in sorted(per_rung)]
    assert resources == sorted(resources) and resources[-1] <= len(ready.y_train)
    rung1 = {str(r.params) for r in records if r.iteration == 1}
    top0 = [r for r in trials.ranked([r for r in records if r.iteration == 0])][:5]
    assert rung1 == {str(r.params) for r in top0}
    assert searching.best(records).iteration == 2


# --- Bayesian -----------------------------------------------------------------------------

SVC = {"name": "SVC"}
SVC_SPACE = {
    "C": {"low": 0.01, "high": 100, "log": True},
    "gamma": {"low": 0.0001, "high": 1, "log": True},
    "kernel": ["rbf", "sigmoid"],
}


@pytest.mark.parametrize("width", [1, 2])
def test_bayesian_search_is_deterministic_given_the_seed(iris: pd.DataFrame, width: int) -> None:
    search = {"strategy": "bayesian", "space": SVC_SPACE, "cv": 3, "maxTrials": 14}
    spec, ready = _prepared(iris, search, SVC)
    first = searching.run_serial(ready.evaluator(spec), spec.search, width=width)
    again = searching.run_serial(ready.evaluator(spec), spec.search, width=width)
    assert [(r.trial, r.params, r.state) for r in first] == [
        (r.trial, r.params, r.state) for r in again
    ]
    assert len(first) == 14
    for record in first:
        assert 0.01 <= record.params["C"] <= 100 and 0.0001 <= record.params["gamma"] <= 1
        assert record.params["kernel"] in ("rbf", "sigmoid")
    other_seed = training_job(estimator=SVC, search=search, split={"seed": 7}).spec
    ready_other = train.prepare(other_seed, iris, "target")
    moved = searching.run_serial(ready_other.evaluator(other_seed), other_seed.search, width=width)
    assert [r.params for r in moved] != [r.params for r in first]


def test_bayesian_pods_of_a_round_ask_differently(iris: pd.DataFrame) -> None:
    search = {"strategy": "bayesian", "space": SVC_SPACE, "cv": 3, "maxTrials": 4, "parallelism": 2}
    spec, ready = _prepared(iris, search, SVC)
    records = searching.run_serial(ready.evaluator(spec), spec.search, width=2)
    by_worker: dict[str, list[Any]] = {}
    for r in sorted(records, key=lambda r: r.trial):
        by_worker.setdefault(r.worker, []).append(r.params)
    assert set(by_worker) == {"0-0", "0-1"} and by_worker["0-0"] != by_worker["0-1"]


def test_pruning_stops_hopeless_trials_after_a_fold(iris: pd.DataFrame) -> None:
    search = {
        "strategy": "bayesian",
        "space": {"C": {"low": 1e-6, "high": 100, "log": True}, "kernel": ["rbf", "sigmoid"]},
        "cv": 5,
        "maxTrials": 30,
    }
    spec, ready = _prepared(iris, search, SVC)
    records = searching.run_serial(ready.evaluator(spec), spec.search)
    pruned = [r for r in records if r.state == "pruned"]
    assert pruned, "a space with hopeless corners prunes some trials"
    for record in pruned:
        assert record.mean_score is None and 1 <= len(record.fold_scores) < 5
    assert all(len(r.fold_scores) == 5 for r in records if r.state == "complete")
    assert searching.best(records).state == "complete"
    no_pruning = training_job(estimator=SVC, search={**search, "pruning": False}).spec
    unpruned = searching.run_serial(ready.evaluator(no_pruning), no_pruning.search)
    assert all(r.state == "complete" for r in unpruned)


def test_bayesian_refuses_choices_optuna_cannot_hold(iris: pd.DataFrame) -> None:
    search = {"strategy": "bayesian", "space": {"hidden_layer_sizes": [[10], [20, 10]]}}
    spec, ready = _prepared(iris, search, {"name": "MLPClassifier"})
    with pytest.raises(TrainingFailure, match="hidden_layer_sizes"):
        searching.run_serial(ready.evaluator(spec), spec.search)


# --- search pods through the store --------------------------------------------------------


def test_search_pods_and_the_final_fit_through_the_store(
    root: str, iris_csv: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pods per rung of a halving search, each reading the rungs before from the trial
    table, then the final Job: the same winner as the serial search, one part per pod."""
    data = validated(root, uri=iris_csv, format="csv")
    search = {"strategy": "halving", "space": GRID, "cv": 3, "parallelism": 2}
    tj = training_job(estimator=TREE, search=search)
    monkeypatch.setenv("MODELWERK_RUN", "run1")
    plan = search_plan(tj.spec.search)  # type: ignore[arg-type]
    results = []
    for stage in plan:
        for index in range(stage.indexes):
            monkeypatch.setenv(search_pod.INDEX_ENV, str(index))
            outcome = search_pod.run(tj, data, root, stage.number)
            assert outcome.ok, outcome.result
            results.append(outcome.result)
    assert sum(r["trials"] for r in results) == trial_count(tj.spec.search)  # type: ignore[arg-type]
    final = job.run(tj, data, root)
    assert final.ok, final.result
    serial_tj = training_job(estimator=TREE, search={**search, "parallelism": 1})
    serial = job.run(serial_tj, data, root + "-serial")
    assert final.result["bestParams"] == serial.result["bestParams"]
    assert final.result["trialCount"] == serial.result["trialCount"] == 22
    table = trials.read(final.result["trialsUri"])
    assert {t.worker for t in table} == {"0-0", "0-1", "1-0", "1-1", "2-0", "2-1"}


def test_a_search_pod_without_an_index_says_so(root: str, iris_csv: str) -> None:
    data = validated(root, uri=iris_csv, format="csv")
    tj = training_job(estimator=TREE, search={"strategy": "grid", "space": GRID, "parallelism": 2})
    outcome = search_pod.run(tj, data, root, 0)
    assert not outcome.ok and outcome.exit_code == 3
    assert "JOB_COMPLETION_INDEX" in outcome.result["error"]


def test_the_final_fit_without_trials_fails_clearly(root: str, iris_csv: str) -> None:
    data = validated(root, uri=iris_csv, format="csv")
    tj = training_job(estimator=TREE, search={"strategy": "grid", "space": GRID, "parallelism": 2})
    outcome = job.run(tj, data, root)
    assert not outcome.ok and "no complete trial" in outcome.result["error"]
    assert math.isfinite(outcome.result["durationSeconds"])
