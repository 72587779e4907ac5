"""The HTTP API in-process: V2 (named tensors, 2-D tensor, rows), V1, metadata and health."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import pytest

from modelwerk.runtime.server.app import ModelServer, create_app
from modelwerk.runtime.server.model import load_model

from .helpers import Artifact, v2_matrix, v2_named

pytestmark = pytest.mark.anyio

Client = Callable[[ModelServer], httpx.AsyncClient]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_health_and_metadata(
    iris_app: ModelServer, client_for: Client, iris: Artifact
) -> None:
    async with client_for(iris_app) as client:
        assert (await client.get("/v2/health/live")).json() == {"live": True}
        ready = await client.get("/v2/health/ready")
        assert ready.status_code == 200 and ready.json() == {"ready": True}
        server = (await client.get("/v2")).json()
        assert server["name"] == "modelwerk" and "version" in server
        meta = (await client.get("/v2/models/iris")).json()
        assert meta["name"] == "iris" and meta["versions"] == ["v1"]
        assert [i["name"] for i in meta["inputs"]] == list(iris.frame.columns)
        assert all(i["datatype"] == "FP64" for i in meta["inputs"])
        assert {o["name"] for o in meta["outputs"]} == {"predict", "predict_proba", "probabilities"}
        assert meta["parameters"]["classes"] == [0, 1, 2]
        assert meta["parameters"]["sha256"] == iris.sha256
        assert (await client.get("/v2/models/iris/versions/v1")).json() == meta
        model_ready = await client.get("/v2/models/iris/ready")
        assert model_ready.json() == {"name": "iris", "ready": True}
        assert (await client.get("/v2/models/iris/versions/v1/ready")).status_code == 200
        assert (await client.get("/v1/models/iris")).json() == {"name": "iris", "ready": True}


async def test_v2_named_tensors(iris_app: ModelServer, client_for: Client, iris: Artifact) -> None:
    rows = iris.frame.iloc[::10]
    async with client_for(iris_app) as client:
        response = await client.post("/v2/models/iris/infer", json=v2_named(rows, id="req-1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "iris" and body["model_version"] == "v1" and body["id"] == "req-1"
    assert response.headers["x-request-id"] == "req-1"
    (out,) = body["outputs"]
    assert out["name"] == "predict" and out["datatype"] == "INT64" and out["shape"] == [len(rows)]
    assert out["data"] == iris.estimator.predict(rows).tolist()


async def test_v2_matrix_and_probabilities(
    iris_app: ModelServer, client_for: Client, iris: Artifact
) -> None:
    rows = iris.frame.iloc[:7]
    async with client_for(iris_app) as client:
        by_parameter = await client.post(
            "/v2/models/iris/versions/v1/infer",
            json=v2_matrix(rows, parameters={"probabilities": True}),
        )
        by_output = await client.post(
            "/v2/models/iris/infer",
            json=v2_matrix(rows, outputs=[{"name": "predict"}, {"name": "probabilities"}]),
        )
    for response in (by_parameter, by_output):
        assert response.status_code == 200, response.text
        predict, proba = response.json()["outputs"]
        assert predict["data"] == iris.estimator.predict(rows).tolist()
        assert proba["name"] == "probabilities" and proba["shape"] == [7, 3]
        assert proba["parameters"]["classes"] == [0, 1, 2]
        expected = iris.estimator.predict_proba(rows)
        np.testing.assert_allclose(np.reshape(proba["data"], proba["shape"]), expected)


async def test_rows_and_v1(iris_app: ModelServer, client_for: Client, iris: Artifact) -> None:
    rows = iris.frame.iloc[40:60]
    expected = iris.estimator.predict(rows).tolist()
    records = rows.to_dict(orient="records")
    async with client_for(iris_app) as client:
        v2_rows = await client.post("/v2/models/iris/infer", json={"rows": records})
        v1_dicts = await client.post("/v1/models/iris:predict", json={"instances": records})
        v1_lists = await client.post(
            "/v1/models/iris:predict",
            json={"instances": rows.to_numpy().tolist()},
            headers={"X-Request-Id": "from-header"},
        )
    assert v2_rows.json()["outputs"][0]["data"] == expected
    assert v1_dicts.json() == {"predictions": expected}
    assert v1_lists.json() == {"predictions": expected}
    assert v1_lists.headers["x-request-id"] == "from-header"


async def test_generated_request_id(
    iris_app: ModelServer, client_for: Client, iris: Artifact
) -> None:
    async with client_for(iris_app) as client:
        response = await client.post("/v2/models/iris/infer", json=v2_named(iris.frame.iloc[:1]))
    rid = response.json()["id"]
    assert len(rid) == 32 and response.headers["x-request-id"] == rid


async def test_regressor(diabetes: Artifact, client_for: Client) -> None:
    app = create_app(diabetes.settings(), load_model(diabetes.settings()))
    rows = diabetes.frame.iloc[:5]
    async with client_for(app) as client:
        response = await client.post("/v2/models/diabetes/infer", json=v2_matrix(rows))
        refused = await client.post(
            "/v2/models/diabetes/infer", json=v2_matrix(rows, parameters={"probabilities": True})
        )
    (out,) = response.json()["outputs"]
    assert out["datatype"] == "FP64"
    np.testing.assert_allclose(out["data"], diabetes.estimator.predict(rows))
    assert refused.status_code == 400 and "no probabilities" in refused.json()["error"]


async def test_mixed_types(mixed: Artifact, client_for: Client) -> None:
    app = create_app(mixed.settings(), load_model(mixed.settings()))
    rows = mixed.frame.iloc[::15]
    inputs = [
        {
            "name": c,
            "shape": [len(rows)],
            "datatype": "BYTES" if c == "colour" else "FP64",
            "data": rows[c].tolist(),
        }
        for c in rows.columns
    ]
    async with client_for(app) as client:
        named = await client.post("/v2/models/mixed/infer", json={"inputs": inputs})
        by_rows = await client.post(
            "/v2/models/mixed/infer", json={"rows": rows.to_dict(orient="records")}
        )
        matrix = await client.post(
            "/v2/models/mixed/infer", json=v2_matrix(rows.drop(columns="colour"))
        )
    expected = mixed.estimator.predict(rows).tolist()
    assert named.status_code == 200, named.text
    assert named.json()["outputs"][0]["data"] == expected
    assert by_rows.json()["outputs"][0]["data"] == expected
    assert matrix.status_code == 400
