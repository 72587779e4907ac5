"""Capture through the real app: predictions and labels reach the store as Parquet, a store
outage never touches the request path, and nothing a client sends leaves its prefix."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow.dataset as ds
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelwerk.runtime.server.app import ModelServer, create_app
from modelwerk.runtime.server.model import LoadedModel
from tests.unit.capture.fs import ControlledFS, register

from .helpers import Artifact, v2_matrix
from .test_process import Served

ROW = [5.1, 3.5, 1.4, 0.2]
Client = Callable[[ModelServer], httpx.AsyncClient]


@pytest.fixture
def store_fs() -> Iterator[ControlledFS]:
    fs = register()
    yield fs
    fs.delay, fs.down = 0.0, False


def _app(iris: Artifact, model: LoadedModel, root: str, **extra: Any) -> ModelServer:
    values: dict[str, Any] = {
        "capture": True,
        "capture_root": root,
        "namespace": "ml",
        "deployment": "iris",
        "track": "blue",
        "pod": "iris-blue-abc",
        "capture_flush_seconds": 0.05,
    }
    values.update(extra)
    return create_app(iris.settings(**values), model)


def _body(rows: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": "x", "shape": [rows, 4], "datatype": "FP64", "data": [ROW] * rows}],
        **extra,
    }


def _table(path: Path) -> Any:
    return ds.dataset(path, partitioning="hive", format="parquet").to_table().to_pandas()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_predictions_and_labels_land_in_their_partitions(
    iris: Artifact, iris_model: LoadedModel, tmp_path: Path, client_for: Client
) -> None:
    app = _app(iris, iris_model, str(tmp_path), capture_input_rate=1.0)
    ids = []
    async with client_for(app) as client:
        for _ in range(5):
            r = await client.post("/v2/models/iris/infer", json=_body(2))
            assert r.status_code == 200, r.text
            ids.append(r.json()["id"])
        feedback = [
            {"id": ids[0], "labels": [0, 1]},
            {"id": ids[1], "row": 1, "label": 0, "reward": 2.5},
            {"id": ids[2], "reward": [1, 0]},
        ]
        r = await client.post("/v2/models/iris/feedback", json=feedback)
        assert r.status_code == 200, r.text
        assert r.json()["stored"] == 5
    await app.shutdown()
    captures = _table(tmp_path / "captures/ml/iris")
    assert len(captures) == 10 and set(captures["request_id"]) == set(ids)
    assert sorted(captures["row"]) == [0] * 5 + [1] * 5
    assert (captures["version"] == "v1").all() and (captures["track"] == "blue").all()
    assert (captures["pod"] == "iris-blue-abc").all() and captures["arm"].isna().all()
    assert captures["inputs"].iloc[0] == dict(zip(iris.frame.columns, ROW, strict=True))
    probabilities = dict(captures["probabilities"].iloc[0])
    assert set(probabilities) == {"0", "1", "2"} and sum(probabilities.values()) == pytest.approx(1)
    predicted = iris.estimator.predict(pd.DataFrame([ROW], columns=iris.frame.columns))
    assert set(captures["prediction"]) == {str(predicted[0])}
    labels = _table(tmp_path / "labels/ml/iris").sort_values(["request_id", "row"])
    got = list(
        zip(labels["request_id"], labels["row"], labels["label"], labels["reward"], strict=True)
    )
    expected = sorted(
        [
            (ids[0], 0, "0", None),
            (ids[0], 1, "1", None),
            (ids[1], 1, "0", 2.5),
            (ids[2], 0, None, 1.0),
            (ids[2], 1, None, 0.0),
        ]
    )

    def clean(value: Any) -> Any:
        return None if pd.isna(value) else value

    assert [(i, r, clean(lab), clean(rew)) for i, r, lab, rew in got] == expected


async def test_a_pod_of_an_experiment_writes_its_arm_with_every_prediction(
    iris: Artifact,
    iris_model: LoadedModel,
    tmp_path: Path,
    client_for: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the aggregator adds up each arm's labels from this column (logic.experiment_figures)
    monkeypatch.setenv("MODELWERK_EXPERIMENT_ARM", "b")
    app = _app(iris, iris_model, str(tmp_path))
    async with client_for(app) as client:
        for rows in (1, 3):
            r = await client.post("/v2/models/iris/infer", json=_body(rows))
            assert r.status_code == 200, r.text
    await app.shutdown()
    captures = _table(tmp_path / "captures/ml/iris")
    assert len(captures) == 4 and (captures["arm"] == "b").all()


async def test_inputs_are_sampled_at_the_configured_rate(
    iris: Artifact, iris_model: LoadedModel, tmp_path: Path, client_for: Client
) -> None:
    app = _app(iris, iris_model, str(tmp_path), capture_input_rate=0.25)
    async with client_for(app) as client:
        for _ in range(400):
            assert (await client.post("/v2/models/iris/infer", json=_body())).status_code == 200
    await app.shutdown()
    captures = _table(tmp_path / "captures/ml/iris")
    assert len(captures) == 400, "every prediction is captured"
    sampled = int(captures["inputs"].notna().sum())
    assert 60 <= sampled <= 140  # 100 expected; binomial sd 8.7


async def test_a_store_outage_never_reaches_the_request_path(
    iris: Artifact,
    iris_model: LoadedModel,
    tmp_path: Path,
    client_for: Client,
    store_fs: ControlledFS,
) -> None:
    app = _app(iris, iris_model, f"controlled://{tmp_path}", capture_buffer_rows=20)
    async with client_for(app) as client:
        for _ in range(3):
            assert (await client.post("/v2/models/iris/infer", json=_body())).status_code == 200
        assert app.capture.predictions.flush(5)
        store_fs.down = True
        started = time.perf_counter()
        for _ in range(60):
            assert (await client.post("/v2/models/iris/infer", json=_body())).status_code == 200
        assert time.perf_counter() - started < 10
        assert (await client.get("/v2/health/ready")).status_code == 200
        await asyncio.sleep(0.3)
        samples = _samples((await client.get("/metrics")).text)
        stream = (("model", "iris"), ("stream", "predictions"), ("version", "v1"))
        full = (("model", "iris"), ("reason", "full"), ("stream", "predictions"), ("version", "v1"))
        assert samples[("modelwerk_capture_dropped_total", full)] == 40
        assert samples[("modelwerk_capture_healthy", stream)] == 0
        assert samples[("modelwerk_capture_write_errors_total", stream)] >= 1
        # Labels cannot be buffered either once their buffer is full: the client is told.
        r = await client.post("/v2/models/iris/feedback", json=[{"id": "x", "label": 1}] * 21)
        assert r.status_code == 503 and "send them again" in r.json()["error"]
        store_fs.down = False
        assert app.capture.predictions.flush(10)
        samples = _samples((await client.get("/metrics")).text)
        assert samples[("modelwerk_capture_healthy", stream)] == 1
        assert samples[("modelwerk_capture_written_rows_total", stream)] == 23
    await app.shutdown()
    assert len(_table(tmp_path / "captures/ml/iris")) == 23, "flushed and buffered rows survive"


HOSTILE_IDS = ["../../../../outside", "/etc/passwd", "date=2020-01-01/hour=00", "..", "a\\b"]


async def test_nothing_a_client_sends_leaves_the_deployment_prefix(
    iris: Artifact, iris_model: LoadedModel, tmp_path: Path, client_for: Client
) -> None:
    root = tmp_path / "store"
    app = _app(iris, iris_model, str(root))
    async with client_for(app) as client:
        for rid in HOSTILE_IDS:
            r = await client.post("/v2/models/iris/infer", json=_body(id=rid))
            assert r.status_code == 200
            r = await client.post("/v2/models/iris/feedback", json={"id": rid, "label": 0})
            assert r.status_code == 200
        # A version in the path must be the served one: it never names a directory.
        r = await client.post(
            "/v2/models/iris/versions/..%2F..%2Fx/feedback", json={"id": "a", "label": 0}
        )
        assert r.status_code == 404
    await app.shutdown()
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written and all(
        w.startswith(("store/captures/ml/iris/v1/date=", "store/labels/ml/iris/date="))
        for w in written
    ), written
    assert set(_table(root / "captures/ml/iris")["request_id"]) == set(HOSTILE_IDS)
    assert set(_table(root / "labels/ml/iris")["request_id"]) == set(HOSTILE_IDS)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"label": 1}, "feedback[0] needs the 'id'"),
        ({"id": True, "label": 1}, "feedback[0] needs the 'id'"),
        ({"id": "", "label": 1}, "feedback[0].id must have 1 to 256"),
        ({"id": "x" * 300, "label": 1}, "feedback[0].id must have 1 to 256"),
        ({"id": "a"}, "needs a 'label'"),
        ({"id": "a", "label": {"x": 1}}, "is not a valid classification target"),
        ({"id": "a", "labels": 1}, "labels must be a list"),
        ({"id": "a", "labels": []}, "empty list of labels"),
        ({"id": "a", "row": -1, "label": 1}, "row must be a row number"),
        ({"id": "a", "row": "2", "label": 1}, "row must be a row number"),
        ({"id": "a", "row": 1, "labels": [1, 2]}, "names one row, so it takes one label"),
        ({"id": "a", "reward": "high"}, "reward 'high' is not a number"),
        ({"id": "a", "labels": [1, 2], "reward": [1, 2, 3]}, "3 rewards for 2 rows"),
        ([], "no feedback given"),
        (["a"], "feedback[0] must be an object"),
        ([{"id": "a", "label": 1}, {"id": "b"}], "feedback[1] needs a 'label'"),
    ],
)
async def test_malformed_feedback_gets_a_400_naming_the_problem(
    iris: Artifact,
    iris_model: LoadedModel,
    tmp_path: Path,
    client_for: Client,
    body: Any,
    message: str,
) -> None:
    app = _app(iris, iris_model, str(tmp_path))
    async with client_for(app) as client:
        r = await client.post("/v2/models/iris/feedback", json=body)
    await app.shutdown()
    assert r.status_code == 400 and message in r.json()["error"], r.text
    assert not (tmp_path / "labels").exists(), "nothing of a refused body is stored"


async def test_a_label_count_that_contradicts_a_remembered_request_is_refused(
    iris: Artifact, iris_model: LoadedModel, tmp_path: Path, client_for: Client
) -> None:
    app = _app(iris, iris_model, str(tmp_path))
    async with client_for(app) as client:
        rid = (await client.post("/v2/models/iris/infer", json=_body(2))).json()["id"]
        r = await client.post("/v2/models/iris/feedback", json={"id": rid, "labels": [0]})
        assert r.status_code == 400 and "had 2 rows, but 1 labels came" in r.json()["error"]
        r = await client.post("/v2/models/iris/feedback", json={"id": rid, "row": 5, "label": 0})
        assert r.status_code == 400 and "has no row 5" in r.json()["error"]
        # Unknown ids are the join's business: accepted, stored, unmatched locally.
        r = await client.post("/v2/models/iris/feedback", json={"id": "never-seen", "label": 0})
        assert r.status_code == 200 and r.json()["unmatched"] == 1 and r.json()["stored"] == 1
    await app.shutdown()


def test_sigterm_flushes_every_worker(iris: Artifact, tmp_path: Path) -> None:
    """Two uvicorn workers, a flush interval far longer than the test: every row reaches the
    store only because SIGTERM makes each worker write what it holds."""
    args = [
        "--model-uri", iris.model_uri, "--sha256", iris.sha256, "--name", "iris",
        "--version", "v1", "--workers", "2", "--capture", "--namespace", "ml",
        "--deployment", "iris", "--pod", "iris-blue-x", "--capture-flush-seconds", "3600",
    ]  # fmt: skip
    server = Served(args, tmp_path, MODELWERK_ARTIFACT_ROOT=str(tmp_path / "store"))
    ids = []
    try:
        rows = iris.frame.iloc[:2]
        for i in range(40):  # a new connection each time: both workers answer some
            r = httpx.post(f"{server.base}/v2/models/iris/infer", json=v2_matrix(rows, id=f"q{i}"))
            assert r.status_code == 200
            ids.append(f"q{i}")
            label = {"id": f"q{i}", "labels": [0, 1]}
            assert (
                httpx.post(f"{server.base}/v2/models/iris/feedback", json=label).status_code == 200
            )
    finally:
        code = server.terminate()
    assert code == 0, server.log_path.read_text()
    captures = _table(tmp_path / "store/captures/ml/iris/v1")
    assert sorted(captures["request_id"]) == sorted(ids * 2)
    files = (tmp_path / "store/captures/ml/iris/v1").glob("date=*/hour=*/*.parquet")
    writers = {f.name.rsplit("-", 3)[1] for f in files}
    # The kernel spreads new connections over the workers; whichever answered, wrote.
    assert 1 <= len(writers) <= 2
    assert len(_table(tmp_path / "store/labels/ml/iris")) == 80
