"""Shadow traffic: copies of live requests sent to a candidate, whose answers are compared with
the stable ones in the stable pod.

Users only ever get the stable answer. A share (``percent``) of the inference requests is
copied, after the stable response has been sent, into a bounded queue; a few worker tasks send
the copies to the candidate's Service with a timeout. A full queue drops the copy (counted):
the stable path never waits for the shadow, and a slow or dead candidate costs it nothing but
the copy of a body.

Q: What is compared?
A: The predictions, row by row: for a classifier the rows on which both predict the same class
   (``modelwerk_shadow_agreed_rows_total`` of ``..._compared_rows_total``; the operator puts a
   Wilson interval on the rate), for a regressor the absolute difference (a histogram, for
   quantiles). Besides, the shadow's latency and its errors and timeouts. Mirrors that only
   send (Istio, nginx ``mirror``, Gateway API ``RequestMirror``) throw the answers away.

Q: And which one was right?
A: The pod keeps the last ``labels_capacity`` compared requests' two predictions by request id;
   feedback for one of them that reaches this pod counts the pair (both right, only stable,
   only shadow, both wrong), McNemar's test in the operator. Labels that land on another
   replica (or worker process) are not paired: with more than one stable process the counts
   cover about one label in (processes), a random subset, so McNemar stays sound on fewer
   pairs; it is reported, never a check. The aggregator's join does not pair them yet (it
   matches a label with one capture of the request id, not one per version).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelwerk.runtime.server.asgi import (
    ASGIApp,
    Middleware,
    Receive,
    Recording,
    Scope,
    Send,
    feedback_path,
    inference_path,
    post,
    served_by,
)

log = logging.getLogger(__name__)

ENV_PREFIX = "MODELWERK_SHADOW_"
SHADOW_HEADER = "x-modelwerk-shadow"
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_DIFFERENCES = tuple(10.0**e for e in range(-6, 5))
PAIRS = ("both_right", "stable_only", "shadow_only", "both_wrong")


class ShadowSettings(BaseSettings):
    """The stable pod's shadow, from ``MODELWERK_SHADOW_*`` (set by the operator)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    url: str = Field(pattern=r"^https?://[^/]+$")
    """The candidate's Service, for example ``http://iris-canary.ns.svc:80``."""
    version: str = Field(min_length=1, max_length=253)
    """The candidate's ModelVersion (a label of the comparison metrics)."""
    percent: float = Field(default=100.0, gt=0, le=100)
    """Share of the inference requests copied."""
    queue_size: int = Field(default=256, ge=1, le=100_000)
    """Copies waiting to be sent; more are dropped."""
    timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    """A copy whose answer takes longer is abandoned (counted as a timeout)."""
    concurrency: int = Field(default=4, ge=1, le=64)
    """Copies in flight at once."""
    labels_capacity: int = Field(default=10_000, ge=0)
    """Compared requests remembered for feedback (the paired comparison)."""

    @classmethod
    def from_env(cls) -> ShadowSettings | None:
        if not os.environ.get(ENV_PREFIX + "URL"):
            return None
        return cls()


class ShadowMetrics:
    def __init__(self, registry: CollectorRegistry, version: str, shadow: str) -> None:
        labels = ["version", "shadow_version"]
        self._labels = (version, shadow)
        self.requests = Counter(
            "modelwerk_shadow_requests",
            "Copies of inference requests, by outcome: ok, error (a non-200 answer or a "
            "connection failure), timeout, dropped (the queue was full).",
            [*labels, "outcome"],
            registry=registry,
        )
        self.seconds = Histogram(
            "modelwerk_shadow_request_seconds",
            "The shadow's answer time for the copies it answered.",
            labels,
            buckets=_SECONDS,
            registry=registry,
        ).labels(*self._labels)
        self.compared = Counter(
            "modelwerk_shadow_compared_rows",
            "Rows whose stable and shadow predictions were compared.",
            labels,
            registry=registry,
        ).labels(*self._labels)
        self.agreed = Counter(
            "modelwerk_shadow_agreed_rows",
            "Compared rows on which both predicted the same class (classifiers).",
            labels,
            registry=registry,
        ).labels(*self._labels)
        self.difference = Histogram(
            "modelwerk_shadow_abs_difference",
            "Absolute difference between the stable and the shadow prediction per row "
            "(regressors).",
            labels,
            buckets=_DIFFERENCES,
            registry=registry,
        ).labels(*self._labels)
        self.paired = Counter(
            "modelwerk_shadow_paired_rows",
            "Labelled compared rows by who was right: both_right, stable_only, shadow_only, "
            "both_wrong (McNemar's test uses the two middle ones).",
            [*labels, "result"],
            registry=registry,
        )

    def outcome(self, name: str) -> None:
        self.requests.labels(*self._labels, name).inc()

    def pair(self, result: str, rows: int) -> None:
        if rows:
            self.paired.labels(*self._labels, result).inc(rows)


@dataclass(frozen=True)
class Copy:
    path: str
    body: bytes
    request_id: str | None
    stable: list[Any]
    """The stable predictions, one per row."""


def predictions(body: bytes) -> tuple[str | None, list[Any]] | None:
    """The request id and the predictions of a V2 or V1 inference answer, if it is one.

    >>> predictions(b'{"id": "r1", "outputs": [{"name": "predict", "data": [0, 2]}]}')
    ('r1', [0, 2])
    >>> predictions(b'{"predictions": [1.5]}')
    (None, [1.5])
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("predictions"), list):
        return None, doc["predictions"]
    for output in doc.get("outputs") or []:
        if isinstance(output, dict) and output.get("name") == "predict":
            data = output.get("data")
            if isinstance(data, list):
                rid = doc.get("id")
                return (str(rid) if rid is not None else None), data
    return None


class ShadowMirror(Middleware[ShadowMetrics]):
    """ASGI middleware on the stable pods: copies, compares and counts.

    ``served`` gives the server's registry, version and task once the model is loaded
    (classification compares classes, regression differences); ``chance`` draws which requests
    are copied.
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: ShadowSettings,
        served: Callable[[], tuple[CollectorRegistry, str, str] | None],
        chance: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(app, served)
        self.settings = settings
        self._chance = chance
        self._task = "classification"
        self._queue: asyncio.Queue[Copy] = asyncio.Queue(settings.queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self._pairs: OrderedDict[str, tuple[list[Any], list[Any]]] = OrderedDict()

    def make_metrics(self, registry: CollectorRegistry, version: str, task: str) -> ShadowMetrics:
        self._task = task
        return ShadowMetrics(registry, version, self.settings.version)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        metrics = self.current_metrics()
        if (
            metrics is not None
            and post(scope, inference_path)
            and self._chance() * 100 < self.settings.percent
        ):
            await self._mirror(scope, receive, send)
        elif metrics is not None and self._pairs and post(scope, feedback_path):
            await self._labels(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        await super().close()

    # ------------------------------------------------------------------ copies
    async def _mirror(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen = Recording(receive, send, answer=True)
        await self.app(scope, seen.receive, seen.send)
        if seen.status != 200:
            return  # the stable version refused the input: nothing to compare
        found = predictions(b"".join(seen.response))
        if found is None:
            return
        rid, stable = found
        copy = Copy(scope["path"], b"".join(seen.request), rid, stable)
        self._start_workers()
        try:
            self._queue.put_nowait(copy)
        except asyncio.QueueFull:
            assert self.metrics is not None
            self.metrics.outcome("dropped")

    def _start_workers(self) -> None:
        if not self._workers:
            loop = asyncio.get_running_loop()
            self._workers = [
                loop.create_task(self._work()) for _ in range(self.settings.concurrency)
            ]

    async def _work(self) -> None:
        while True:
            copy = await self._queue.get()
            try:
                await self._send(copy)
            except Exception:
                log.exception("comparing a shadow answer failed")
            finally:
                self._queue.task_done()

    async def _send(self, copy: Copy) -> None:
        s, metrics = self.settings, self.metrics
        assert metrics is not None
        session = self.client(s.timeout_seconds)
        headers = {"content-type": "application/json", SHADOW_HEADER: "1"}
        if copy.request_id:
            headers["x-request-id"] = copy.request_id
        started = time.perf_counter()
        try:
            async with session.post(s.url + copy.path, data=copy.body, headers=headers) as r:
                body = await r.read()
                status = r.status
        except TimeoutError:
            metrics.outcome("timeout")
            return
        except (aiohttp.ClientError, OSError):
            metrics.outcome("error")
            return
        metrics.seconds.observe(time.perf_counter() - started)
        found = predictions(body) if status == 200 else None
        if found is None or len(found[1]) != len(copy.stable):
            metrics.outcome("error")
            return
        metrics.outcome("ok")
        self._compare(copy, found[1], metrics)

    def _compare(self, copy: Copy, shadow: list[Any], metrics: ShadowMetrics) -> None:
        metrics.compared.inc(len(shadow))
        if self._task == "regression":
            for a, b in zip(copy.stable, shadow, strict=True):
                if isinstance(a, int | float) and isinstance(b, int | float):
                    metrics.difference.observe(abs(float(a) - float(b)))
        else:
            metrics.agreed.inc(
                sum(str(a) == str(b) for a, b in zip(copy.stable, shadow, strict=True))
            )
        if copy.request_id and self.settings.labels_capacity and self._task == "classification":
            self._pairs[copy.request_id] = (copy.stable, shadow)
            while len(self._pairs) > self.settings.labels_capacity:
                self._pairs.popitem(last=False)

    # ------------------------------------------------------------------ labels
    async def _labels(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen = Recording(receive, send)
        await self.app(scope, seen.receive, seen.send)
        if seen.status == 200:  # the server accepted the labels: count the pairs they settle
            self._pair(b"".join(seen.request))

    def _pair(self, body: bytes) -> None:
        metrics = self.metrics
        assert metrics is not None
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if isinstance(doc, dict) and "feedback" in doc:
            doc = doc["feedback"]
        counts = dict.fromkeys(PAIRS, 0)
        for item in doc if isinstance(doc, list) else [doc]:
            if not isinstance(item, dict):
                continue
            pair = self._pairs.pop(str(item.get("id")), None)
            if pair is None:
                continue
            labels = item["label"] if "label" in item else item.get("labels")
            labels = labels if isinstance(labels, list) else [labels]
            for stable, shadow, label in zip(*pair, labels, strict=False):
                right = (_same(stable, label), _same(shadow, label))
                counts[PAIRS[(not right[0]) * 2 + (not right[1])]] += 1
        for result, rows in counts.items():
            metrics.pair(result, rows)


def _same(prediction: Any, label: Any) -> bool:
    return str(prediction) == str(label)


def wrap(
    app: Any,
    settings: ShadowSettings | None = None,
    chance: Callable[[], float] = random.random,
    server: Any = None,
) -> ASGIApp:
    """``app`` behind a ShadowMirror when ``settings`` or the environment configure a shadow;
    ``app`` itself otherwise. ``server`` is the ModelServer inside (``app`` by default)."""
    settings = settings or ShadowSettings.from_env()
    if settings is None:
        return app  # type: ignore[no-any-return]
    return ShadowMirror(app, settings, served_by(server or app), chance)
