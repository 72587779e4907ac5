"""The trainer in-process: pipelines, search, evaluation, gates, artifacts and failures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.runtime import storage
from modelwerk.runtime.artifacts import TERMINATION_MESSAGE_LIMIT, ModelCard
from modelwerk.runtime.data import job as data_job
from modelwerk.runtime.data import load
from modelwerk.runtime.trainer import estimator, job
from modelwerk.runtime.trainer.errors import EXIT_CONFIG, EXIT_DATA, EXIT_FAILED, TrainingFailure

from .helpers import dataset, training_job

RF = {"name": "RandomForestClassifier", "params": {"n_estimators": 15}}


def validated(root: str, **source: Any) -> job.DatasetInput:
    result = data_job.validate(dataset(**source), root).result
    assert result["valid"], result
    return job.DatasetInput(
        name="ds",
        version=result["version"],
        snapshot_uri=result["snapshotUri"],
        target="target",
        profile_uri=result["profileUri"],
    )


def train(root: str, data: job.DatasetInput, **spec: Any) -> job.Outcome:
    return job.run(training_job(**spec), data, root)


def card_of(outcome: job.Outcome) -> ModelCard:
    with storage.open_uri(outcome.result["modelCardUri"], "r") as handle:
        return ModelCard.model_validate_json(handle.read())


def message_size(outcome: job.Outcome) -> int:
    return len(json.dumps(job.compact(outcome.result), separators=(",", ":")).encode())


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("iris") / "iris.csv"
    load.load_builtin("iris").to_csv(path, index=False)
    return f"file://{path}"


def test_iris_random_forest_end_to_end(root: str) -> None:
    data = validated(root, builtin="iris")
    outcome = train(root, data, estimator=RF, gates=[{"metric": "accuracy", "threshold": 0.8}])
    assert outcome.exit_code == 0, outcome.result
    result = outcome.result
    assert result["ok"] is True and result["task"] == "classification"
    assert set(result["metrics"]) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert result["metrics"]["accuracy"] > 0.85
    assert result["bestParams"] is None
    assert result["warnings"] == []
    assert result["gates"] == [
        {
            "metric": "accuracy",
            "operator": ">=",
            "threshold": 0.8,
            "value": result["metrics"]["accuracy"],
            "passed": True,
        }
    ]
    assert result["gatesPassed"] is True
    assert result["datasetVersion"] == data.version
    assert result["signature"]["outputs"] == [
        ["predict", "INT64", [-1]],
        ["predict_proba", "FP64", [-1, 3]],
    ]
    assert result["signature"]["classes"] == [0, 1, 2]
    assert result["durationSeconds"] >= result["fitSeconds"] > 0

    card = card_of(outcome)
    path = storage.to_local(card.artifact.uri)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == card.artifact.sha256
    assert result["artifact"] == {
        "uri": card.artifact.uri,
        "sha256": card.artifact.sha256,
        "sizeBytes": Path(path).stat().st_size,
        "format": "joblib",
        "frameworkVersion": card.artifact.framework_version,
    }
    assert f"/models/m/{card.artifact.sha256}/model.joblib" in card.artifact.uri
    assert card.params == {"n_estimators": 15, "random_state": 42}
    assert (card.dataset.name, card.dataset.version, card.dataset.profile_uri) == (
        "ds",
        data.version,
        data.profile_uri,
    )
    assert card.training_job is not None and card.training_job.name == "tj"
    assert card.evaluation is not None
    assert (card.evaluation.train_rows, card.evaluation.test_rows) == (120, 30)
    assert np.asarray(card.evaluation.confusion_matrix).sum() == 30
    assert {"scikit-learn", "numpy", "pandas", "python"} <= set(card.libraries)
    assert card.signature.inputs[0].name == "sepal length (cm)"

    model = joblib.load(path)
    frame = load.load_builtin("iris").drop(columns="target")
    assert set(model.predict(frame.head(5))) <= {0, 1, 2}


def test_identical_runs_publish_the_same_artifact_once(root: str) -> None:
    data = validated(root, builtin="iris")
    first = train(root, data, estimator=RF)
    second = train(root, data, estimator=RF)
    assert first.result["artifact"] == second.result["artifact"]
    assert first.result["modelCardUri"] == second.result["modelCardUri"]
    assert len(list((Path(root) / "models" / "m").iterdir())) == 1


def test_wine_with_one_hot_and_imputation(tmp_path: Path, root: str) -> None:
    frame = load.load_builtin("wine")
    rng = np.random.default_rng(0)
    frame.insert(0, "region", rng.choice(["north", "south", "east"], size=len(frame)))
    frame.loc[rng.choice(len(frame), 10, replace=False), "alcohol"] = np.nan
    frame.loc[rng.choice(len(frame), 5, replace=False), "region"] = None
    frame.to_csv(tmp_path / "wine.csv", index=False)
    data = validated(root, uri=f"file://{tmp_path}/wine.csv")
    outcome = train(
        root,
        data,
        estimator={"name": "LogisticRegression", "params": {"max_iter": 500}},
        features={
            "oneHot": ["region"],
            "scaling": "standard",
            "imputation": {"strategy": "median"},
            "drop": ["ash"],
        },
    )
    assert outcome.ok, outcome.result
    assert outcome.result["warnings"] == []
    assert outcome.result["metrics"]["accuracy"] > 0.85
    inputs = dict(map(tuple, outcome.result["signature"]["inputs"]))
    assert inputs["region"] == "BYTES" and inputs["alcohol"] == "FP64" and "ash" not in inputs
    model = joblib.load(storage.to_local(outcome.result["artifact"]["uri"]))
    unseen = frame.drop(columns=["target", "ash"]).head(3).assign(region="mars", alcohol=np.nan)
    assert len(model.predict(unseen)) == 3  # unknown category and a gap are handled


def test_diabetes_ridge_regression(root: str) -> None:
    data = validated(root, builtin="diabetes")
    outcome = train(
        root,
        data,
        estimator={"name": "Ridge", "params": {"alpha": 0.1}},
        gates=[{"metric": "rmse", "operator": "<", "threshold": 80}],
    )
    assert outcome.ok, outcome.result
    result = outcome.result
    assert result["task"] == "regression"
    assert set(result["metrics"]) == {"rmse", "mae", "r2"}
    assert result["metrics"]["r2"] > 0.3
    assert result["gates"][0]["passed"] is True
    assert result["signature"]["outputs"] == [["predict", "FP64", [-1]]]
    assert "classes" not in result["signature"]
    card = card_of(outcome)
    assert card.task == "regression" and card.signature.classes is None


@pytest.mark.parametrize("strategy", ["grid", "random", "halving"])
def test_search_strategies(root: str, iris_csv: str, strategy: str) -> None:
    data = validated(root, uri=iris_csv)
    outcome = train(
        root,
        data,
        estimator={"name": "DecisionTreeClassifier"},
        search={
            "strategy": strategy,
            "space": {"max_depth": [1, 3], "min_samples_leaf": [1, 4]},
            "cv": 3,
            "scoring": "f1",
            "maxTrials": 3,
        },
    )
    assert outcome.ok, outcome.result
    assert outcome.result["warnings"] == []
    best = outcome.result["bestParams"]
    assert set(best) == {"max_depth", "min_samples_leaf"} and best["max_depth"] == 3
    card = card_of(outcome)
    assert card.best_params == best
    assert card.evaluation is not None and card.evaluation.search is not None
    assert card.evaluation.search["strategy"] == strategy
    assert card.evaluation.search["scoring"] == "f1"
    expected = {"grid": 4, "random": 3}.get(strategy)
    if expected is not None:
        assert card.evaluation.search["candidates"] == expected


def test_random_search_caps_trials_at_the_grid_size(root: str) -> None:
    data = validated(root, builtin="iris")
    outcome = train(
        root,
        data,
        estimator={"name": "DecisionTreeClassifier"},
        search={"strategy": "random", "space": {"max_depth": [2, 3]}, "cv": 3, "maxTrials": 50},
    )
    assert outcome.ok and outcome.result["warnings"] == []
    assert card_of(outcome).evaluation.search["candidates"] == 2  # type: ignore[index,union-attr]


def test_regression_search_reports_rmse_in_its_own_sign(root: str) -> None:
    data = validated(root, builtin="diabetes")
    outcome = train(
        root,
        data,
        estimator={"name": "Ridge"},
        search={"strategy": "grid", "space": {"alpha": [0.1, 1.0]}, "cv": 3},
    )
    assert outcome.ok, outcome.result
    search = card_of(outcome).evaluation.search  # type: ignore[union-attr]
    assert search is not None and search["scoring"] == "rmse" and search["bestScore"] > 0


def test_failing_gates_are_reported_not_fatal_in_the_pod(root: str) -> None:
    data = validated(root, builtin="iris")
    outcome = train(
        root,
        data,
        estimator=RF,
        gates=[
            {"metric": "accuracy", "operator": ">=", "threshold": 0.5},
            {"metric": "f1", "operator": ">", "threshold": 1.0},
        ],
    )
    assert outcome.exit_code == 0
    assert [g["passed"] for g in outcome.result["gates"]] == [True, False]
    assert outcome.result["gatesPassed"] is False


def test_gate_on_an_undefined_metric_fails(root: str) -> None:
    data = validated(root, builtin="iris")
    outcome = train(
        root,
        data,
        estimator={"name": "LinearSVC"},
        features={"scaling": "standard"},
        gates=[{"metric": "roc_auc", "threshold": 0.5}],
    )
    assert outcome.ok, outcome.result
    assert "roc_auc" not in outcome.result["metrics"]  # no probabilities, three classes
    assert (
        outcome.result["gates"][0] | {"value": None, "passed": False} == outcome.result["gates"][0]
    )


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (
            {"estimator": {"name": "RandomForestClassifier", "params": {"n_estimatorz": 5}}},
            "RandomForestClassifier has no parameter n_estimatorz",
        ),
        (
            {"estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": -1}}},
            "'n_estimators' parameter",
        ),
        ({"estimator": {"name": "SVC", "params": {"kernel": "banana"}}}, "'kernel' parameter"),
        (
            {
                "estimator": {"name": "DecisionTreeClassifier"},
                "search": {"strategy": "grid", "space": {"max_depth": [0, 2]}},
            },
            "search.space.max_depth[0]",
        ),
        (
            {
                "estimator": {"name": "DecisionTreeClassifier"},
                "search": {"strategy": "grid", "space": {"depth": [2]}},
            },
            "search.space names depth",
        ),
    ],
)
def test_invalid_params_fail_fast_with_a_clear_message(
    root: str, spec: dict[str, Any], fragment: str
) -> None:
    data = validated(root, builtin="iris")
    outcome = train(root, data, **spec)
    assert outcome.exit_code == EXIT_CONFIG
    assert outcome.result["ok"] is False
    assert outcome.result["reason"] == "InvalidParams"
    assert outcome.result["error"].startswith("invalid params")
    assert fragment in outcome.result["error"]
    assert not (Path(root) / "models").exists()


@pytest.mark.parametrize("name", ["os.system", "sklearn.svm.SVC", "builtins.eval", "Pipeline"])
def test_only_allowlisted_estimators(name: str) -> None:
    with pytest.raises(TrainingFailure) as caught:
        estimator.estimator_class(name)
    assert caught.value.reason == "EstimatorNotAllowed"
    with pytest.raises(ValidationError):
        training_job(estimator={"name": name})


@pytest.mark.parametrize(
    ("spec", "reason", "fragment"),
    [
        ({"features": {"drop": ["nope"]}}, "InvalidSpec", "features.drop names unknown"),
        ({"features": {"oneHot": ["target"]}}, "InvalidSpec", "must not list the target"),
        (
            {
                "features": {
                    "drop": [
                        "sepal length (cm)",
                        "sepal width (cm)",
                        "petal length (cm)",
                        "petal width (cm)",
                    ]
                }
            },
            "InvalidSpec",
            "no feature columns",
        ),
    ],
)
def test_feature_spec_errors(root: str, spec: dict[str, Any], reason: str, fragment: str) -> None:
    outcome = train(root, validated(root, builtin="iris"), estimator=RF, **spec)
    assert (outcome.result["reason"], outcome.exit_code) == (reason, EXIT_CONFIG)
    assert fragment in outcome.result["error"]


def test_text_columns_must_be_one_hot_or_dropped(tmp_path: Path, root: str) -> None:
    (tmp_path / "d.csv").write_text("a,color,target\n" + "1,red,0\n2,blue,1\n" * 10)
    outcome = train(root, validated(root, uri=f"file://{tmp_path}/d.csv"), estimator=RF)
    assert outcome.result["reason"] == "InvalidSpec"
    assert "color are not numeric; list them in features.oneHot" in outcome.result["error"]


def test_missing_values_without_imputation_explain_the_fix(tmp_path: Path, root: str) -> None:
    (tmp_path / "d.csv").write_text("a,b,target\n" + "1,,0\n2,3,1\n" * 10)
    outcome = train(
        root,
        validated(root, uri=f"file://{tmp_path}/d.csv"),
        estimator={"name": "LogisticRegression"},
    )
    assert (outcome.result["reason"], outcome.exit_code) == ("TrainingError", EXIT_FAILED)
    assert "set features.imputation" in outcome.result["error"]


def test_unstratifiable_split_says_how_to_fix_it(tmp_path: Path, root: str) -> None:
    (tmp_path / "d.csv").write_text("a,target\n" + "1,0\n2,1\n" * 5 + "3,2\n")
    outcome = train(root, validated(root, uri=f"file://{tmp_path}/d.csv"), estimator=RF)
    assert outcome.result["reason"] == "TrainingError"
    assert "split.stratify: false" in outcome.result["error"]


def test_a_snapshot_that_does_not_match_its_version_is_refused(root: str) -> None:
    data = validated(root, builtin="iris")
    tampered = job.DatasetInput(
        name="ds", version="sha256:" + "0" * 64, snapshot_uri=data.snapshot_uri, target="target"
    )
    outcome = job.run(training_job(estimator=RF), tampered, root)
    assert (outcome.result["reason"], outcome.exit_code) == ("DatasetUnreadable", EXIT_DATA)
    missing = job.DatasetInput(
        name="ds", version=data.version, snapshot_uri=data.snapshot_uri + ".gone", target="target"
    )
    assert (
        job.run(training_job(estimator=RF), missing, root).result["reason"] == "DatasetUnreadable"
    )


def test_termination_message_fits_for_digits(root: str) -> None:
    data = validated(root, builtin="digits")
    outcome = train(root, data, estimator={"name": "GaussianNB"})
    assert outcome.ok, outcome.result
    assert message_size(outcome) <= TERMINATION_MESSAGE_LIMIT
    compact = job.compact(outcome.result)
    assert len(compact["signature"]["inputs"]) == 64  # 64 features still fit whole
    assert "inputsTruncated" not in compact["signature"]


def test_termination_message_fits_for_very_wide_data(tmp_path: Path, root: str) -> None:
    rng = np.random.default_rng(1)
    wide = pd.DataFrame(
        rng.normal(size=(60, 400)), columns=[f"feature_{i:04d}" for i in range(400)]
    )
    wide["target"] = np.arange(60) % 2
    wide.to_parquet(tmp_path / "wide.parquet", index=False)
    outcome = train(
        root,
        validated(root, uri=f"file://{tmp_path}/wide.parquet"),
        estimator={"name": "GaussianNB"},
    )
    assert outcome.ok, outcome.result
    compact = job.compact(outcome.result)
    assert message_size(outcome) <= TERMINATION_MESSAGE_LIMIT
    assert compact["signature"]["inputsTruncated"] is True
    assert compact["metrics"] == outcome.result["metrics"]
    assert len(card_of(outcome).signature.inputs) == 400  # the card has them all


def test_failure_messages_fit_too() -> None:
    huge = {"ok": False, "reason": "TrainingError", "error": "x" * 100_000}
    assert len(json.dumps(job.compact(huge)).encode()) <= TERMINATION_MESSAGE_LIMIT


def test_training_job_json_from_the_operator_round_trips() -> None:
    tj = training_job(estimator=RF)
    assert TrainingJob.from_k8s(json.loads(json.dumps(tj.model_dump(by_alias=True, mode="json"))))


def test_a_pvc_store_gives_pvc_uris_every_pod_can_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELWERK_PVC_ROOT", str(tmp_path / "pvc"))
    data = validated("pvc://modelwerk-artifacts", builtin="iris")
    assert data.snapshot_uri.startswith("pvc://modelwerk-artifacts/datasets/ds/")
    outcome = job.run(training_job(estimator=RF), data, "pvc://modelwerk-artifacts")
    assert outcome.ok, outcome.result
    uri = outcome.result["artifact"]["uri"]
    assert uri.startswith("pvc://modelwerk-artifacts/models/m/")
    assert Path(storage.to_local(uri)).is_file()
    assert str(tmp_path / "pvc" / "modelwerk-artifacts" / "models") in storage.to_local(uri)
    # A plain path under the PVC mount is reported as pvc:// too.
    local = job.run(training_job(estimator=RF), data, str(tmp_path / "pvc" / "modelwerk-artifacts"))
    assert local.result["artifact"]["uri"] == uri
