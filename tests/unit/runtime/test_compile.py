"""Compilation at registration: every allowlisted estimator, verification, and publication."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from modelwerk.api.v1alpha1.estimators import ESTIMATORS
from modelwerk.api.v1alpha1.model_version import Compiled
from modelwerk.api.v1alpha1.training_job import TrainingJobSpec
from modelwerk.logic.training_job import compiled_of
from modelwerk.runtime import compiled, storage
from modelwerk.runtime.trainer import compile, job, train

from .helpers import training_job
from .test_trainer import card_of, validated

SMALL = {"n_estimators": 8, "max_depth": 4}
PARAMS: dict[str, dict[str, Any]] = {
    "RandomForestClassifier": SMALL,
    "ExtraTreesClassifier": SMALL,
    "RandomForestRegressor": SMALL,
    "ExtraTreesRegressor": SMALL,
    "GradientBoostingClassifier": {"n_estimators": 10},
    "GradientBoostingRegressor": {"n_estimators": 10},
    "HistGradientBoostingClassifier": {"max_iter": 10},
    "HistGradientBoostingRegressor": {"max_iter": 10},
    "SVC": {"probability": True},
    "MLPClassifier": {"max_iter": 300},
    "MLPRegressor": {"max_iter": 300},
}


def _frame(task: str) -> pd.DataFrame:
    return (load_iris if task == "classification" else load_diabetes)(as_frame=True).frame


def _fit(name: str, scaling: str = "standard") -> tuple[train.Trained, pd.DataFrame]:
    task = ESTIMATORS[name][1]
    frame = _frame(task)
    spec = TrainingJobSpec.model_validate(
        {
            "datasetRef": {"name": "d"},
            "model": {"name": "m"},
            "estimator": {"name": name, "params": PARAMS.get(name, {})},
            "features": {"scaling": scaling},
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the small MLPs
        return train.fit(spec, frame, "target"), frame.drop(columns="target")


def _compile(trained: train.Trained, x: pd.DataFrame) -> compile.Compilation:
    return compile.compile_pipeline(
        trained.model, x, trained.signature, trained.task, holdout=trained.holdout
    )


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_every_allowlisted_estimator_compiles_or_falls_back_with_its_reason(name: str) -> None:
    trained, x = _fit(name)
    result = _compile(trained, x)
    card = result.artifact
    if name in compile.KNOWN_UNSUPPORTED:
        assert not card.verified and result.model is None
        assert card.reason is not None and card.reason.startswith("Unsupported:"), card.reason
        return
    assert card.verified, card.reason
    assert result.model is not None and card.reason is None
    assert card.snapshot is not None and card.snapshot.rows == len(x)
    assert card.holdout is not None and card.holdout.rows == trained.test_rows
    assert card.precision in ("float64", "mixed", "float32")
    assert card.converter is not None and card.converter.startswith("skl2onnx ")
    assert {"onnx", "onnxruntime", "skl2onnx"} <= set(card.libraries)
    if ESTIMATORS[name][0] in ("xgboost", "lightgbm"):
        # skl2onnx around onnxmltools' estimator converter, float32 trees (ML opset 3)
        assert "onnxmltools" in card.libraries and "onnxmltools" in card.converter
        assert card.precision == "mixed" and card.opsets["ai.onnx.ml"] == 3
    if trained.task == "classification":
        assert card.snapshot.label_agreement == 1.0
        if card.snapshot.max_probability_diff is not None:
            assert card.snapshot.max_probability_diff <= compile.PROBABILITY_TOLERANCE
    else:
        assert card.snapshot.max_abs_diff is not None
    # the served path answers like the original on every row
    runner = compiled.Runner(
        compiled.session(result.model), [t.name for t in trained.signature.inputs], False
    )
    pred, _ = runner.predict(x.to_numpy(dtype=np.float64), False)
    expected = trained.model.predict(x)
    if trained.task == "classification":
        assert pred.tolist() == expected.tolist()
    else:
        np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-5)


def test_linear_models_compile_in_float64_and_trees_in_mixed_precision() -> None:
    logistic = _compile(*_fit("LogisticRegression")).artifact
    assert logistic.precision == "float64"
    assert logistic.snapshot is not None and logistic.snapshot.max_probability_diff is not None
    assert logistic.snapshot.max_probability_diff < 1e-12
    forest = _compile(*_fit("RandomForestClassifier")).artifact
    assert forest.verified and forest.precision == "mixed"
    # float64 was tried first and refused by verification or by ONNX Runtime
    assert forest.opsets[""] >= 11


@pytest.mark.parametrize("name", ["XGBClassifier", "LGBMClassifier"])
def test_boosted_binary_classifiers_compile_with_both_probabilities(name: str) -> None:
    """Binary boosting has one raw score per row; the compiled model must still answer the
    [n, 2] probabilities and the labels scikit-learn's interface gives."""
    frame = load_breast_cancer(as_frame=True).frame
    spec = TrainingJobSpec.model_validate(
        {
            "datasetRef": {"name": "d"},
            "model": {"name": "m"},
            "estimator": {"name": name, "params": {"n_estimators": 50}},
        }
    )
    trained, x = train.fit(spec, frame, "target"), frame.drop(columns="target")
    result = _compile(trained, x)
    assert result.artifact.verified, result.artifact.reason
    assert result.model is not None
    runner = compiled.Runner(compiled.session(result.model), list(x.columns), True)
    labels, probabilities = runner.predict(x.to_numpy(dtype=np.float64), True)
    assert labels.tolist() == trained.model.predict(x).tolist()
    assert probabilities is not None and probabilities.shape == (len(x), 2)
    np.testing.assert_allclose(probabilities, trained.model.predict_proba(x), atol=1e-5)


def test_lightgbm_with_text_labels_and_one_hot_columns_compiles_per_column(
    tmp_path: Path, root: str
) -> None:
    frame = load_iris(as_frame=True).frame
    frame["colour"] = np.where(frame["petal length (cm)"] > 3, "red", "blue")
    frame["target"] = np.array(["setosa", "versicolor", "virginica"])[frame["target"]]
    path = tmp_path / "text.csv"
    frame.to_csv(path, index=False)
    outcome = job.run(
        training_job(
            estimator={"name": "LGBMClassifier", "params": {"n_estimators": 30}},
            features={"oneHot": ["colour"]},
        ),
        validated(root, uri=f"file://{path}"),
        root,
    )
    card = card_of(outcome)
    assert card.compiled is not None and card.compiled.verified, card.compiled
    assert card.compiled.snapshot is not None and card.compiled.snapshot.label_agreement == 1.0


def test_a_disagreeing_compilation_is_recorded_and_not_kept() -> None:
    """A converter producing a different model (here: the forest of another seed, trained on
    shuffled labels) must be caught by verification, whatever it claims."""
    trained, x = _fit("DecisionTreeClassifier")
    impostor, _ = _fit("DecisionTreeClassifier")
    rng = np.random.default_rng(0)
    impostor.model.fit(x, rng.permutation(_frame("classification")["target"].to_numpy()))
    skl2onnx = compile.CONVERTERS[-1]

    def wrong(pipeline: Any, *args: Any) -> Any:
        return skl2onnx.convert(impostor.model, *args)

    compile.register(
        compile.Converter("impostor", lambda est: est is trained.model[-1], wrong, lambda: "0")
    )
    try:
        result = _compile(trained, x)
    finally:
        compile.CONVERTERS.pop(0)
    card = result.artifact
    assert not card.verified and result.model is None
    assert card.reason is not None and card.reason.startswith("Disagrees: ")
    assert "the label differs on" in card.reason
    assert card.snapshot is not None and card.snapshot.label_agreement is not None
    assert card.snapshot.label_agreement < 1.0
    # what the ModelVersion records from it
    mv = compiled_of(job.compiled_result(card))
    assert mv is not None and not mv.verified and mv.uri is None and mv.sha256 is None
    assert mv.label_agreement == card.snapshot.label_agreement


def test_a_pipeline_without_converter_is_recorded_as_unsupported() -> None:
    class Opaque:
        classes_ = np.array([0, 1])

        def predict(self, x: Any) -> Any:
            return np.zeros(len(x))

    trained, x = _fit("LogisticRegression")
    result = compile.compile_pipeline(Opaque(), x, trained.signature, "classification")
    assert not result.artifact.verified and result.model is None
    assert result.artifact.reason == "Unsupported: no converter for Opaque"


def test_text_and_integer_categories_compile_per_column(tmp_path: Path, root: str) -> None:
    frame = load_iris(as_frame=True).frame
    frame["colour"] = np.where(frame["petal length (cm)"] > 3, "red", "blue")
    frame["size"] = (frame["sepal length (cm)"] > 5.8).astype("int64")
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    data = validated(root, uri=f"file://{path}")
    outcome = job.run(
        training_job(
            estimator={"name": "LogisticRegression", "params": {"max_iter": 500}},
            features={"oneHot": ["colour", "size"], "scaling": "standard"},
        ),
        data,
        root,
    )
    card = card_of(outcome)
    assert card.compiled is not None and card.compiled.verified, card.compiled
    assert outcome.result["compiled"]["verified"] is True


def test_the_trainer_publishes_the_verified_model_next_to_the_joblib(root: str) -> None:
    data = validated(root, builtin="iris")
    outcome = job.run(
        training_job(estimator={"name": "RandomForestClassifier", "params": {"n_estimators": 10}}),
        data,
        root,
    )
    assert outcome.exit_code == 0, outcome.result
    card = card_of(outcome)
    described = card.compiled
    assert described is not None and described.verified
    assert described.uri is not None and described.sha256 is not None
    assert described.uri.rsplit("/", 1)[0] == card.artifact.uri.rsplit("/", 1)[0]
    assert described.uri.endswith("/model.onnx")
    raw = Path(storage.to_local(described.uri)).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == described.sha256
    assert described.size_bytes == len(raw)
    assert described.snapshot is not None and described.snapshot.rows == 150
    assert described.holdout is not None and described.holdout.rows == 30
    # the termination message carries what the ModelVersion records, and it fits
    reported = job.compact(outcome.result)["compiled"]
    mv = Compiled.model_validate(reported)
    assert (mv.verified, mv.uri, mv.sha256, mv.rows, mv.holdout_rows) == (
        True,
        described.uri,
        described.sha256,
        150,
        30,
    )
    assert mv.converter == described.converter and mv.opset == described.opsets[""]


def test_a_rejected_run_is_not_compiled(root: str) -> None:
    data = validated(root, builtin="iris")
    outcome = job.run(
        training_job(
            estimator={"name": "DecisionTreeClassifier"},
            gates=[{"metric": "accuracy", "threshold": 1.01}],
        ),
        data,
        root,
    )
    assert outcome.result["gatesPassed"] is False
    assert "compiled" not in outcome.result
    assert card_of(outcome).compiled is None


def test_the_verification_job_checks_the_compiled_model_too(root: str) -> None:
    from modelwerk.runtime import verify

    data = validated(root, builtin="iris")
    outcome = job.run(training_job(estimator={"name": "DecisionTreeClassifier"}), data, root)
    card = card_of(outcome)
    assert card.compiled is not None and card.compiled.uri and card.compiled.sha256
    args = ["--uri", card.artifact.uri, "--sha256", card.artifact.sha256]
    args += ["--compiled-uri", card.compiled.uri, "--compiled-sha256", card.compiled.sha256]
    assert verify.main(args) == verify.EXIT_OK
    path = Path(storage.to_local(card.compiled.uri))
    path.write_bytes(path.read_bytes() + b"\0")
    assert verify.main(args) == verify.EXIT_REFUSED
