"""Micro-batching: concurrent requests share predict calls and each gets exactly its rows back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import numpy as np
import pytest

from modelwerk.runtime.server.app import ModelServer, create_app
from modelwerk.runtime.server.backends.joblib import JoblibBackend
from modelwerk.runtime.server.batcher import BatcherClosed, MicroBatcher
from modelwerk.runtime.server.model import LoadedModel

from .helpers import Artifact, v2_matrix, v2_named

pytestmark = pytest.mark.anyio

Client = Callable[[ModelServer], httpx.AsyncClient]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CountingEstimator:
    """Wraps the real pipeline and counts predict calls and the rows they got."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[int] = []
        self.feature_names_in_ = inner.feature_names_in_
        self.n_features_in_ = inner.n_features_in_
        self.classes_ = inner.classes_

    def predict(self, x: Any) -> Any:
        self.calls.append(len(x))
        return self.inner.predict(x)

    def predict_proba(self, x: Any) -> Any:
        return self.inner.predict_proba(x)


async def test_concurrent_requests_are_merged(
    iris: Artifact, iris_model: LoadedModel, client_for: Client
) -> None:
    counting = CountingEstimator(iris.estimator)
    model = LoadedModel(
        name=iris_model.name,
        version=iris_model.version,
        sha256=iris_model.sha256,
        card=iris_model.card,
        backend=JoblibBackend(counting, iris_model.card),
        profile=iris_model.profile,
    )
    app = create_app(iris.settings(max_batch_size=64, max_batch_delay_ms=20), model)
    n = 40
    # every request its own rows (1 to 5 of them) and id, in all three request forms
    slices = [iris.frame.iloc[(7 * i) % 140 : (7 * i) % 140 + 1 + i % 5] for i in range(n)]
    bodies = []
    for i, rows in enumerate(slices):
        body = (v2_named, v2_matrix)[i % 2](rows, id=f"r{i}")
        if i % 3 == 0:
            body = {"id": f"r{i}", "rows": rows.to_dict(orient="records")}
        bodies.append(body)
    async with client_for(app) as client:
        responses = await asyncio.gather(
            *[client.post("/v2/models/iris/infer", json=b) for b in bodies]
        )
    assert len(counting.calls) < n, counting.calls
    assert sum(counting.calls) == sum(len(s) for s in slices)
    assert max(counting.calls) > 1
    for i, (rows, response) in enumerate(zip(slices, responses, strict=True)):
        body = response.json()
        assert body["id"] == f"r{i}"
        assert body["outputs"][0]["data"] == iris.estimator.predict(rows).tolist()


async def test_probabilities_only_for_who_asked(
    iris_app: ModelServer, client_for: Client, iris: Artifact
) -> None:
    rows = iris.frame.iloc[:2]
    async with client_for(iris_app) as client:
        plain, wanted = await asyncio.gather(
            client.post("/v2/models/iris/infer", json=v2_matrix(rows)),
            client.post(
                "/v2/models/iris/infer", json=v2_matrix(rows, parameters={"probabilities": True})
            ),
        )
    assert len(plain.json()["outputs"]) == 1
    assert len(wanted.json()["outputs"]) == 2


async def test_batcher_limits_and_isolation() -> None:
    seen: list[list[int]] = []
    threads: set[str] = set()

    def run(batch: Sequence[int]) -> list[int]:
        threads.add(threading.current_thread().name)
        seen.append(list(batch))
        if -1 in batch:
            raise ValueError("negative")
        return [v * 10 for v in batch]

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch_size=4, max_delay_s=0.05)
    results = await asyncio.gather(
        *[batcher.submit(v) for v in [1, 2, 3, 4, 5, 6, -1, 8]], return_exceptions=True
    )
    assert results[:6] == [10, 20, 30, 40, 50, 60] and results[7] == 80
    assert isinstance(results[6], ValueError)
    assert all(len(b) <= 4 for b in seen)
    assert seen[0] == [1, 2, 3, 4]
    assert seen[1:] == [[5, 6, -1, 8], [5], [6], [-1], [8]]  # the failed batch, then one by one
    assert threading.current_thread().name not in threads  # never on the event loop's thread
    await batcher.close()
    with pytest.raises(BatcherClosed):
        await batcher.submit(1)


async def test_lone_request_does_not_wait() -> None:
    """Nothing else arriving: the batch goes at once instead of waiting for the delay."""
    batcher: MicroBatcher[int, int] = MicroBatcher(
        lambda b: list(b), max_batch_size=64, max_delay_s=5.0
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await batcher.submit(7) == 7
    assert loop.time() - started < 1.0
    await batcher.close()


async def test_predictions_stay_aligned_under_load(
    iris_app: ModelServer, client_for: Client, iris: Artifact
) -> None:
    expected = iris.estimator.predict(iris.frame)
    rng = np.random.default_rng(1)
    picks = [rng.choice(len(iris.frame), size=int(rng.integers(1, 8))) for _ in range(120)]
    async with client_for(iris_app) as client:
        responses = await asyncio.gather(
            *[
                client.post(
                    "/v1/models/iris:predict",
                    json={"instances": iris.frame.iloc[p].to_numpy().tolist()},
                )
                for p in picks
            ]
        )
    for p, response in zip(picks, responses, strict=True):
        assert response.json()["predictions"] == expected[p].tolist()
    assert iris_app.batcher.batches < len(picks)
