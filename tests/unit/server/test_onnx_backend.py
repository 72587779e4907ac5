"""The ONNX Runtime backend: same answers, same errors, nothing unpickled, sha256 first."""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from modelwerk.runtime.artifacts import COMPILED_FILE, MODEL_CARD_FILE, ModelCard
from modelwerk.runtime.server.app import ModelServer, create_app
from modelwerk.runtime.server.backends import choose
from modelwerk.runtime.server.model import LoadedModel, ModelLoadError, load_model
from modelwerk.runtime.trainer.compile import compile_pipeline

from .helpers import Artifact, v2_matrix, v2_named, write_artifact
from .test_errors import CASES

pytestmark = pytest.mark.anyio

Client = Callable[[ModelServer], httpx.AsyncClient]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclasses.dataclass
class Compiled:
    artifact: Artifact
    sha256: str
    uri: str

    def settings(self, **overrides: Any) -> Any:
        values = {"compiled_sha256": self.sha256, "compiled_uri": self.uri, **overrides}
        return self.artifact.settings(**values)


def compile_artifact(artifact: Artifact) -> Compiled:
    """What the trainer does at registration: compile, verify, publish, describe in the card."""
    card_path = artifact.directory / MODEL_CARD_FILE
    card = ModelCard.model_validate_json(card_path.read_text())
    result = compile_pipeline(artifact.estimator, artifact.frame, card.signature, card.task)
    assert result.model is not None, result.artifact.reason
    path = artifact.directory / COMPILED_FILE
    path.write_bytes(result.model)
    import hashlib

    sha = hashlib.sha256(result.model).hexdigest()
    described = result.artifact.model_copy(update={"uri": str(path), "sha256": sha})
    card_path.write_text(
        card.model_copy(update={"compiled": described}).model_dump_json(by_alias=True)
    )
    return Compiled(artifact, sha, str(path))


@pytest.fixture(scope="session")
def iris_forest(artifact_root: Path) -> Artifact:
    """A forest without a scaler in front (trees need none): the conftest's scaled forest
    differs from its float32 compilation by one tree's vote on some rows, which verification
    refuses (see test_compile)."""
    data = load_iris(as_frame=True)
    estimator = Pipeline([("forest", RandomForestClassifier(n_estimators=20, random_state=0))])
    return write_artifact(
        artifact_root, "iris", estimator, data.data, data.target, "classification", "forest"
    )


@pytest.fixture(scope="session")
def iris_onnx(iris_forest: Artifact) -> Compiled:
    return compile_artifact(iris_forest)


@pytest.fixture(scope="session")
def onnx_model(iris_onnx: Compiled) -> LoadedModel:
    return load_model(iris_onnx.settings())


def test_auto_serves_the_compiled_model_when_one_is_given(
    iris_onnx: Compiled, onnx_model: LoadedModel
) -> None:
    assert choose(iris_onnx.settings()) == "onnx"
    assert choose(iris_onnx.artifact.settings()) == "joblib"
    assert choose(iris_onnx.settings(backend="joblib")) == "joblib"
    assert onnx_model.backend.name == "onnx"
    assert onnx_model.classes == [0, 1, 2] and onnx_model.has_proba


async def test_same_predictions_and_probabilities_in_every_request_form(
    iris_forest: Artifact, iris_onnx: Compiled, onnx_model: LoadedModel, client_for: Client
) -> None:
    iris = iris_forest
    rows = iris.frame.iloc[::3]
    expected = iris.estimator.predict(rows).tolist()
    expected_proba = iris.estimator.predict_proba(rows)
    app = create_app(iris_onnx.settings(), onnx_model)
    wanted = [{"name": "predict"}, {"name": "probabilities"}]
    async with client_for(app) as client:
        for body in (v2_named(rows, outputs=wanted), v2_matrix(rows, outputs=wanted)):
            out = (await client.post("/v2/models/iris/infer", json=body)).json()["outputs"]
            assert out[0]["data"] == expected
            got = np.asarray(out[1]["data"]).reshape(expected_proba.shape)
            np.testing.assert_allclose(got, expected_proba, atol=1e-5)
        body = {"rows": rows.to_dict(orient="records")}
        out = (await client.post("/v2/models/iris/infer", json=body)).json()["outputs"]
        assert out[0]["data"] == expected
        v1 = await client.post(
            "/v1/models/iris:predict", json={"instances": rows.to_numpy().tolist()}
        )
        assert v1.json()["predictions"] == expected
        meta = (await client.get("/v2/models/iris")).json()
        assert meta["platform"] == "onnxruntime" and meta["parameters"]["backend"] == "onnx"
        metrics = (await client.get("/metrics")).text
        assert "modelwerk_model_predictions_total{" in metrics


@pytest.mark.parametrize(
    ("method", "path", "body"), [c[1:4] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_requests_get_the_same_answer_from_both_backends(
    iris: Artifact,
    iris_model: LoadedModel,
    iris_onnx: Compiled,
    onnx_model: LoadedModel,
    client_for: Client,
    method: str,
    path: str,
    body: Any,
) -> None:
    """Decoding happens before the backend: a compiled model sees only valid matrices."""
    answers = []
    for app in (
        create_app(iris.settings(), iris_model),
        create_app(iris_onnx.settings(), onnx_model),
    ):
        async with client_for(app) as client:
            response = await client.request(method, path, json=body)
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
    assert 400 <= answers[0][0] < 500


def test_a_compiled_only_load_never_opens_the_pickle(tmp_path: Path, iris_forest: Artifact) -> None:
    """The joblib file is replaced by a pickle that would leave a mark if unpickled: the onnx
    backend loads (the joblib backend is refused by the hash, as always)."""
    import shutil

    directory = tmp_path / "model"
    shutil.copytree(iris_forest.directory, directory)
    moved = dataclasses.replace(iris_forest, directory=directory)
    compiled = compile_artifact(moved)
    mark = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self) -> Any:
            return (os.mkdir, (str(mark),))

    (directory / "model.joblib").write_bytes(pickle.dumps(Payload()))
    model = load_model(compiled.settings(model_card_uri=str(directory / MODEL_CARD_FILE)))
    assert model.backend.name == "onnx"
    assert not mark.exists()
    with pytest.raises(ModelLoadError, match="sha256"):
        load_model(moved.settings(backend="joblib"))
    assert not mark.exists()


def test_a_corrupted_compiled_model_is_refused_by_its_sha256(
    tmp_path: Path, iris_forest: Artifact
) -> None:
    import shutil

    directory = tmp_path / "model"
    shutil.copytree(iris_forest.directory, directory)
    compiled = compile_artifact(dataclasses.replace(iris_forest, directory=directory))
    path = Path(compiled.uri)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    settings = compiled.settings(model_card_uri=str(directory / MODEL_CARD_FILE))
    with pytest.raises(ModelLoadError, match=r"refusing to load .*model\.onnx: its sha256 is"):
        load_model(settings)


def test_the_onnx_backend_needs_a_verified_compiled_model(
    iris: Artifact, iris_onnx: Compiled
) -> None:
    with pytest.raises(ModelLoadError, match="no verified compiled model"):
        load_model(iris.settings(backend="onnx"))
    with pytest.raises(ModelLoadError, match="does not describe a verified compiled model"):
        load_model(iris_onnx.settings(compiled_sha256="0" * 64))


def test_threads_are_configurable(iris_onnx: Compiled) -> None:
    model = load_model(iris_onnx.settings(intra_op_threads=2))
    x = iris_onnx.artifact.frame.to_numpy(dtype=float)
    pred, _ = model.predict(x, False)
    assert pred.tolist() == iris_onnx.artifact.estimator.predict(iris_onnx.artifact.frame).tolist()


async def test_text_inputs_are_fed_per_column(
    artifact_root: Path, mixed: Artifact, client_for: Client
) -> None:
    compiled = compile_artifact(mixed)
    model = load_model(compiled.settings())
    assert model.backend.name == "onnx" and not model.numeric
    rows = mixed.frame.iloc[::7]
    async with client_for(create_app(compiled.settings(), model)) as client:
        response = await client.post(
            "/v2/models/mixed/infer", json={"rows": rows.to_dict(orient="records")}
        )
    assert response.json()["outputs"][0]["data"] == mixed.estimator.predict(rows).tolist()


def test_regression(artifact_root: Path, diabetes: Artifact) -> None:
    compiled = compile_artifact(diabetes)
    model = load_model(compiled.settings())
    pred, proba = model.predict(diabetes.frame.to_numpy(dtype=float), True)
    assert proba is None and pred.dtype == np.float64
    np.testing.assert_allclose(pred, diabetes.estimator.predict(diabetes.frame), rtol=1e-9)


def test_a_compiled_model_needs_no_matching_scikit_learn(
    tmp_path: Path, iris_forest: Artifact
) -> None:
    """A pickle from another scikit-learn minor is refused; its verified compilation is not."""
    import shutil

    from modelwerk.runtime.server.compatibility import IncompatibleModel

    directory = tmp_path / "model"
    shutil.copytree(iris_forest.directory, directory)
    compiled = compile_artifact(dataclasses.replace(iris_forest, directory=directory))
    card_path = directory / MODEL_CARD_FILE
    card = ModelCard.model_validate_json(card_path.read_text())
    old = card.artifact.model_copy(update={"framework_version": "0.20.4"})
    card_path.write_text(card.model_copy(update={"artifact": old}).model_dump_json(by_alias=True))
    settings = compiled.settings(model_card_uri=str(card_path))
    assert load_model(settings).backend.name == "onnx"
    with pytest.raises(IncompatibleModel):
        load_model(compiled.settings(model_card_uri=str(card_path), backend="joblib"))


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
async def test_boosted_trees_are_served_compiled(
    artifact_root: Path, client_for: Client, family: str
) -> None:
    """XGBoost and LightGBM behind a scaler, compiled with onnxmltools' converters: the onnx
    backend answers the original's labels and probabilities over HTTP."""
    from lightgbm import LGBMClassifier
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    boosted = (
        XGBClassifier(n_estimators=30, n_jobs=1)
        if family == "xgboost"
        else LGBMClassifier(n_estimators=30, n_jobs=1, verbose=-1)
    )
    data = load_iris(as_frame=True)
    estimator = Pipeline([("scale", StandardScaler()), ("boosted", boosted)])
    artifact = write_artifact(
        artifact_root, f"iris-{family}", estimator, data.data, data.target, "classification"
    )
    compiled = compile_artifact(artifact)
    model = load_model(compiled.settings())
    assert model.backend.name == "onnx" and model.classes == [0, 1, 2]
    rows = artifact.frame.iloc[::2]
    wanted = [{"name": "predict"}, {"name": "probabilities"}]
    async with client_for(create_app(compiled.settings(), model)) as client:
        response = await client.post(
            f"/v2/models/iris-{family}/infer", json=v2_named(rows, outputs=wanted)
        )
    out = response.json()["outputs"]
    assert out[0]["data"] == estimator.predict(rows).tolist()
    expected = estimator.predict_proba(rows)
    got = np.asarray(out[1]["data"]).reshape(expected.shape)
    np.testing.assert_allclose(got, expected, atol=1e-5)
