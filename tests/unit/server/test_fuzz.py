"""Fuzzed requests against the real model server app: malformed V2/V1 payloads, feedback,
raw bytes and odd paths get a 4xx with a JSON error, never a 5xx (in-process ASGI via httpx).

One app and one event loop serve every example (a blocking portal in a thread), so hundreds
of examples run in seconds and the app's state (batcher, drift window) sees them all, as a
long-running server would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelwerk.runtime.server.app import create_app
from modelwerk.runtime.server.model import LoadedModel

from .helpers import Artifact

COLS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
LIMIT = 64 * 1024
V2 = "/v2/models/iris/infer"
V1 = "/v1/models/iris:predict"
FEEDBACK = "/v2/models/iris/feedback"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes
    malformed: bool
    """True when no reading of the request can be valid: the answer must be a 4xx."""
    content_type: str = "application/json"


@pytest.fixture(scope="module")
def served(iris: Artifact, iris_model: LoadedModel) -> Iterator[tuple[BlockingPortal, Any]]:
    with start_blocking_portal() as portal:
        app = create_app(iris.settings(max_request_bytes=LIMIT), iris_model)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        yield portal, client
        portal.call(client.aclose)


def _json(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)
shapes = st.one_of(
    st.lists(st.integers(min_value=-(2**63), max_value=2**63), max_size=4),
    anything,
    st.sampled_from([[1], [1, 4], [4, 1], [0], [10**12], [-1], [2, 2, 1], [], "1", None]),
)
datatypes = st.one_of(
    st.sampled_from(["FP64", "FP32", "INT64", "INT32", "BOOL", "BYTES", "FP16", "fp64", ""]),
    anything,
)


@st.composite
def v2_tensor(draw: st.DrawFn) -> dict[str, Any]:
    tensor: dict[str, Any] = {
        "name": draw(st.one_of(st.sampled_from([*COLS, "input-0"]), st.text(max_size=12))),
        "shape": draw(shapes),
        "datatype": draw(datatypes),
        "data": draw(st.one_of(st.lists(scalars, max_size=8), anything)),
    }
    for key in draw(st.sets(st.sampled_from(list(tensor)), max_size=2)):
        del tensor[key]
    if draw(st.booleans()):
        tensor["parameters"] = draw(anything)
    return tensor


@st.composite
def v2_call(draw: st.DrawFn) -> Call:
    body: dict[str, Any] = {}
    if draw(st.booleans()):
        body["inputs"] = draw(st.one_of(st.lists(v2_tensor(), max_size=6), anything))
    if draw(st.booleans()):
        body["rows"] = draw(
            st.one_of(
                st.lists(st.dictionaries(st.sampled_from([*COLS, "x"]), scalars), max_size=4),
                anything,
            )
        )
    for key in draw(st.sets(st.sampled_from(["id", "outputs", "parameters"]), max_size=3)):
        body[key] = draw(anything)
    return Call("POST", V2, _json(body), malformed=False)


@st.composite
def v1_call(draw: st.DrawFn) -> Call:
    key = draw(st.sampled_from(["instances", "inputs", "instance", "data"]))
    rows = st.lists(st.one_of(st.lists(scalars, max_size=6), anything), max_size=5)
    body = {key: draw(st.one_of(rows, anything))}
    return Call("POST", V1, _json(body), malformed=key in ("instance", "data"))


@st.composite
def feedback_call(draw: st.DrawFn) -> Call:
    body = draw(
        st.one_of(
            st.fixed_dictionaries({"id": anything, "label": anything}),
            st.fixed_dictionaries({"items": st.lists(anything, max_size=4)}),
            anything,
        )
    )
    return Call("POST", FEEDBACK, _json(body), malformed=False)


@st.composite
def raw_call(draw: st.DrawFn) -> Call:
    """Bodies no JSON reader accepts: bytes, broken or truncated JSON, absurd nesting."""
    path = draw(st.sampled_from([V2, V1, FEEDBACK]))
    depth = draw(st.integers(min_value=1, max_value=200_000))
    body = draw(
        st.one_of(
            st.binary(max_size=200).filter(lambda b: not _parses(b)),
            st.just(b"[" * depth),
            st.just(b'{"inputs": ' + b"[" * depth + b"]" * depth + b"}"),
            st.just(b'{"inputs": [{"name": "a", "shape": [1], "data": [1e999999]}]'),
            st.just('{"inputs": "\ud800"}'.encode("utf-8", "surrogatepass")),
            st.just(b"\xff\xfe{}"),
            st.just(b"null"),
            st.just(b""),
        )
    )
    content_type = draw(st.sampled_from(["application/json", "text/plain", "", 'x/y; q="1"']))
    return Call("POST", path, body, malformed=True, content_type=content_type)


def _parses(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


@st.composite
def path_call(draw: st.DrawFn) -> Call:
    name = draw(
        st.one_of(
            st.text(max_size=30).map(lambda t: quote(t, safe="")),
            st.sampled_from(["..", "%2e%2e", "iris/../iris", "%C3%AFris", "iris%00", "%"]),
        )
    )
    suffix = draw(st.sampled_from(["", "/infer", "/ready", "/versions/x/infer", ":predict"]))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    return Call(method, f"/v2/models/{name}{suffix}", b"{}", malformed=False)


oversized = st.integers(min_value=LIMIT + 1, max_value=4 * LIMIT).map(
    lambda n: Call("POST", V2, b'{"inputs": [' + b" " * n + b"]}", malformed=True)
)


def _send(served: tuple[BlockingPortal, Any], call: Call) -> httpx.Response:
    portal, client = served
    headers = {"content-type": call.content_type} if call.content_type else {}
    send = partial(client.request, call.method, call.path, content=call.body, headers=headers)
    response: httpx.Response = portal.call(send)
    return response


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(call=st.one_of(v2_call(), v1_call(), feedback_call(), raw_call(), path_call(), oversized))
def test_no_request_makes_the_server_fail(served: tuple[BlockingPortal, Any], call: Call) -> None:
    response = _send(served, call)
    assert response.status_code < 500, (call, response.status_code, response.text[:300])
    if call.malformed:
        assert 400 <= response.status_code < 500, (call, response.status_code)
    if response.status_code >= 400 and response.status_code != 405:
        assert "error" in response.json(), response.text[:300]


def test_the_fuzzer_reaches_success_as_well_as_refusals(
    served: tuple[BlockingPortal, Any],
) -> None:
    # The strategies produce valid requests too, so a 4xx is about the request, not the path.
    good = {"inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]} for c in COLS]}
    assert _send(served, Call("POST", V2, _json(good), malformed=False)).status_code == 200
    rows = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    assert _send(served, Call("POST", V1, _json(rows), malformed=False)).status_code == 200
