"""XGBClassifier on text labels: trained through the trainer, published, loaded by the
restricted loader and by both server backends, compiled with the labels in the graph, and
answering iris's species names over V2 and V1."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest

from modelwerk.runtime.byo import safe_load
from modelwerk.runtime.data import load
from modelwerk.runtime.server.app import create_app
from modelwerk.runtime.server.model import LoadedModel, load_model
from modelwerk.runtime.server.settings import ServerSettings
from modelwerk.runtime.trainer import job
from modelwerk.runtime.trainer.xgb_labels import LabelledXGBClassifier

from .test_trainer import card_of, train, validated

SPECIES = ["setosa", "versicolor", "virginica"]


@pytest.fixture(scope="module")
def species_csv(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Iris with the species names as the target, as a user's CSV would hold them."""
    frame = load.load_builtin("iris")
    frame["target"] = np.asarray(SPECIES, dtype=object).take(frame["target"].to_numpy())
    path = tmp_path_factory.mktemp("species") / "iris.csv"
    frame.to_csv(path, index=False)
    return f"file://{path}"


@pytest.fixture
def trained(root: str, species_csv: str) -> tuple[job.DatasetInput, job.Outcome]:
    data = validated(root, uri=species_csv, format="csv")
    outcome = train(
        root,
        data,
        estimator={"name": "XGBClassifier", "params": {"n_estimators": 40}},
        features={"scaling": "standard"},
        gates=[{"metric": "accuracy", "threshold": 0.85}],
    )
    assert outcome.ok, outcome.result
    return data, outcome


def settings(outcome: job.Outcome, **extra: Any) -> ServerSettings:
    result = outcome.result
    return ServerSettings(
        model_uri=result["artifact"]["uri"],
        sha256=result["artifact"]["sha256"],
        model_name="iris",
        model_card_uri=result["modelCardUri"],
        drift_enabled=False,
        **extra,
    )


def test_the_trainer_fits_and_registers_text_labels(
    trained: tuple[job.DatasetInput, job.Outcome],
) -> None:
    data, outcome = trained
    result = outcome.result
    assert result["metrics"]["accuracy"] >= 0.85 and "roc_auc" in result["metrics"]
    assert result["signature"]["classes"] == SPECIES
    assert result["signature"]["outputs"][0] == ["predict", "BYTES", [-1]]
    card = card_of(outcome)
    assert card.evaluation is not None and card.evaluation.labels == SPECIES
    compiled = result["compiled"]
    assert compiled["verified"] is True, compiled
    assert compiled["labelAgreement"] == 1.0 and compiled["maxProbabilityDiff"] <= 1e-5

    # the published pickle, through the restricted loader of trainer containers' models
    frame = job.load(data)
    x = frame.drop(columns="target")
    with open(result["artifact"]["uri"].removeprefix("file://"), "rb") as handle:
        raw = handle.read()
    restricted = safe_load.loads(raw)
    assert type(restricted.steps[-1][1]) is LabelledXGBClassifier
    predicted = restricted.predict(x)
    assert set(predicted) == set(SPECIES)
    assert (predicted == frame["target"]).mean() > 0.95
    assert list(restricted.classes_) == SPECIES
    np.testing.assert_array_equal(predicted, joblib.load(io.BytesIO(raw)).predict(x))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_both_backends_answer_the_species_names(
    trained: tuple[job.DatasetInput, job.Outcome],
) -> None:
    data, outcome = trained
    compiled = outcome.result["compiled"]
    rows = job.load(data).drop(columns="target").iloc[::7]
    answers: dict[str, Any] = {}
    for backend, extra in (
        ("joblib", {"backend": "joblib"}),
        ("onnx", {"compiled_uri": compiled["uri"], "compiled_sha256": compiled["sha256"]}),
    ):
        model: LoadedModel = load_model(settings(outcome, **extra))
        assert model.backend.name == backend and model.classes == SPECIES
        app = create_app(settings(outcome, **extra), model)
        body = {
            "inputs": [
                {"name": c, "datatype": "FP64", "shape": [len(rows)], "data": rows[c].tolist()}
                for c in rows.columns
            ],
            "outputs": [{"name": "predict"}, {"name": "probabilities"}],
        }
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            v2 = (await client.post("/v2/models/iris/infer", json=body)).json()
            v1 = (
                await client.post(
                    "/v1/models/iris:predict", json={"instances": rows.to_numpy().tolist()}
                )
            ).json()
            meta = (await client.get("/v2/models/iris")).json()
        predict, probabilities = v2["outputs"]
        assert predict["datatype"] == "BYTES" and set(predict["data"]) <= set(SPECIES)
        assert probabilities["shape"] == [len(rows), 3]
        assert v1["predictions"] == predict["data"]
        assert meta["parameters"]["classes"] == SPECIES
        answers[backend] = (predict["data"], np.asarray(probabilities["data"]))
    assert answers["onnx"][0] == answers["joblib"][0]
    np.testing.assert_allclose(answers["onnx"][1], answers["joblib"][1], atol=1e-5)


@pytest.mark.parametrize(
    "labels",
    [[2019, 2020, 2024], [False, True], ["no", "yes"], [0, 1, 2]],
    ids=["years", "booleans", "binary-text", "codes"],
)
def test_any_labels_are_learnt_and_answered(labels: list[Any]) -> None:
    from sklearn.datasets import load_iris

    x, codes = load_iris(return_X_y=True)
    codes = codes % len(labels)
    y = np.asarray(labels, dtype=object if isinstance(labels[0], str) else None).take(codes)
    model = LabelledXGBClassifier(n_estimators=10, n_jobs=1).fit(x, y)
    assert list(model.classes_) == sorted(labels)
    predicted = model.predict(x)
    assert predicted.dtype == np.asarray(labels).dtype or predicted.dtype == object
    assert set(predicted.tolist()) <= set(labels) and (predicted == y).mean() > 0.8
    assert model.predict_proba(x).shape == (len(x), len(labels))
    margins = model.predict(x, output_margin=True)
    assert np.issubdtype(margins.dtype, np.floating)


def test_the_restricted_loader_admits_only_this_class_of_modelwerk(tmp_path: Path) -> None:
    from modelwerk.runtime.artifacts import TensorSpec

    buffer = io.BytesIO()
    joblib.dump(TensorSpec(name="x", datatype="FP64"), buffer)
    with pytest.raises(safe_load.UnsafeModel, match=r"modelwerk\.runtime\.artifacts"):
        safe_load.loads(buffer.getvalue())
    model = LabelledXGBClassifier(n_estimators=3, n_jobs=1).fit(
        pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}), ["b", "a", "b", "a"]
    )
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    assert list(safe_load.loads(buffer.getvalue()).classes_) == ["a", "b"]
