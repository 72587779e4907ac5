"""The HTTP front: a lean ASGI app speaking the Open Inference Protocol (V2) and a V1 shim.

Written against bare ASGI rather than a framework because the request path is the product:
routing is a few string comparisons, the body is read once with the size limit enforced while
reading, JSON goes through orjson (numpy arrays serialised natively) and the model work goes to
the micro-batcher. Bad input is always a 4xx with ``{"error": message}``; 5xx means the server
or the model broke.

Paths (``{name}`` is the served model; ``/versions/{version}`` may follow it in V2 paths)::

    GET  /v2/health/live | /v2/health/ready | /v2          liveness, readiness, server metadata
    GET  /v2/models/{name}                                  model metadata (signature)
    GET  /v2/models/{name}/ready                            model readiness
    POST /v2/models/{name}/infer                            inference
    POST /v2/models/{name}/feedback                         ground truth for earlier requests
    GET  /v1/models/{name}      POST /v1/models/{name}:predict
    GET  /metrics                                           Prometheus
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelwerk import __version__
from modelwerk.runtime.profile import NumericProfile
from modelwerk.runtime.server import traffic
from modelwerk.runtime.server.asgi import UNIT_SCOPE, ASGIApp
from modelwerk.runtime.server.batcher import BatcherClosed, MicroBatcher
from modelwerk.runtime.server.codec import (
    RequestError,
    decode_v1,
    decode_v2,
    encode_v1,
    encode_v2,
)
from modelwerk.runtime.server.drift import DriftMonitor
from modelwerk.runtime.server.feedback import FeedbackTracker, parse_feedback
from modelwerk.runtime.server.http import (
    DUMP,
    ClientGone,
    Receive,
    Scope,
    Send,
    error,
    json_bool,
    read_json,
    respond,
    respond_json,
)
from modelwerk.runtime.server.metrics import CONTENT_TYPE, ServerMetrics, multiprocess_mode
from modelwerk.runtime.server.model import LoadedModel, ModelLoadError, describe, load_model
from modelwerk.runtime.server.settings import ServerSettings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Job:
    x: np.ndarray
    probabilities: bool
    request_id: str = ""
    unit: str | None = None
    """The experiment unit (a hash of its key) the router assigned, captured with the rows."""


Result = tuple[np.ndarray, np.ndarray | None]


def _value_buckets(model: LoadedModel) -> list[float] | None:
    """Regression: bucket predicted values by the training target's quantile edges, if profiled."""
    profile = model.profile
    if profile is None or profile.target is None:
        return None
    target = profile.features.get(profile.target)
    if isinstance(target, NumericProfile) and target.bin_edges:
        return sorted(set(target.bin_edges))
    return None


class ModelServer:
    """The ASGI application. Pass a loaded model, or let the ASGI lifespan load it."""

    def __init__(self, settings: ServerSettings, model: LoadedModel | None = None) -> None:
        self.settings = settings
        self.model: LoadedModel | None = None
        self.ready = False
        self.capture: Any = None
        """The process's :class:`~.capture.ServerCapture` when capture is on."""
        self._refresher: asyncio.Task[None] | None = None
        if model is not None:
            self._attach(model)

    # ------------------------------------------------------------------ state
    def _attach(self, model: LoadedModel) -> None:
        s = self.settings
        self.metrics = ServerMetrics(
            model.name, model.version, model.sha256, model.classes, _value_buckets(model)
        )
        self.drift = (
            DriftMonitor(
                model.profile,
                model.columns,
                s.drift_window,
                s.drift_min_rows,
                s.drift_interval_seconds,
                s.drift_method,
                s.drift_threshold,
                s.drift_false_alarm,
            )
            if model.profile is not None and s.drift_enabled
            else None
        )
        if self.drift is not None:
            self.metrics.set_drift_needed(self.drift.rows_needed, s.drift_method)
        self.feedback = FeedbackTracker(model.task, s.feedback_capacity, s.feedback_window)
        if s.capture:
            # Imported only when on: pyarrow costs every worker process memory.
            from modelwerk.runtime.server.capture import ServerCapture

            self.capture = ServerCapture(s, model, self.metrics.registry)
        self.batcher: MicroBatcher[Job, Result] = MicroBatcher(
            self._predict_batch, s.max_batch_size, s.max_batch_delay_ms / 1000.0
        )
        self._metadata = orjson.dumps(describe(model))
        self.model = model
        self.ready = True  # load_model() returns only after the warm-up predict

    def _predict_batch(self, jobs: Sequence[Job]) -> list[Result]:
        """Runs in the batcher's thread: one predict for all jobs, then per-job slices."""
        model = self.model
        assert model is not None
        x = jobs[0].x if len(jobs) == 1 else np.concatenate([j.x for j in jobs])
        capture = self.capture
        started = time.perf_counter()
        want = any(j.probabilities for j in jobs) or (capture is not None and capture.probabilities)
        pred, proba = model.predict(x, want)
        self.metrics.predict_seconds.observe(time.perf_counter() - started)
        if len(pred) != len(x):
            raise RuntimeError(f"the model returned {len(pred)} predictions for {len(x)} rows")
        # bookkeeping happens here, once per batch and off the event loop
        self.metrics.batch_requests.observe(len(jobs))
        self.metrics.batch_rows.observe(len(x))
        self.metrics.predictions(pred)
        if self.drift is not None:
            self.drift.observe(x)
        if capture is not None:
            ids = [j.request_id for j in jobs]
            units = [j.unit for j in jobs]
            capture.predicted(
                time.time(), ids, [len(j.x) for j in jobs], x, pred, proba,
                units if any(units) else None,
            )  # fmt: skip
        results: list[Result] = []
        start = 0
        for job in jobs:
            stop = start + len(job.x)
            part = proba[start:stop] if proba is not None and job.probabilities else None
            results.append((pred[start:stop], part))
            start = stop
        return results

    def refresh_drift(self) -> None:
        if self.drift is not None:
            self.metrics.set_drift(self.drift.scores(), self.settings.drift_method)

    async def _refresh_loop(self) -> None:
        # Multiprocess mode: a scrape reaches one worker, so every worker publishes its own drift.
        interval = max(1.0, self.settings.drift_interval_seconds)
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.refresh_drift)
            except Exception:
                log.exception("drift computation failed")

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.model is None:
                    try:
                        self._attach(await asyncio.to_thread(load_model, self.settings))
                    except ModelLoadError as exc:
                        log.error("cannot serve the model: %s", exc)
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                # Everything loaded so far (libraries, the model) lives as long as the process:
                # take it out of the cyclic GC, whose full collections over a heap that size
                # otherwise stall the event loop for tens of milliseconds (a p99 cliff).
                gc.collect()
                gc.freeze()
                if multiprocess_mode() and self.drift is not None:
                    self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def shutdown(self) -> None:
        self.ready = False
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self.model is not None:
            await self.batcher.close()
        if self.capture is not None:
            await asyncio.to_thread(self.capture.close)
        if multiprocess_mode():
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if path.startswith("/v2/models/"):
                await self._v2_model(scope, receive, send, path[len("/v2/models/") :], method)
            elif path.startswith("/v1/models/"):
                await self._v1_model(scope, receive, send, path[len("/v1/models/") :], method)
            elif path == "/v2/health/live":
                self._only(method, "GET")
                await respond(send, 200, b'{"live":true}')
            elif path == "/v2/health/ready":
                self._only(method, "GET")
                await respond(
                    send, 200 if self.ready else 503, b'{"ready":%s}' % json_bool(self.ready)
                )
            elif path in ("/v2", "/v2/"):
                self._only(method, "GET")
                await respond_json(
                    send,
                    200,
                    {
                        "name": "modelwerk",
                        "version": __version__,
                        "extensions": ["feedback"],
                    },
                )
            elif path == "/metrics":
                self._only(method, "GET")
                await self._metrics(send)
            else:
                raise RequestError(f"no such path: {path}", 404)
        except RequestError as exc:
            await error(send, exc.status, str(exc), allow=exc.allow)
        except ClientGone:
            pass

    @staticmethod
    def _only(method: str, allowed: str) -> None:
        if method != allowed and not (allowed == "GET" and method == "HEAD"):
            raise RequestError(f"method {method} not allowed here; use {allowed}", 405, allowed)

    def _served(self, name: str, version: str | None) -> LoadedModel:
        model = self.model
        if model is None:
            raise RequestError("the model is still loading", 503)
        if name != model.name:
            raise RequestError(f"model {name!r} not found; this server serves {model.name!r}", 404)
        if version is not None and version != model.version:
            raise RequestError(
                f"version {version!r} of model {name!r} not found; serving {model.version!r}", 404
            )
        return model

    async def _v2_model(
        self, scope: Scope, receive: Receive, send: Send, rest: str, method: str
    ) -> None:
        parts = rest.split("/")
        name, version, action = parts[0], None, parts[1:]
        if len(action) >= 2 and action[0] == "versions":
            version, action = action[1], action[2:]
        verb = "/".join(action)
        if verb not in ("", "ready", "infer", "feedback"):
            raise RequestError(f"no such path: /v2/models/{rest}", 404)
        model = self._served(name, version)
        if verb == "infer":
            self._only(method, "POST")
            await self._infer(scope, receive, send, model, "v2")
        elif verb == "feedback":
            self._only(method, "POST")
            await self._feedback(scope, receive, send, model)
        elif verb == "ready":
            self._only(method, "GET")
            body = b'{"name":%s,"ready":%s}' % (orjson.dumps(model.name), json_bool(self.ready))
            await respond(send, 200 if self.ready else 503, body)
        else:
            self._only(method, "GET")
            await respond(send, 200, self._metadata)

    async def _v1_model(
        self, scope: Scope, receive: Receive, send: Send, rest: str, method: str
    ) -> None:
        if rest.endswith(":predict"):
            model = self._served(rest.removesuffix(":predict"), None)
            self._only(method, "POST")
            await self._infer(scope, receive, send, model, "v1")
            return
        model = self._served(rest, None)
        self._only(method, "GET")
        await respond_json(send, 200, {"name": model.name, "ready": self.ready})

    async def _metrics(self, send: Send) -> None:
        if self.model is None:
            await respond(send, 200, b"", content_type=CONTENT_TYPE.encode())
            return
        if self.drift is not None:
            await asyncio.to_thread(self.refresh_drift)
        await respond(send, 200, self.metrics.exposition(), content_type=CONTENT_TYPE.encode())

    # ------------------------------------------------------------------ inference
    async def _infer(
        self, scope: Scope, receive: Receive, send: Send, model: LoadedModel, protocol: str
    ) -> None:
        metrics = self.metrics
        started = time.perf_counter()
        metrics.in_flight.inc()
        code = 500
        rid: str | None = None
        try:
            batcher = self.batcher
            batcher.arriving += 1  # tells the batcher that this request will join shortly
            try:
                doc, header_id = await read_json(scope, receive, self.settings.max_request_bytes)
                if protocol == "v2":
                    decoded = decode_v2(model, doc)
                    job = Job(decoded.x, decoded.probabilities)
                    rid = decoded.request_id or header_id
                else:
                    job = Job(decode_v1(model, doc), False)
                    rid = header_id
            finally:
                batcher.arriving -= 1
            # Server-made ids are random 128-bit (as unique as uuid4().hex at a third of the
            # cost): unique across pods and restarts, so captures and labels join on them.
            rid = rid or os.urandom(16).hex()
            job.request_id = rid
            job.unit = scope.get(UNIT_SCOPE)
            try:
                pred, proba = await batcher.submit(job)
            except (ValueError, TypeError) as exc:
                # the input matched the signature but the model refused it (e.g. unknown category)
                raise RequestError(f"the model cannot predict this input: {exc}", 422) from exc
            self.feedback.remember(rid, pred.copy())
            payload = encode_v2(model, rid, pred, proba) if protocol == "v2" else encode_v1(pred)
            code = 200
            await respond(send, 200, orjson.dumps(payload, option=DUMP), request_id=rid)
        except RequestError as exc:
            code = exc.status
            await error(send, code, str(exc), request_id=rid)
        except BatcherClosed as exc:
            code = 503
            await error(send, code, str(exc), request_id=rid)
        except ClientGone:
            code = 499  # nginx's "client closed request"; nobody receives it
        except Exception as exc:
            log.exception("inference failed")
            await error(send, 500, f"prediction failed: {type(exc).__name__}", request_id=rid)
        finally:
            metrics.in_flight.dec()
            metrics.latency.observe(time.perf_counter() - started)
            metrics.request(protocol, code)

    # ------------------------------------------------------------------ feedback
    async def _feedback(
        self, scope: Scope, receive: Receive, send: Send, model: LoadedModel
    ) -> None:
        doc, _ = await read_json(scope, receive, self.settings.max_request_bytes)
        items = parse_feedback(doc, model.task)
        self.feedback.check(items)
        stored = None
        if self.capture is not None:
            stored = self.capture.labelled(items, time.time())
            if stored is None:
                raise RequestError(
                    "the labels cannot be stored right now (the buffer is full: the store is "
                    "slow or down); send them again later",
                    503,
                )
        result = self.feedback.record(items)
        value = self.feedback.value
        self.metrics.record_feedback(model.task, result, self.feedback.labelled, value)
        key = "accuracy" if model.task == "classification" else "mae"
        answer = {
            "received": result.received,
            "matched": result.matched,
            "unmatched": result.unmatched,
            key: value,
        }
        if stored is not None:
            answer["stored"] = stored
        await respond_json(send, 200, answer)


def create_app(settings: ServerSettings, model: LoadedModel | None = None) -> ModelServer:
    return ModelServer(settings, model)


def create_app_from_env() -> ASGIApp:
    """uvicorn's factory for worker processes: settings from ``MODELWERK_SERVER_*``; behind
    its shadow mirror and A/B router when the pod has them (``traffic``)."""
    return traffic.wrap(ModelServer(ServerSettings()))
