"""The unstable model the rollback tests deploy really is what they claim (tests/cluster/unstable_model.py):
it loads and warms up like any model, answers the rows below its threshold as the original
does, and answers the others with 500 — a server error, not a client error."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from modelwerk.runtime.artifacts import MODEL_CARD_FILE
from modelwerk.runtime.server.app import ModelServer, create_app
from modelwerk.runtime.server.model import load_model
from tests.cluster.unstable_model import THRESHOLD, publish_unstable

from .helpers import Artifact, v2_named

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_unstable_twin_answers_500_on_the_rows_past_its_threshold(
    iris: Artifact, client_for: Callable[[ModelServer], httpx.AsyncClient]
) -> None:
    published = publish_unstable(str(iris.directory / MODEL_CARD_FILE))
    assert published["sha256"] != iris.sha256
    settings = iris.settings(model_uri=published["uri"], sha256=published["sha256"])
    model = load_model(settings)  # the card is found, the hash checked, the warm-up passes
    fragile = (iris.frame > THRESHOLD).any(axis=1)
    assert int(fragile.sum()) == 30  # of iris' 150 rows
    calm = iris.frame[~fragile]
    async with client_for(create_app(settings, model)) as client:
        answer = await client.post("/v2/models/iris/infer", json=v2_named(calm))
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == iris.estimator.predict(calm).tolist()
        for _, row in iris.frame[fragile].head(5).iterrows():
            failed = await client.post("/v2/models/iris/infer", json=v2_named(row.to_frame().T))
            assert failed.status_code == 500, failed.text
            assert "OverflowError" in failed.json()["error"]
