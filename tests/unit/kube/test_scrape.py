"""Reading samples: from real model servers on their own loopback addresses, and from a
Prometheus HTTP API.

The pods are real: the model server's ASGI app around a trained scikit-learn pipeline, served
by uvicorn on 127.0.3.x (each "pod" has its own address, as pods do), and real requests sent to
it. A real Prometheus is not available here, so ``sample_prometheus`` is tested against a small
fake of its HTTP API that records the queries it receives and answers them from a table.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from aiohttp import web
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from modelwerk.api.v1alpha1.deployment import Check, DriftWindow
from modelwerk.kube.scrape import MetricsReader, SampleError, prometheus_queries
from modelwerk.logic.measure import measure, sample_from_exposition
from modelwerk.runtime.server.app import ModelServer, create_app
from modelwerk.runtime.server.model import LoadedModel, load_model
from tests.unit.server.helpers import Artifact, v2_matrix, write_artifact

from .faulty import HUGE, fail_on_huge_inputs

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NAME = "iris"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    data = load_iris(as_frame=True)
    estimator = Pipeline(
        [
            ("guard", FunctionTransformer(fail_on_huge_inputs)),
            ("scale", StandardScaler()),
            ("forest", RandomForestClassifier(n_estimators=10, random_state=0)),
        ]
    )
    root = tmp_path_factory.mktemp("scrape")
    return write_artifact(root, NAME, estimator, data.data, data.target, "classification")


@pytest.fixture(scope="module")
def model(artifact: Artifact) -> LoadedModel:
    return load_model(artifact.settings(version="iris-v2"))


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


@dataclass
class Pod:
    ip: str
    port: int
    app: ModelServer

    @property
    def base(self) -> str:
        return f"http://{self.ip}:{self.port}"

    @property
    def target(self) -> tuple[str, int]:
        return self.ip, self.port


@asynccontextmanager
async def serving(app: ModelServer, ip: str) -> AsyncIterator[Pod]:
    """``app`` over real HTTP on ``ip``. No ASGI lifespan: the model is loaded already, and the
    server's start-up would freeze the test process' garbage collector."""
    port = free_port(ip)
    config = uvicorn.Config(app, host=ip, port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), f"the server on {ip}:{port} did not start"
            await asyncio.sleep(0.02)
        yield Pod(ip, port, app)
    finally:
        server.should_exit = True
        await task
        await app.shutdown()


@pytest.fixture
async def pods(artifact: Artifact, model: LoadedModel) -> AsyncIterator[list[Pod]]:
    settings = artifact.settings(version="iris-v2", drift_min_rows=20)
    async with (
        serving(create_app(settings, model), "127.0.3.1") as a,
        serving(create_app(settings, model), "127.0.3.2") as b,
    ):
        yield [a, b]


@pytest.fixture
async def reader() -> AsyncIterator[MetricsReader]:
    r = MetricsReader(pod_timeout=0.5, prometheus_timeout=2)
    yield r
    await r.close()


class Traffic:
    """Real requests to one pod, remembering what the model answered."""

    def __init__(self, client: httpx.AsyncClient, pod: Pod, frame: Any) -> None:
        self.client, self.pod, self.frame = client, pod, frame
        self.predictions: dict[str, list[int]] = {}

    async def infer(self, rid: str, rows: Any = None, expect: int = 200) -> None:
        rows = self.frame.iloc[:3] if rows is None else rows
        response = await self.client.post(
            f"{self.pod.base}/v2/models/{NAME}/infer", json=v2_matrix(rows, id=rid)
        )
        assert response.status_code == expect, response.text
        if expect == 200:
            self.predictions[rid] = response.json()["outputs"][0]["data"]

    async def v1(self) -> None:
        rows = self.frame.iloc[:2].to_numpy().tolist()
        response = await self.client.post(
            f"{self.pod.base}/v1/models/{NAME}:predict", json={"instances": rows}
        )
        assert response.status_code == 200, response.text

    async def malformed(self) -> None:
        response = await self.client.post(f"{self.pod.base}/v2/models/{NAME}/infer", content=b"{")
        assert response.status_code == 400

    async def fault(self) -> None:
        await self.infer("boom", self.frame.iloc[:1] + HUGE, expect=500)

    async def feedback(self, rid: str, labels: list[int]) -> None:
        response = await self.client.post(
            f"{self.pod.base}/v2/models/{NAME}/feedback", json={"id": rid, "labels": labels}
        )
        assert response.status_code == 200, response.text


async def test_sample_pods_sums_what_the_real_servers_served(
    pods: list[Pod], reader: MetricsReader, artifact: Artifact
) -> None:
    a_pod, b_pod = pods
    async with httpx.AsyncClient() as client:
        a, b = Traffic(client, a_pod, artifact.frame), Traffic(client, b_pod, artifact.frame)
        for i in range(4):
            await a.infer(f"a{i}")
        await a.v1()
        await a.malformed()
        await a.malformed()
        await a.fault()
        await a.fault()
        for i in range(3):
            await b.infer(f"b{i}")
        shifted = artifact.frame.iloc[:60].copy()
        shifted["petal length (cm)"] += 10  # far outside anything seen in training
        await b.infer("shifted", shifted)
        await b.fault()
        # Ground truth for two of pod a's requests: 4 of their 6 rows were right.
        p0, p1 = a.predictions["a0"], a.predictions["a1"]
        await a.feedback("a0", p0)
        await a.feedback("a1", [p1[0], (p1[1] + 1) % 3, (p1[2] + 1) % 3])

        s = await reader.sample_pods([a_pod.target, b_pod.target], NOW)

        assert (s.time, s.pods, s.requests, s.errors) == (NOW, 2, 14, 3)
        buckets = {bucket.le: bucket.count for bucket in s.latency_buckets}
        assert buckets["+Inf"] == 14
        assert [bucket.count for bucket in s.latency_buckets] == sorted(buckets.values())
        assert s.accuracy == pytest.approx(4 / 6) and s.labelled == 6
        assert s.drift_feature == "petal length (cm)" and s.drift_score is not None
        assert s.drift_score > 1
        # What the reader sums is what each pod's exposition says.
        texts = [(await client.get(f"{p.base}/metrics")).text for p in pods]
        assert s == sample_from_exposition(texts, NOW)

        # The next interval: 20 good requests and 2 faults.
        for i in range(10):
            await a.infer(f"a-next{i}")
            await b.infer(f"b-next{i}")
        await b.fault()
        await b.fault()
        later = await reader.sample_pods([a_pod.target, b_pod.target], NOW)
    m = measure(Check(metric="errorRate", max=0.05), s, later, min_requests=20, now=NOW)
    assert (m.phase, m.value) == ("Failed", pytest.approx(2 / 22))
    m = measure(Check(metric="latency", quantile=0.5, max=2.0), s, later, min_requests=20, now=NOW)
    assert m.phase == "Successful" and m.value is not None and 0 < m.value <= 2.5


async def test_pods_that_do_not_answer_are_left_out(
    pods: list[Pod], reader: MetricsReader, artifact: Artifact
) -> None:
    async with httpx.AsyncClient() as client:
        await Traffic(client, pods[0], artifact.frame).infer("one")
    silent = ("127.0.3.9", free_port("127.0.3.9"))  # nothing listens there
    s = await reader.sample_pods([pods[0].target, silent], NOW)
    assert (s.pods, s.requests) == (1, 1)


async def html(_: web.Request) -> web.Response:
    return web.Response(text="<html>busy</html>")


@asynccontextmanager
async def misbehaving(ip: str) -> AsyncIterator[dict[str, tuple[str, int]]]:
    """Endpoints that are no model servers: one without /metrics (404), one whose /metrics is
    an HTML page, one that accepts connections and never answers."""
    runners, ends = [], {}
    for name, routes in (("missing", []), ("html", [web.get("/metrics", html)])):
        app = web.Application()
        app.add_routes(routes)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port(ip)
        await web.TCPSite(runner, ip, port).start()
        runners.append(runner)
        ends[name] = (ip, port)

    stop, handlers = asyncio.Event(), []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())
        await stop.wait()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    hanging = await asyncio.start_server(hang, ip, 0)
    ends["hang"] = (ip, hanging.sockets[0].getsockname()[1])
    try:
        yield ends
    finally:
        stop.set()
        await asyncio.gather(*[h for h in handlers if h is not None])
        hanging.close()
        await hanging.wait_closed()
        for runner in runners:
            await runner.cleanup()


async def test_no_pod_answering_is_an_error_that_says_why(reader: MetricsReader) -> None:
    ip = "127.0.3.10"
    refused = (ip, free_port(ip))
    async with misbehaving(ip) as ends:
        with pytest.raises(SampleError) as caught:
            await reader.sample_pods([refused, ends["missing"], ends["html"], ends["hang"]], NOW)
    message = str(caught.value)
    assert message.startswith("no serving pod answered: ")
    assert f"{ip}:{refused[1]}: Cannot connect" in message
    assert f"{ip}:{ends['missing'][1]} answered 404" in message
    assert f"{ip}:{ends['html'][1]} sent no Prometheus metrics" in message
    assert f"{ip}:{ends['hang'][1]} did not answer within 0.5 s" in message
    with pytest.raises(SampleError, match="no serving pod to read metrics from"):
        await reader.sample_pods([], NOW)


async def test_a_pod_that_is_no_model_server_is_left_out(
    pods: list[Pod], reader: MetricsReader
) -> None:
    async with misbehaving("127.0.3.11") as ends:
        s = await reader.sample_pods([pods[1].target, ends["html"], ends["missing"]], NOW)
    assert (s.pods, s.requests) == (1, 0)


# -- Prometheus -------------------------------------------------------------------------------

SEL = 'namespace="ml",version="iris-v2",pod=~"(iris-blue-|iris-green-).*"'


def vector(*series: tuple[dict[str, str], str]) -> list[dict[str, Any]]:
    return [{"metric": labels, "value": [1795000000.0, value]} for labels, value in series]


ANSWERS: dict[str, list[dict[str, Any]]] = {
    f"count(count by (namespace, pod) (modelwerk_model_info{{{SEL}}}))": vector(({}, "3")),
    f"sum(modelwerk_model_requests_total{{{SEL}}})": vector(({}, "1200")),
    f'sum(modelwerk_model_requests_total{{{SEL},code=~"5.."}})': vector(({}, "7")),
    f"sum by (le) (modelwerk_model_request_seconds_bucket{{{SEL}}})": vector(
        ({"le": "0.01"}, "900"), ({"le": "0.1"}, "1190"), ({"le": "+Inf"}, "1200")
    ),
    f"max by (method) (modelwerk_model_drift_score{{{SEL}}})": vector(({"method": "psi"}, "0.31")),
    f"max by (feature, method) (modelwerk_model_feature_drift{{{SEL}}})": vector(
        ({"feature": "sepal width (cm)", "method": "psi"}, "0.12"),
        ({"feature": "petal length (cm)", "method": "psi"}, "0.31"),
        ({"feature": "sepal width (cm)", "method": "ks"}, "0.8"),
    ),
    (
        f"min(modelwerk_model_live_accuracy{{{SEL}}} and on (namespace, pod) "
        f'(modelwerk_model_feedback_total{{{SEL},result=~"correct|incorrect"}} > 0))'
    ): vector(({}, "0.93")),
    f"sum(modelwerk_model_live_labelled_rows{{{SEL}}})": vector(({}, "250")),
    f"max(modelwerk_model_drift_window_rows{{{SEL}}})": vector(({}, "400")),
    f"max by (feature) (modelwerk_model_drift_rows_needed{{{SEL}}})": vector(
        ({"feature": "sepal width (cm)"}, "310"), ({"feature": "petal length (cm)"}, "+Inf")
    ),
}


@asynccontextmanager
async def fake_prometheus(
    answer: Callable[[str], web.Response | list[dict[str, Any]]],
) -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """The /api/v1/query endpoint of Prometheus' HTTP API, answering from ``answer``."""
    received: list[dict[str, str]] = []

    async def query(request: web.Request) -> web.Response:
        received.append(dict(request.query))
        got = answer(request.query.get("query", ""))
        if isinstance(got, web.Response):
            return got
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": got}}
        )

    app = web.Application()
    app.router.add_get("/prom/api/v1/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port("127.0.0.1")
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/prom/", received
    finally:
        await runner.cleanup()


def from_table(query: str) -> web.Response | list[dict[str, Any]]:
    if query in ANSWERS:
        return ANSWERS[query]
    return web.json_response(
        {"status": "error", "errorType": "bad_data", "error": f"unexpected query {query}"},
        status=400,
    )


async def test_sample_prometheus_sums_the_versions_series(reader: MetricsReader) -> None:
    async with fake_prometheus(from_table) as (url, received):
        s = await reader.sample_prometheus(url, "ml", "iris", "iris-v2", NOW)
    assert sorted(q["query"] for q in received) == sorted(ANSWERS)
    assert {q["time"] for q in received} == {f"{NOW.timestamp():.3f}"}
    assert (s.time, s.pods, s.requests, s.errors) == (NOW, 3, 1200, 7)
    assert [(b.le, b.count) for b in s.latency_buckets] == [
        ("0.01", 900),
        ("0.1", 1190),
        ("+Inf", 1200),
    ]
    assert (s.drift_score, s.drift_feature) == (0.31, "petal length (cm)")
    # no window is enough for petal length's score: that, not the 310 rows of sepal width
    assert s.drift_window == DriftWindow(rows=400, needed=None, feature="petal length (cm)")
    assert (s.accuracy, s.labelled) == (0.93, 250)


async def test_series_that_do_not_exist_yet_read_as_nothing(reader: MetricsReader) -> None:
    pods = f"count(count by (namespace, pod) (modelwerk_model_info{{{SEL}}}))"

    def only_pods(query: str) -> list[dict[str, Any]]:
        return ANSWERS[pods] if query == pods else []

    async with fake_prometheus(only_pods) as (url, _):
        s = await reader.sample_prometheus(url, "ml", "iris", "iris-v2", NOW)
    assert (s.pods, s.requests, s.errors, s.latency_buckets, s.labelled) == (3, 0, 0, [], 0)
    assert (s.drift_score, s.drift_feature, s.accuracy, s.drift_window) == (None,) * 4


async def test_prometheus_without_the_versions_pods_is_an_error(reader: MetricsReader) -> None:
    async with fake_prometheus(lambda q: []) as (url, _):
        with pytest.raises(SampleError, match="no metrics of version iris-v2 of ml/iris"):
            await reader.sample_prometheus(url, "ml", "iris", "iris-v2", NOW)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (
            web.json_response(
                {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"},
                status=400,
            ),
            "refused .*: parse error at char 3",
        ),
        (web.Response(status=502, text="<html>Bad Gateway</html>"), "answered 502: <html>Bad"),
        (
            web.json_response({"status": "success", "data": {"resultType": "matrix"}}),
            "with no vector",
        ),
    ],
)
async def test_prometheus_failures_are_errors_that_say_why(
    reader: MetricsReader, response: web.Response, message: str
) -> None:
    async with fake_prometheus(lambda q: response) as (url, _):
        with pytest.raises(SampleError, match=message):
            await reader.sample_prometheus(url, "ml", "iris", "iris-v2", NOW)


async def test_an_unreachable_prometheus_is_an_error(reader: MetricsReader) -> None:
    url = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    with pytest.raises(SampleError, match=f"Prometheus at {url}: Cannot connect"):
        await reader.sample_prometheus(url, "ml", "iris", "iris-v2", NOW)


def test_queries_quote_label_values_and_match_long_pod_names() -> None:
    queries = prometheus_queries('a"b', "x" * 70, "v\\1")
    assert 'namespace="a\\"b",version="v\\\\1"' in queries["requests"]
    # The pods of a long-named Deployment are named from a prefix cut to 58 characters.
    prefix = queries["requests"].split('pod=~"(')[1].split("|")[0]
    assert len(prefix) == 58


def test_the_pod_pattern_escapes_dots() -> None:
    assert 'pod=~"(a\\\\.b-blue-|a\\\\.b-green-).*"' in prometheus_queries("ml", "a.b", "v")["pods"]


async def test_capture_counters_and_the_aggregators_figures_from_real_servers(
    artifact: Artifact, model: LoadedModel, reader: MetricsReader, tmp_path: Any
) -> None:
    """A serving pod with capture on and an aggregator over the same store: the operator reads
    the pod's capture counters and the aggregator's join."""
    import threading

    from modelwerk.logic.live import LiveReading, PodCapture
    from modelwerk.logic.shadow import JoinedPairs
    from modelwerk.runtime.capture.store import Store
    from modelwerk.runtime.monitor.aggregator import Aggregator
    from modelwerk.runtime.monitor.http import serve
    from modelwerk.runtime.monitor.settings import MonitorSettings

    settings = artifact.settings(
        version="iris-v2", capture=True, capture_root=str(tmp_path), namespace="ml",
        deployment=NAME, capture_flush_seconds=0.05,
    )  # fmt: skip
    async with serving(create_app(settings, model), "127.0.3.3") as pod, httpx.AsyncClient() as c:
        traffic = Traffic(c, pod, artifact.frame)
        for i in range(4):
            await traffic.infer(f"r{i}")
        await traffic.feedback("r0", [0, 0, 0])
        assert pod.app.capture.predictions.flush(5) and pod.app.capture.labels.flush(5)
        counts = await reader.capture_counts([pod.target, ("127.0.3.99", pod.port)])
        assert counts == [PodCapture(written=15, dropped=0, failing=False)]
    aggregator = Aggregator(
        MonitorSettings(namespace="ml", deployment=NAME, grace_seconds=60), Store(str(tmp_path))
    )
    aggregator.tick()
    server = serve(aggregator, "127.0.3.4", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        reading = await reader.read_live("127.0.3.4", server.server_address[1])
        pairs = await reader.shadow_pairs("127.0.3.4", server.server_address[1], "v0", "iris-v2")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert isinstance(reading, LiveReading) and reading.store_error is None
    (figure,) = reading.metrics.versions
    expected = sum(p == 0 for p in traffic.predictions["r0"]) / 3
    assert (figure.version, figure.matched, figure.accuracy) == ("iris-v2", 3, expected)
    assert "Cannot connect" in str(await reader.read_live("127.0.3.99", 9))
    assert await reader.capture_counts([]) == "no serving pod to read"
    assert pairs == JoinedPairs()  # one version only: nothing paired
    assert "Cannot connect" in str(await reader.shadow_pairs("127.0.3.99", 9, "a", "b"))


async def test_experiment_and_shadow_readings_need_every_pod(
    pods: list[Pod], reader: MetricsReader
) -> None:
    """Counters of real servers (no experiment, no shadow: all zero), and an error naming the
    arm when one of its pods does not answer: a partial look would undercount that arm."""
    a, b = pods
    got = await reader.experiment_figures([a.target], [b.target])
    assert (got.a.pods, got.b.pods, got.units("a")) == (1, 1, 0)
    shadow = await reader.shadow_figures([a.target, b.target])
    assert (shadow.pods, shadow.compared) == (2, 0)
    gone = ("127.0.3.9", free_port("127.0.3.9"))
    with pytest.raises(SampleError, match=r"^arm B: 1 of 2 serving pods answered: "):
        await reader.experiment_figures([a.target], [b.target, gone])
    with pytest.raises(SampleError, match=r"^stable 0 of 0 serving pods answered"):
        await reader.shadow_figures([])
