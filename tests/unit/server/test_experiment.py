"""Sticky A/B assignment: the hash, and forwarding between real servers on loopback."""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.dataset as ds
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from scipy import stats

from modelwerk.runtime.server.app import create_app
from modelwerk.runtime.server.asgi import inference_path
from modelwerk.runtime.server.experiment import (
    ExperimentRouter,
    ExperimentSettings,
    assign,
    bucket,
    unit_of,
    wrap,
)
from modelwerk.runtime.server.model import LoadedModel, load_model

from .helpers import Artifact, v2_matrix

SALT = "uid-1234/iris-v1/iris-v2"


def test_buckets_are_uniform_and_independent_between_salts() -> None:
    keys = [f"user-{i}" for i in range(50_000)]
    first = np.array([bucket("salt-1", k) for k in keys])
    second = np.array([bucket("salt-2", k) for k in keys])
    assert stats.kstest(first, "uniform").pvalue > 0.001
    counts = np.histogram(first, bins=20, range=(0, 1))[0]
    assert stats.chisquare(counts).pvalue > 0.001
    # a new salt reshuffles: being in B (30 %) under one salt says nothing about the other
    in_b = (first < 0.3), (second < 0.3)
    both = float((in_b[0] & in_b[1]).mean())
    assert abs(both - 0.09) < 3 * np.sqrt(0.09 * 0.91 / len(keys))


def test_assignment_is_sticky_and_monotone_in_the_share() -> None:
    keys = [f"k{i}" for i in range(5_000)]
    at_20 = {k: assign(SALT, k, 0.2) for k in keys}
    assert all(assign(SALT, k, 0.2) == arm for k, arm in at_20.items())
    at_50 = {k: assign(SALT, k, 0.5) for k in keys}
    assert all(at_50[k] == "b" for k, arm in at_20.items() if arm == "b")
    share = sum(arm == "b" for arm in at_20.values()) / len(keys)
    assert abs(share - 0.2) < 3 * np.sqrt(0.2 * 0.8 / len(keys))


@pytest.mark.parametrize(
    ("path", "routed"),
    [
        ("/v2/models/iris/infer", True),
        ("/v1/models/iris:predict", True),
        ("/v2/models/iris/versions/v1/infer", False),
        ("/v2/models/iris/feedback", False),
        ("/v2/models/iris", False),
    ],
)
def test_only_unversioned_inference_is_routed(path: str, routed: bool) -> None:
    assert inference_path(path) is routed


def test_settings_name_the_bad_field() -> None:
    with pytest.raises(ValueError, match="share_b"):
        ExperimentSettings(arm="a", share_b=1.0, salt="s", key="header:x", peer_url="http://p:80")
    with pytest.raises(ValueError, match="key"):
        ExperimentSettings(arm="a", share_b=0.5, salt="s", key="cookie:x", peer_url="http://p:80")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Arm:
    name: str
    port: int
    router: ExperimentRouter

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def serving(router: Any, port: int) -> AsyncIterator[None]:
    """A real uvicorn on loopback; no lifespan (the model is loaded already). ``router`` is
    any ASGI app; a middleware's ``close`` runs at the end."""
    config = uvicorn.Config(router, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        await task
        if hasattr(router, "close"):
            await router.close()


def arm_app(
    artifact: Artifact, model: LoadedModel, arm: str, version: str, peer: int, **extra: object
) -> ExperimentRouter:
    settings = ExperimentSettings(
        arm=arm,  # type: ignore[arg-type]
        share_b=extra.pop("share_b", 0.3),  # type: ignore[arg-type]
        salt=SALT,
        key=extra.pop("key", "header:x-user-id"),  # type: ignore[arg-type]
        peer_url=f"http://127.0.0.1:{peer}",
        **extra,  # type: ignore[arg-type]
    )
    server = create_app(artifact.settings(version=version), model)
    router = wrap(server, settings, chance=random.Random(7).random)
    assert isinstance(router, ExperimentRouter)
    return router


@pytest.fixture
async def arms(iris: Artifact) -> AsyncIterator[tuple[Arm, Arm]]:
    model_a = load_model(iris.settings(version="iris-v1"))
    model_b = load_model(iris.settings(version="iris-v2"))
    port_a, port_b = free_port(), free_port()
    a = Arm("a", port_a, arm_app(iris, model_a, "a", "iris-v1", port_b))
    b = Arm("b", port_b, arm_app(iris, model_b, "b", "iris-v2", port_a))
    async with serving(a.router, port_a), serving(b.router, port_b):
        yield a, b


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def test_every_key_gets_the_same_arm_on_any_pod(
    iris: Artifact, arms: tuple[Arm, Arm]
) -> None:
    """The stable Service stand-in: every request goes to a random pod of either arm."""
    a, b = arms
    rng = random.Random(3)
    body = v2_matrix(iris.frame.head(2))
    seen: dict[str, set[tuple[str, str]]] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for i in range(150):
            key = f"user-{i % 40}"
            pod = rng.choice(arms)
            r = await client.post(
                f"{pod.base}/v2/models/iris/infer", json=body, headers={"x-user-id": key}
            )
            assert r.status_code == 200, r.text
            served = (r.headers["x-modelwerk-arm"], r.headers["x-modelwerk-model-version"])
            seen.setdefault(key, set()).add(served)
            assert r.json()["model_version"] == served[1]
        metrics_a = (await client.get(f"{a.base}/metrics")).text
        metrics_b = (await client.get(f"{b.base}/metrics")).text
    assert all(len(s) == 1 for s in seen.values()), seen
    for key, served in seen.items():
        arm = assign(SALT, key, 0.3)
        assert served == {(arm, "iris-v1" if arm == "a" else "iris-v2")}
    # every request was assigned once, at the pod it landed on, and counted there
    assigned = sum(
        metric(t, "modelwerk_experiment_assignments_total") for t in (metrics_a, metrics_b)
    )
    assert assigned == 150
    forwarded = metric(metrics_a, "modelwerk_experiment_forwards_total", outcome="ok") + metric(
        metrics_b, "modelwerk_experiment_forwards_total", outcome="ok"
    )
    served_forwarded = metric(
        metrics_a, "modelwerk_experiment_served_total", via="forwarded"
    ) + metric(metrics_b, "modelwerk_experiment_served_total", via="forwarded")
    assert forwarded == served_forwarded > 0
    served_b = metric(metrics_b, "modelwerk_experiment_served_total", arm="b")
    assert served_b == sum(1 for i in range(150) if assign(SALT, f"user-{i % 40}", 0.3) == "b")
    squares = metric(metrics_b, "modelwerk_experiment_served_seconds_squared_total")
    assert squares > 0


async def test_keyless_requests_are_split_at_random(iris: Artifact, arms: tuple[Arm, Arm]) -> None:
    a, _ = arms
    body = v2_matrix(iris.frame.head(1))
    served: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(200):
            r = await client.post(f"{a.base}/v2/models/iris/infer", json=body)
            served[r.headers["x-modelwerk-arm"]] += 1
    assert set(served) == {"a", "b"}
    assert abs(served["b"] / 200 - 0.3) < 3 * np.sqrt(0.3 * 0.7 / 200)


async def test_the_key_may_be_a_v2_parameter(iris: Artifact) -> None:
    model_a = load_model(iris.settings(version="iris-v1"))
    model_b = load_model(iris.settings(version="iris-v2"))
    port_a, port_b = free_port(), free_port()
    ra = arm_app(iris, model_a, "a", "iris-v1", port_b, key="parameter:user_id", share_b=0.5)
    rb = arm_app(iris, model_b, "b", "iris-v2", port_a, key="parameter:user_id", share_b=0.5)
    async with serving(ra, port_a), serving(rb, port_b), httpx.AsyncClient(timeout=10) as client:
        for i in range(40):
            body = {**v2_matrix(iris.frame.head(1)), "parameters": {"user_id": i}}
            r = await client.post(f"http://127.0.0.1:{port_a}/v2/models/iris/infer", json=body)
            assert r.status_code == 200, r.text
            assert r.headers["x-modelwerk-arm"] == assign(SALT, str(i), 0.5)
        bad = await client.post(
            f"http://127.0.0.1:{port_a}/v2/models/iris/infer",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert bad.status_code == 400 and "malformed JSON" in bad.json()["error"]


async def test_a_forwarded_request_is_served_where_it_arrives(
    iris: Artifact, arms: tuple[Arm, Arm]
) -> None:
    """One hop at most: the loop-prevention header wins over the assignment."""
    a, _ = arms
    key = next(f"u{i}" for i in range(100) if assign(SALT, f"u{i}", 0.3) == "b")
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(
            f"{a.base}/v2/models/iris/infer",
            json=v2_matrix(iris.frame.head(1)),
            headers={"x-user-id": key, "x-modelwerk-forwarded": "b"},
        )
        text = (await client.get(f"{a.base}/metrics")).text
    assert r.headers["x-modelwerk-arm"] == "a"
    assert metric(text, "modelwerk_experiment_served_total", via="misrouted") == 1
    assert metric(text, "modelwerk_experiment_forwards_total") == 0


async def test_an_unreachable_arm_is_served_locally_and_counted(iris: Artifact) -> None:
    model = load_model(iris.settings(version="iris-v1"))
    port, dead = free_port(), free_port()  # nothing listens on ``dead``
    router = arm_app(iris, model, "a", "iris-v1", dead, share_b=0.5)
    key = next(f"u{i}" for i in range(100) if assign(SALT, f"u{i}", 0.5) == "b")
    async with serving(router, port), httpx.AsyncClient(timeout=10) as client:
        r = await client.post(
            f"http://127.0.0.1:{port}/v2/models/iris/infer",
            json=v2_matrix(iris.frame.head(1)),
            headers={"x-user-id": key},
        )
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    assert r.status_code == 200 and r.headers["x-modelwerk-arm"] == "a"
    assert metric(text, "modelwerk_experiment_forwards_total", outcome="error") == 1
    assert metric(text, "modelwerk_experiment_served_total", via="fallback") == 1


@asynccontextmanager
async def silent_peer() -> AsyncIterator[int]:
    """A port whose server accepts connections and never answers; yields the port."""
    hung: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)

    silent = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield silent.sockets[0].getsockname()[1]
    finally:
        for writer in hung:
            writer.close()
        silent.close()
        await silent.wait_closed()


async def test_a_slow_arm_times_out_and_the_request_is_served_locally(iris: Artifact) -> None:
    model = load_model(iris.settings(version="iris-v1"))
    port = free_port()
    key = next(f"u{i}" for i in range(100) if assign(SALT, f"u{i}", 0.5) == "b")
    async with silent_peer() as peer:
        router = arm_app(
            iris, model, "a", "iris-v1", peer, share_b=0.5, forward_timeout_seconds=0.3
        )
        async with serving(router, port), httpx.AsyncClient(timeout=10) as client:
            r = await client.post(
                f"http://127.0.0.1:{port}/v2/models/iris/infer",
                json=v2_matrix(iris.frame.head(1)),
                headers={"x-user-id": key},
            )
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    assert r.status_code == 200 and r.headers["x-modelwerk-arm"] == "a"
    assert metric(text, "modelwerk_experiment_forwards_total", outcome="timeout") == 1


async def test_without_an_experiment_the_server_is_not_wrapped(
    iris: Artifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELWERK_EXPERIMENT_ARM", raising=False)
    server = create_app(iris.settings(), load_model(iris.settings()))
    assert wrap(server) is server


async def test_labels_with_the_key_reach_the_arm_that_answered(
    iris: Artifact, arms: tuple[Arm, Arm]
) -> None:
    """Feedback through any pod: with the key header it is forwarded to the key's arm, whose
    pod remembers the prediction (one pod per arm here)."""
    a, b = arms
    body = v2_matrix(iris.frame.head(1))
    rng = random.Random(5)
    async with httpx.AsyncClient(timeout=10) as client:
        for i in range(20):
            key = f"label-user-{i}"
            answer = await client.post(
                f"{rng.choice(arms).base}/v2/models/iris/infer",
                json=body,
                headers={"x-user-id": key},
            )
            label = answer.json()["outputs"][0]["data"][0]
            r = await client.post(
                f"{rng.choice(arms).base}/v2/models/iris/feedback",
                json={"id": answer.json()["id"], "label": label},
                headers={"x-user-id": key},
            )
            assert r.status_code == 200 and r.json()["matched"] == 1, r.text
        texts = [(await client.get(f"{pod.base}/metrics")).text for pod in (a, b)]
    correct = [metric(t, "modelwerk_model_feedback_total", result="correct") for t in texts]
    assert sum(correct) == 20 and all(c > 0 for c in correct)


async def test_every_captured_row_carries_its_unit_whichever_pod_assigned_it(
    iris: Artifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The aggregator counts distinct units from this column: a keyed request's rows carry
    the salted hash of its key on either arm's pod (forwards included), a keyless one a
    token of its own; the key itself is never written."""
    capture = {
        "capture": True, "capture_root": str(tmp_path), "namespace": "ml",
        "deployment": "iris", "capture_flush_seconds": 0.05,
    }  # fmt: skip
    port_a, port_b = free_port(), free_port()
    routers = []
    for arm, version, peer in (("a", "iris-v1", port_b), ("b", "iris-v2", port_a)):
        monkeypatch.setenv("MODELWERK_EXPERIMENT_ARM", arm)  # read when capture starts
        settings = iris.settings(version=version, pod=f"pod-{arm}", **capture)
        server = create_app(settings, load_model(settings))
        routers.append((server, arm_app_around(server, arm, peer)))
    (server_a, router_a), (server_b, router_b) = routers
    body = v2_matrix(iris.frame.head(2))
    rng = random.Random(9)
    sent: dict[str, str | None] = {}
    async with (
        serving(router_a, port_a),
        serving(router_b, port_b),
        httpx.AsyncClient(timeout=10) as client,
    ):
        for i in range(60):
            key = f"user-{i % 15}" if i % 4 else None
            rid = f"req-{i}"
            headers = {"x-request-id": rid, **({"x-user-id": key} if key else {})}
            port = rng.choice((port_a, port_b))
            r = await client.post(
                f"http://127.0.0.1:{port}/v2/models/iris/infer", json=body, headers=headers
            )
            assert r.status_code == 200, r.text
            sent[rid] = key
    for server in (server_a, server_b):
        await server.shutdown()
    rows = ds.dataset(tmp_path / "captures", partitioning="hive").to_table().to_pandas()
    assert len(rows) == 2 * 60
    for rid, group in rows.groupby("request_id"):
        key = sent[str(rid)]
        (unit,) = set(group["unit"])
        (arm,) = set(group["arm"])
        if key is not None:
            assert unit == unit_of(SALT, key) and arm == assign(SALT, key, 0.3)
        else:
            assert len(unit) == 16 and int(unit, 16) >= 0
    keyless = rows[rows["request_id"].map(lambda r: sent[r] is None)]
    assert keyless["unit"].nunique() == 15  # each keyless request is its own unit
    assert not rows["unit"].isin([f"user-{i}" for i in range(15)]).any()


def arm_app_around(server: Any, arm: str, peer: int) -> ExperimentRouter:
    settings = ExperimentSettings(
        arm=arm,  # type: ignore[arg-type]
        share_b=0.3,
        salt=SALT,
        key="header:x-user-id",
        peer_url=f"http://127.0.0.1:{peer}",
    )
    router = wrap(server, settings, chance=random.Random(7).random)
    assert isinstance(router, ExperimentRouter)
    return router
