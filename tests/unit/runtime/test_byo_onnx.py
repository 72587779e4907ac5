"""A trainer container's model.onnx: uploaded, graded on the holdout through the model server's
ONNX backend, published as the artifact itself (format onnx), served by the onnx backend and
refused by the joblib one; models that do not keep the contract are rejected with the reason."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, mean_squared_error

from modelwerk.runtime.artifacts import ModelCard
from modelwerk.runtime.byo import evaluate, onnx_model, steps
from modelwerk.runtime.server.backends.onnx import OnnxBackend
from modelwerk.runtime.server.model import ModelLoadError, load_model
from modelwerk.runtime.server.settings import ServerSettings
from modelwerk.runtime.trainer import job, train
from modelwerk.runtime.trainer.onnx_graph import name_inputs

from .helpers import training_job
from .test_trainer import validated
from .test_xgb_labels import SPECIES, species_csv

__all__ = ["species_csv"]

CLASSIFIER = {"image": "example/onnx-trainer:1", "task": "classification"}
REGRESSOR = {"image": "example/onnx-trainer:1", "task": "regression"}


def exported(model: Any, columns: list[str], form: str, zipmap: bool = False) -> bytes:
    """What a trainer would export: one float32 matrix ``X`` (the usual form) or one float64
    input per column (a pipeline that selects columns by name)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    if form == "matrix":
        initial = [("X", FloatTensorType([None, len(columns)]))]
    else:
        initial = [(c, DoubleTensorType([None, 1])) for c in columns]
    options = {id(model): {"zipmap": zipmap}} if hasattr(model, "classes_") else None
    converted = convert_sklearn(model, initial_types=initial, options=options)
    if form == "columns":  # skl2onnx sanitises "sepal length (cm)"; the contract wants it back
        name_inputs(converted, columns)
    return bytes(converted.SerializeToString())


def handed_over(
    root: str, data: job.DatasetInput, tmp_path: Path, trainer: dict[str, Any], **spec: Any
) -> tuple[Any, pd.DataFrame]:
    tj = training_job(trainer=trainer, **spec)
    steps.prepare(tj, data, tmp_path / "input")
    return tj, pd.read_parquet(tmp_path / "input" / steps.TRAIN_FILE)


def graded(
    tj: Any, data: job.DatasetInput, root: str, raw: bytes, tmp_path: Path, monkeypatch: Any
) -> tuple[dict[str, Any], job.Outcome]:
    out = tmp_path / "output"
    out.mkdir(exist_ok=True)
    (out / "model.onnx").write_bytes(raw)
    uploaded = steps.upload(out, str(tmp_path / "run"))
    assert uploaded["format"] == "onnx" and uploaded["uri"].endswith("trainer/model.onnx")
    monkeypatch.setenv(evaluate.MODEL_URI_ENV, uploaded["uri"])
    monkeypatch.setenv(evaluate.SHA256_ENV, uploaded["sha256"])
    monkeypatch.setenv(evaluate.FORMAT_ENV, "onnx")
    return uploaded, evaluate.run(tj, data, root)


def holdout(tj: Any, data: job.DatasetInput) -> tuple[pd.DataFrame, pd.Series]:
    frame = job.load(data)
    columns = [c for c in frame.columns if c != "target"]
    _, x_test, _, y_test = train.split(frame[columns], frame["target"], tj.spec.task, tj.spec)
    return x_test, y_test


@pytest.mark.parametrize("form", ["matrix", "columns"])
def test_an_onnx_classifier_is_graded_registered_and_served_as_onnx(
    root: str, species_csv: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = validated(root, uri=species_csv, format="csv")
    tj, handed = handed_over(
        root, data, tmp_path, CLASSIFIER, gates=[{"metric": "accuracy", "threshold": 0.8}]
    )
    x, y = handed.drop(columns="target"), handed["target"]
    columns = list(x.columns)
    lr = LogisticRegression(max_iter=2000)
    if form == "matrix":  # fitted on the matrix, exported with one float32 input X
        model = Pipeline([("scale", StandardScaler()), ("lr", lr)]).fit(x.to_numpy(), y)
    else:  # selects its columns by name, exported with one input per column
        scale = ColumnTransformer([("scale", StandardScaler(), columns)])
        model = Pipeline([("scale", scale), ("lr", lr)]).fit(x, y)
    raw = exported(model, columns, form)
    uploaded, outcome = graded(tj, data, root, raw, tmp_path, monkeypatch)
    assert outcome.ok, outcome.result
    result = outcome.result
    x_test, y_test = holdout(tj, data)
    original = x_test.to_numpy() if form == "matrix" else x_test
    # graded on the holdout by ONNX Runtime: the labels the user's model gives there
    assert result["metrics"]["accuracy"] == accuracy_score(y_test, model.predict(original))
    assert "roc_auc" in result["metrics"] and result["gatesPassed"] is True
    assert result["trainer"] == {"modelSha256": uploaded["sha256"], "format": "onnx"}
    artifact = result["artifact"]
    assert artifact["format"] == "onnx" and artifact["uri"].endswith("/model.onnx")
    assert artifact["sha256"] == uploaded["sha256"] == hashlib.sha256(raw).hexdigest()
    assert result["signature"]["classes"] == SPECIES
    assert result["signature"]["outputs"] == [
        ["predict", "BYTES", [-1]],
        ["predict_proba", "FP64", [-1, 3]],
    ]
    assert "compiled" not in result
    with open(result["modelCardUri"].removeprefix("file://")) as handle:
        card = ModelCard.model_validate_json(handle.read())
    assert (card.artifact.framework, card.compiled) == ("onnx", None)
    assert card.artifact.framework_version.startswith("opset ")

    settings = ServerSettings(
        model_uri=artifact["uri"],
        sha256=artifact["sha256"],
        artifact_format="onnx",
        model_name="iris",
        model_card_uri=result["modelCardUri"],
        drift_enabled=False,
    )
    served = load_model(settings)
    assert served.backend.name == "onnx" and served.classes == SPECIES
    rows = x_test.to_numpy(dtype=np.float64)
    labels, probabilities = served.predict(rows, True)
    assert labels.tolist() == model.predict(original).tolist()
    assert probabilities is not None
    np.testing.assert_allclose(probabilities, model.predict_proba(original), atol=1e-4)
    with pytest.raises(ModelLoadError, match=r"is an ONNX model .* serve it with --backend onnx"):
        load_model(settings.model_copy(update={"backend": "joblib"}))
    with pytest.raises(ModelLoadError, match="describes an artifact of format onnx"):
        load_model(settings.model_copy(update={"artifact_format": "joblib"}))


def test_an_onnx_regressor_is_graded_on_the_holdout(
    root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import Ridge

    data = validated(root, builtin="diabetes")
    tj, handed = handed_over(root, data, tmp_path, REGRESSOR)
    x, y = handed.drop(columns="target"), handed["target"]
    model = Ridge(alpha=0.1).fit(x.to_numpy(), y)
    _, outcome = graded(
        tj, data, root, exported(model, list(x.columns), "matrix"), tmp_path, monkeypatch
    )
    assert outcome.ok, outcome.result
    x_test, y_test = holdout(tj, data)
    rmse = float(np.sqrt(mean_squared_error(y_test, model.predict(x_test.to_numpy()))))
    # float32 inputs, as exported: within float32 rounding of the original's error
    assert outcome.result["metrics"]["rmse"] == pytest.approx(rmse, rel=1e-5)
    assert outcome.result["signature"]["outputs"] == [["predict", "FP64", [-1]]]


def test_models_that_break_the_contract_are_rejected_with_the_reason(
    root: str, species_csv: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    data = validated(root, uri=species_csv, format="csv")
    tj, handed = handed_over(root, data, tmp_path, CLASSIFIER)
    x, y = handed.drop(columns="target"), handed["target"]
    columns = list(x.columns)
    fitted = LogisticRegression(max_iter=2000).fit(x.to_numpy(), y)
    codes = LogisticRegression(max_iter=2000).fit(x.to_numpy(), y.astype("category").cat.codes)
    narrow = LogisticRegression(max_iter=2000).fit(x.to_numpy()[:, :3], y)
    cases = [
        (b"not a model", "ONNX Runtime cannot load the model"),
        (exported(fitted, columns, "matrix", zipmap=True), "export classifiers without ZipMap"),
        (exported(codes, columns, "matrix"), "which are not labels of the target"),
        (exported(narrow, columns[:3], "matrix"), "takes 3 features, the signature lists 4"),
    ]
    for raw, fragment in cases:
        _, outcome = graded(tj, data, root, raw, tmp_path, monkeypatch)
        assert not outcome.ok and outcome.result["reason"] == "ModelRejected", outcome.result
        assert outcome.result["error"].startswith("model.onnx: ")
        assert fragment in outcome.result["error"], outcome.result["error"]


def test_grading_predicts_through_the_servers_backend(
    root: str, species_csv: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    data = validated(root, uri=species_csv, format="csv")
    frame = job.load(data)
    x, y = frame.drop(columns="target"), frame["target"]
    model = LogisticRegression(max_iter=2000).fit(x.to_numpy(), y)
    exported_bytes = exported(model, list(x.columns), "matrix")
    loaded = onnx_model.load(exported_bytes, x, y, "classification")
    assert isinstance(loaded.model.backend, OnnxBackend)
    assert list(loaded.model.classes_) == SPECIES  # read from the graph's classifier node
    expected = model.predict(x.iloc[:5].to_numpy()).tolist()
    assert loaded.model.predict(x.iloc[:5]).tolist() == expected
    assert loaded.framework_version.startswith("opset ")
    # without the onnx package (not needed to serve) the classes are the training labels
    monkeypatch.setitem(sys.modules, "onnx", None)
    bare = onnx_model.load(exported_bytes, x, y, "classification")
    assert list(bare.model.classes_) == SPECIES and bare.framework_version == "unknown"


def test_upload_takes_exactly_one_model(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.joblib").write_bytes(b"a pickle")
    (out / "model.onnx").write_bytes(b"a graph")
    both = steps.upload(out, str(tmp_path / "run"))
    assert both["ok"] is False and both["reason"] == "AmbiguousModel"
    assert "both model.joblib and model.onnx" in both["error"]
    (out / "model.joblib").unlink()
    done = steps.upload(out, str(tmp_path / "run"))
    assert (done["format"], done["sha256"]) == ("onnx", hashlib.sha256(b"a graph").hexdigest())
