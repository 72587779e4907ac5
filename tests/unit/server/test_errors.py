"""Every kind of bad request gets the right 4xx and a message that says what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from modelwerk.runtime.server.app import ModelServer, create_app
from modelwerk.runtime.server.model import load_model

from .helpers import Artifact

pytestmark = pytest.mark.anyio

Client = Callable[[ModelServer], httpx.AsyncClient]
COLS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def named(n: int = 2, **changes: Any) -> dict[str, Any]:
    inputs = [{"name": c, "shape": [n], "datatype": "FP64", "data": [1.0] * n} for c in COLS]
    for key, value in changes.items():
        index, field = key.split("__")
        if value is None:
            inputs[int(index)].pop(field)
        else:
            inputs[int(index)][field] = value
    return {"inputs": inputs}


INFER = "/v2/models/iris/infer"
CASES: list[tuple[str, str, str, Any, int, str]] = [
    ("unknown model", "POST", "/v2/models/nope/infer", named(), 404, "model 'nope' not found"),
    ("unknown version", "POST", "/v2/models/iris/versions/v9/infer", named(), 404, "version 'v9'"),
    ("unknown model metadata", "GET", "/v2/models/nope", None, 404, "not found"),
    (
        "unknown v1 model",
        "POST",
        "/v1/models/nope:predict",
        {"instances": [[1, 2, 3, 4]]},
        404,
        "nope",
    ),
    ("unknown path", "GET", "/v3/whatever", None, 404, "no such path"),
    ("unknown model verb", "GET", "/v2/models/iris/explain", None, 404, "no such path"),
    ("wrong method", "GET", INFER, None, 405, "use POST"),
    ("not an object", "POST", INFER, [1, 2], 400, "must be a JSON object"),
    ("no inputs", "POST", INFER, {"id": "x"}, 400, "'inputs' must be a non-empty list"),
    (
        "wrong shape",
        "POST",
        INFER,
        named(**{"0__shape": [2, 2]}),
        400,
        "shape must be [n] or [n, 1]",
    ),
    ("shape vs data", "POST", INFER, named(**{"1__shape": [3]}), 400, "needs 3 values, got 2"),
    ("bad shape", "POST", INFER, named(**{"1__shape": "2"}), 400, "'shape' must be"),
    (
        "lengths differ",
        "POST",
        INFER,
        named(**{"2__shape": [3], "2__data": [1.0, 2.0, 3.0]}),
        400,
        "different lengths",
    ),
    ("missing column", "POST", INFER, {"inputs": named()["inputs"][:3]}, 400, "missing inputs"),
    ("unknown column", "POST", INFER, named(**{"0__name": "sepal"}), 400, "unknown input 'sepal'"),
    ("duplicate column", "POST", INFER, named(**{"1__name": COLS[0]}), 400, "appears twice"),
    (
        # Found by fuzzing (test_fuzz.py): an unhashable datatype used to be a 500.
        "datatype not a string",
        "POST",
        INFER,
        named(**{"0__datatype": ["FP64"]}),
        400,
        "unsupported datatype ['FP64']",
    ),
    (
        "wrong datatype",
        "POST",
        INFER,
        named(**{"0__datatype": "BYTES", "0__data": ["a", "b"]}),
        400,
        "does not fit the model's FP64 input",
    ),
    (
        "unsupported datatype",
        "POST",
        INFER,
        named(**{"0__datatype": "FLOAT"}),
        400,
        "unsupported datatype 'FLOAT'",
    ),
    (
        "strings as numbers",
        "POST",
        INFER,
        named(**{"3__data": ["1.0", "2.0"]}),
        400,
        "needs numbers, but the data holds strings",
    ),
    (
        "objects as numbers",
        "POST",
        INFER,
        named(**{"3__data": [1.0, {"a": 1}]}),
        400,
        "needs numbers",
    ),
    ("booleans as FP64", "POST", INFER, named(**{"3__data": [True, False]}), 400, "booleans"),
    (
        "fractions as INT64",
        "POST",
        INFER,
        named(**{"3__datatype": "INT64", "3__data": [1.5, 2]}),
        400,
        "needs integers",
    ),
    ("ragged data", "POST", INFER, named(**{"3__data": [[1.0], [1.0, 2.0]]}), 400, "regular"),
    ("no data", "POST", INFER, named(**{"0__data": None}), 400, "has no 'data'"),
    (
        "no name",
        "POST",
        INFER,
        {"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]},
        400,
        "needs a 'name'",
    ),
    ("empty batch", "POST", INFER, named(0), 400, "empty batch"),
    ("empty rows", "POST", INFER, {"rows": []}, 400, "empty batch"),
    (
        "2-D wrong width",
        "POST",
        INFER,
        {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
        400,
        "shape [n, 4]",
    ),
    (
        "2-D too little data",
        "POST",
        INFER,
        {
            "inputs": [
                {"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}
            ]
        },
        400,
        "needs 8 values",
    ),
    (
        "row missing column",
        "POST",
        INFER,
        {"rows": [dict.fromkeys(COLS[:3], 1.0)]},
        400,
        "missing columns ['petal width (cm)']",
    ),
    (
        "row unknown column",
        "POST",
        INFER,
        {"rows": [{**dict.fromkeys(COLS, 1.0), "x": 1}]},
        400,
        "unknown columns ['x']",
    ),
    ("row not an object", "POST", INFER, {"rows": [[1, 2, 3, 4]]}, 400, "must be an object"),
    ("rows and inputs", "POST", INFER, {"rows": [], **named()}, 400, "either 'inputs' or 'rows'"),
    (
        "unknown output",
        "POST",
        INFER,
        {**named(), "outputs": [{"name": "explain"}]},
        400,
        "unknown output 'explain'",
    ),
    ("bad id", "POST", INFER, {**named(), "id": {"a": 1}}, 400, "'id' must be a string"),
    ("v1 no instances", "POST", "/v1/models/iris:predict", {"inputs": []}, 400, "'instances'"),
    (
        "v1 short row",
        "POST",
        "/v1/models/iris:predict",
        {"instances": [[1, 2, 3]]},
        400,
        "every row needs 4 values",
    ),
    (
        "v1 strings",
        "POST",
        "/v1/models/iris:predict",
        {"instances": [["a", "b", "c", "d"]]},
        400,
        "strings",
    ),
    ("v1 empty", "POST", "/v1/models/iris:predict", {"instances": []}, 400, "empty batch"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
async def test_bad_request(
    iris_app: ModelServer,
    client_for: Client,
    method: str,
    path: str,
    body: Any,
    status: int,
    message: str,
) -> None:
    async with client_for(iris_app) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


async def test_wrong_method_names_the_allowed_one(
    iris_app: ModelServer, client_for: Client
) -> None:
    async with client_for(iris_app) as client:
        response = await client.delete("/v2/models/iris")
    assert response.status_code == 405 and response.headers["allow"] == "GET"


async def test_malformed_json(iris_app: ModelServer, client_for: Client) -> None:
    async with client_for(iris_app) as client:
        broken = await client.post(
            INFER, content=b'{"inputs": [', headers={"content-type": "application/json"}
        )
        empty = await client.post(INFER, content=b"")
    assert broken.status_code == 400 and "malformed JSON" in broken.json()["error"]
    assert empty.status_code == 400 and "empty request body" in empty.json()["error"]


async def test_oversized_body(iris: Artifact, iris_model: Any, client_for: Client) -> None:
    app = create_app(iris.settings(max_request_bytes=4096), iris_model)

    async def chunks() -> Any:  # no Content-Length: the limit holds while reading, too
        for _ in range(10):
            yield b" " * 1000

    big = named(300)
    async with client_for(app) as client:
        declared = await client.post(INFER, json=big)
        streamed = await client.post(INFER, content=chunks())
        fine = await client.post(INFER, json=named(2))
    assert declared.status_code == 413 and "larger than 4096 bytes" in declared.json()["error"]
    assert streamed.status_code == 413
    assert fine.status_code == 200


async def test_model_refusal_is_422_and_isolated(mixed: Artifact, client_for: Client) -> None:
    """An unseen category makes the model raise: that request gets 422, its batch-mates 200."""
    app = create_app(mixed.settings(max_batch_delay_ms=50), load_model(mixed.settings()))
    good = mixed.frame.iloc[:3].to_dict(orient="records")
    bad = [{**good[0], "colour": "green"}]
    async with client_for(app) as client:
        import asyncio

        results = await asyncio.gather(
            *[client.post("/v2/models/mixed/infer", json={"rows": good}) for _ in range(3)],
            client.post("/v2/models/mixed/infer", json={"rows": bad}),
        )
    assert [r.status_code for r in results] == [200, 200, 200, 422]
    assert "cannot predict this input" in results[-1].json()["error"]
    assert (
        results[0].json()["outputs"][0]["data"]
        == mixed.estimator.predict(mixed.frame.iloc[:3]).tolist()
    )


async def test_not_ready_while_loading(iris: Artifact, client_for: Client) -> None:
    app = create_app(iris.settings())  # no model: the ASGI lifespan would load it
    async with client_for(app) as client:
        assert (await client.get("/v2/health/live")).status_code == 200
        assert (await client.get("/v2/health/ready")).status_code == 503
        assert (await client.post(INFER, json=named())).status_code == 503
