"""Shadow traffic between real servers on loopback: copies, comparisons, drops, labels."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from modelwerk.runtime.server.app import create_app
from modelwerk.runtime.server.model import load_model
from modelwerk.runtime.server.shadow import ShadowMirror, ShadowSettings, predictions, wrap

from .helpers import Artifact, v2_matrix, write_artifact
from .test_experiment import free_port, metric, serving, silent_peer


@pytest.fixture(scope="module")
def constant_iris(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """A candidate that always predicts the most frequent class: agrees on about a third."""
    data = load_iris(as_frame=True)
    root = tmp_path_factory.mktemp("constant")
    return write_artifact(
        root,
        "iris",
        Pipeline([("constant", DummyClassifier(strategy="most_frequent"))]),
        data.data,
        data.target,
        "classification",
    )


def mirror(stable: Artifact, port: int, **settings: Any) -> ShadowMirror:
    server = create_app(stable.settings(version="v1"), load_model(stable.settings(version="v1")))
    shadow_settings = ShadowSettings(url=f"http://127.0.0.1:{port}", version="v2", **settings)
    wrapped = wrap(server, shadow_settings, chance=random.Random(1).random)
    assert isinstance(wrapped, ShadowMirror)
    return wrapped


class Candidate:
    """The candidate's pod: a real server, or nothing at all on the port."""

    def __init__(self, artifact: Artifact | None) -> None:
        self.port = free_port()
        self.artifact = artifact


async def drain(m: ShadowMirror) -> None:
    for _ in range(500):
        if m._queue.empty() and m._queue._unfinished_tasks == 0:  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the shadow queue did not drain")


@pytest.fixture
async def pair(
    iris: Artifact, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[str, ShadowMirror]]:
    candidate: Artifact = request.getfixturevalue(request.param)
    port, stable_port = free_port(), free_port()
    shadow_app = create_app(
        candidate.settings(version="v2"), load_model(candidate.settings(version="v2"))
    )
    m = mirror(iris, port)
    async with serving(shadow_app, port), serving(m, stable_port):
        yield f"http://127.0.0.1:{stable_port}", m


@pytest.mark.parametrize("pair", ["iris"], indirect=True)
async def test_an_identical_candidate_agrees_on_every_row(
    iris: Artifact, pair: tuple[str, ShadowMirror]
) -> None:
    base, m = pair
    async with httpx.AsyncClient(timeout=10) as client:
        for i in range(30):
            r = await client.post(
                f"{base}/v2/models/iris/infer", json=v2_matrix(iris.frame.iloc[i * 5 : i * 5 + 3])
            )
            assert r.status_code == 200 and r.json()["model_version"] == "v1"
        await drain(m)
        text = (await client.get(f"{base}/metrics")).text
    assert metric(text, "modelwerk_shadow_requests_total", outcome="ok") == 30
    assert metric(text, "modelwerk_shadow_compared_rows_total") == 90
    assert metric(text, "modelwerk_shadow_agreed_rows_total") == 90
    assert metric(text, "modelwerk_shadow_request_seconds_count") == 30


@pytest.mark.parametrize("pair", ["constant_iris"], indirect=True)
async def test_a_different_candidate_disagrees_and_labels_say_who_was_right(
    iris: Artifact, pair: tuple[str, ShadowMirror]
) -> None:
    base, m = pair
    rows = iris.frame.sample(60, random_state=0)
    truth = iris.target.loc[rows.index].tolist()
    async with httpx.AsyncClient(timeout=10) as client:
        ids = []
        for i in range(60):
            r = await client.post(f"{base}/v2/models/iris/infer", json=v2_matrix(rows.iloc[[i]]))
            ids.append(r.json()["id"])
        await drain(m)
        feedback = [{"id": rid, "label": int(label)} for rid, label in zip(ids, truth, strict=True)]
        r = await client.post(f"{base}/v2/models/iris/feedback", json=feedback)
        assert r.status_code == 200
        text = (await client.get(f"{base}/metrics")).text
    compared = metric(text, "modelwerk_shadow_compared_rows_total")
    agreed = metric(text, "modelwerk_shadow_agreed_rows_total")
    assert compared == 60 and 5 < agreed < 40
    paired = {
        r: metric(text, "modelwerk_shadow_paired_rows_total", result=r)
        for r in ("both_right", "stable_only", "shadow_only", "both_wrong")
    }
    assert sum(paired.values()) == 60
    assert paired["stable_only"] > 20 and paired["shadow_only"] == 0  # the forest beats a constant


async def test_a_dead_candidate_costs_the_stable_answers_nothing(iris: Artifact) -> None:
    stable_port, dead = free_port(), free_port()
    m = mirror(iris, dead)
    async with serving(m, stable_port), httpx.AsyncClient(timeout=10) as client:
        for _ in range(10):
            r = await client.post(
                f"http://127.0.0.1:{stable_port}/v2/models/iris/infer",
                json=v2_matrix(iris.frame.head(1)),
            )
            assert r.status_code == 200
        await drain(m)
        text = (await client.get(f"http://127.0.0.1:{stable_port}/metrics")).text
    assert metric(text, "modelwerk_shadow_requests_total", outcome="error") == 10


async def test_a_slow_candidate_fills_the_queue_and_copies_are_dropped(iris: Artifact) -> None:
    """The candidate accepts and never answers: the copies time out, and what does not fit in
    the queue meanwhile is dropped, while the stable answers keep coming at once."""
    stable_port = free_port()
    loop = asyncio.get_running_loop()
    async with silent_peer() as port:
        m = mirror(iris, port, queue_size=2, concurrency=1, timeout_seconds=0.5)
        async with serving(m, stable_port), httpx.AsyncClient(timeout=10) as client:
            slowest = 0.0
            for _ in range(20):
                started = loop.time()
                r = await client.post(
                    f"http://127.0.0.1:{stable_port}/v2/models/iris/infer",
                    json=v2_matrix(iris.frame.head(1)),
                )
                slowest = max(slowest, loop.time() - started)
                assert r.status_code == 200
            await drain(m)
            text = (await client.get(f"http://127.0.0.1:{stable_port}/metrics")).text
    dropped = metric(text, "modelwerk_shadow_requests_total", outcome="dropped")
    timeouts = metric(text, "modelwerk_shadow_requests_total", outcome="timeout")
    assert dropped > 0 and timeouts > 0 and dropped + timeouts == 20
    assert slowest < 0.5  # no stable answer waited for a shadow's timeout


async def test_a_regressor_records_the_absolute_differences(tmp_path: Path) -> None:
    data = load_diabetes(as_frame=True)
    stable = write_artifact(
        tmp_path / "a",
        "diabetes",
        Pipeline([("ridge", Ridge(alpha=1.0))]),
        data.data,
        data.target,
        "regression",
    )
    other = write_artifact(
        tmp_path / "b",
        "diabetes",
        Pipeline([("ridge", Ridge(alpha=10.0))]),
        data.data,
        data.target,
        "regression",
    )
    port, stable_port = free_port(), free_port()
    shadow_app = create_app(other.settings(version="v2"), load_model(other.settings(version="v2")))
    m = mirror(stable, port)
    async with (
        serving(shadow_app, port),
        serving(m, stable_port),
        httpx.AsyncClient(timeout=10) as client,
    ):
        for i in range(10):
            await client.post(
                f"http://127.0.0.1:{stable_port}/v2/models/diabetes/infer",
                json=v2_matrix(data.data.iloc[i * 4 : i * 4 + 4]),
            )
        await drain(m)
        text = (await client.get(f"http://127.0.0.1:{stable_port}/metrics")).text
    assert metric(text, "modelwerk_shadow_abs_difference_count") == 40
    assert metric(text, "modelwerk_shadow_abs_difference_sum") > 0
    assert metric(text, "modelwerk_shadow_agreed_rows_total") == 0


def test_predictions_of_both_protocols() -> None:
    assert predictions(
        b'{"id": 7, "outputs": [{"name": "probabilities", "data": [1]}, {"name": "predict", "data": ["a"]}]}'
    ) == ("7", ["a"])
    assert predictions(b"not json") is None
    assert predictions(b"[1, 2]") is None
