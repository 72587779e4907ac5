"""Sticky A/B assignment in the model server, without a service mesh.

During an experiment the stable Service selects the pods of both arms: A (the stable version)
and B (the candidate). Whatever pod a request lands on decides its arm and, when the arm is the
other one, forwards it to that arm's own Service, so the same key gets the same arm through the
stable Service on any pod, and proxies that cannot keep a user on one weighted backend
(envoy#8167; a Service's sessionAffinity is by client IP only) are not needed.

Q: How is a key mapped to an arm?
A: ``bucket = int.from_bytes(sha256(f"{salt}:{key}").digest()[:8], "big") / 2**64``, a number
   in [0, 1) that is uniform over keys and independent between salts (a new experiment gets a
   new salt, so users are reshuffled rather than always landing in the same arm). The key is
   arm B when ``bucket < share_b``. Raising B's share only moves keys from A to B, never back.
   GrowthBook (32-bit FNV-1a twice, into 10,000 buckets) and Statsig (the first 8 bytes of
   SHA-256 of ``salt.unit``, into 10,000 buckets) do the same with coarser buckets.

Q: Where does the key come from?
A: ``key`` is ``header:<name>`` (for example ``header:x-user-id``) or ``parameter:<name>`` (the
   V2 request's ``parameters.<name>``). A request without a key is assigned at random with
   probability ``share_b``: its own unit.

Q: How does forwarding stay safe?
A: One hop at most: the forwarded request carries ``x-modelwerk-forwarded: <arm>`` and a pod
   that receives it serves it itself, whatever its arm says (a pod of the wrong arm counts it
   as misrouted). The forward has a timeout; when the other arm cannot be reached (connection
   refused, timeout) the pod serves the request itself and counts the failure: availability
   first, the response's arm header says which arm really answered. An answer from the other
   arm, errors included, is passed through as it is: a 5xx of B is B's, a guardrail's matter.
   Only the unversioned inference paths are routed; ``/versions/<v>/infer`` asks for a version
   and gets it (or a 404) as always.

Q: How are units counted?
A: Every request the router assigns carries its unit to the server (the ASGI scope's
   ``modelwerk.unit``; a forward carries it in ``x-modelwerk-unit``), and with capture on the
   server writes it with the rows: ``unit_of(salt, key)``, a 64-bit BLAKE2b hash of the salted
   key (the key itself, a user id, is never stored), or a random token for a keyless request
   (its own unit). The aggregator counts the distinct units of each arm from every replica's
   captures, so the sample-ratio check counts units, not requests.

Feedback sent with the key header is forwarded the same way, to the arm whose pods answered
the key's requests (they remember the predictions it labels).

Every inference response says which arm and version served it: ``x-modelwerk-arm`` and
``x-modelwerk-model-version``. The counters (``modelwerk_experiment_*``) give the operator each
arm's assignments, forwards, errors and latency (count, sum, sum of squares: the always-valid
latency guardrail needs the variance).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any, Literal

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelwerk.runtime.server.asgi import (
    UNIT_SCOPE,
    ASGIApp,
    Message,
    Middleware,
    Receive,
    Scope,
    Send,
    feedback_path,
    inference_path,
    post,
    read_body,
    replay,
    served_by,
)

log = logging.getLogger(__name__)

Arm = Literal["a", "b"]

ENV_PREFIX = "MODELWERK_EXPERIMENT_"
FORWARDED = b"x-modelwerk-forwarded"
UNIT_HEADER = b"x-modelwerk-unit"
ARM_HEADER = b"x-modelwerk-arm"
VERSION_HEADER = b"x-modelwerk-model-version"
MAX_KEY_LENGTH = 256
_RELAYED = (b"content-type", b"x-request-id", ARM_HEADER, VERSION_HEADER)
_HOP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ExperimentSettings(BaseSettings):
    """The pod's part in an experiment, from ``MODELWERK_EXPERIMENT_*`` (set by the operator)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    arm: Arm
    """The arm this pod serves."""
    share_b: float = Field(gt=0, lt=1)
    """Share of units assigned to arm B."""
    salt: str = Field(min_length=1, max_length=253)
    """Hashed with every key; one per experiment."""
    key: str = Field(pattern=r"^(header|parameter):[A-Za-z0-9_.-]{1,128}$")
    """Where the unit key is: ``header:<name>`` or ``parameter:<name>`` (V2 parameters)."""
    peer_url: str = Field(pattern=r"^https?://[^/]+$")
    """The other arm's Service, for example ``http://iris-arm-b.ns.svc:80``."""
    forward_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """A forward that takes longer is abandoned and the request served here."""
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Larger bodies are refused with 413 (as the server itself does)."""

    @classmethod
    def from_env(cls) -> ExperimentSettings | None:
        """The settings when the environment configures an experiment, else None."""
        if not os.environ.get(ENV_PREFIX + "ARM"):
            return None
        return cls()


def bucket(salt: str, key: str) -> float:
    """The key's place in [0, 1) for this salt.

    >>> round(bucket("exp-1", "user-42"), 6), round(bucket("exp-2", "user-42"), 6)
    (0.120517, 0.76441)
    """
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def unit_of(salt: str, key: str) -> str:
    """The unit a key stands for, as captured: 16 hex digits of a BLAKE2b hash of the salted
    key, personalised so that it shares nothing with the assignment's SHA-256 bucket (the
    aggregator samples units by a hash of this; a sample that followed the arm would bias it).

    >>> unit_of("exp-1", "user-42") != unit_of("exp-2", "user-42"), len(unit_of("s", "k"))
    (True, 16)
    """
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8, person=b"modelwerk-unit")
    return digest.hexdigest()


def _unit_header(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == UNIT_HEADER:
            text = value.decode("latin-1")
            if 0 < len(text) <= 32 and all(c in "0123456789abcdef" for c in text):
                return text
    return None


def assign(salt: str, key: str, share_b: float) -> Arm:
    return "b" if bucket(salt, key) < share_b else "a"


def other(arm: Arm) -> Arm:
    return "a" if arm == "b" else "b"


class ExperimentMetrics:
    def __init__(self, registry: CollectorRegistry, version: str) -> None:
        self.version = version
        self.assignments = Counter(
            "modelwerk_experiment_assignments",
            "Inference requests assigned to an arm by this pod (keyed: the request had a key; "
            "keyless ones are assigned at random, each its own unit).",
            ["version", "arm", "keyed"],
            registry=registry,
        )
        self.forwards = Counter(
            "modelwerk_experiment_forwards",
            "Requests forwarded to the other arm's Service, by outcome (ok, error, timeout).",
            ["version", "arm", "outcome"],
            registry=registry,
        )
        self.hop = Histogram(
            "modelwerk_experiment_forward_seconds",
            "Time from sending a forward to having the other arm's whole answer.",
            ["version"],
            buckets=_HOP_BUCKETS,
            registry=registry,
        ).labels(version)
        self.served = Counter(
            "modelwerk_experiment_served",
            "Inference requests served by this pod's arm, by outcome (ok, error = 5xx, "
            "client = 4xx) and how they came (direct, forwarded, misrouted, fallback).",
            ["version", "arm", "outcome", "via"],
            registry=registry,
        )
        self.seconds = Counter(
            "modelwerk_experiment_served_seconds",
            "Sum of the serving time of the requests counted in modelwerk_experiment_served.",
            ["version", "arm"],
            registry=registry,
        )
        self.squares = Counter(
            "modelwerk_experiment_served_seconds_squared",
            "Sum of the squared serving times (with the count and sum: the variance).",
            ["version", "arm"],
            registry=registry,
        )

    def serve(self, arm: Arm, status: int, seconds: float, via: str) -> None:
        outcome = "error" if status >= 500 else "client" if status >= 400 else "ok"
        self.served.labels(self.version, arm, outcome, via).inc()
        self.seconds.labels(self.version, arm).inc(seconds)
        self.squares.labels(self.version, arm).inc(seconds * seconds)


class ExperimentRouter(Middleware[ExperimentMetrics]):
    """ASGI middleware in front of the model server: assigns, forwards or serves, and counts.

    ``served`` gives the server's registry and version once the model is loaded; ``chance``
    draws the random assignment of keyless requests (injectable for tests).
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: ExperimentSettings,
        served: Callable[[], tuple[CollectorRegistry, str, str] | None],
        chance: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(app, served)
        self.settings = settings
        self._chance = chance
        kind, _, name = settings.key.partition(":")
        self._header = name.lower().encode() if kind == "header" else None
        self._parameter = name if kind == "parameter" else None

    def make_metrics(
        self, registry: CollectorRegistry, version: str, task: str
    ) -> ExperimentMetrics:
        return ExperimentMetrics(registry, version)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        metrics = self.current_metrics()
        if metrics is not None and post(scope, inference_path):
            await self._route(scope, receive, send, metrics)
        elif metrics is not None and post(scope, feedback_path):
            await self._route_feedback(scope, receive, send, metrics)
        else:
            await self.app(scope, receive, send)  # also while the model is still loading

    async def _route(
        self, scope: Scope, receive: Receive, send: Send, metrics: ExperimentMetrics
    ) -> None:
        s = self.settings
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        forwarded = next((v for k, v in headers if k == FORWARDED), None)
        if forwarded is not None:
            via = "forwarded" if forwarded.decode("latin-1") == s.arm else "misrouted"
            unit = _unit_header(headers)
            if unit is not None:
                scope = {**scope, UNIT_SCOPE: unit}
            await self._serve(scope, receive, send, metrics, via)
            return
        key = self._header_key(headers) if self._header is not None else None
        body: bytes | None = None
        if self._parameter is not None:
            body = await read_body(receive, send, s.max_request_bytes)
            if body is None:
                return
            key = _parameter_key(body, self._parameter)
            receive = replay(body, receive)
        if key is not None:
            arm = assign(s.salt, key, s.share_b)
            unit = unit_of(s.salt, key)
        else:
            arm = "b" if self._chance() < s.share_b else "a"
            unit = os.urandom(8).hex()
        scope = {**scope, UNIT_SCOPE: unit}
        keyed = "true" if key is not None else "false"
        metrics.assignments.labels(metrics.version, arm, keyed).inc()
        if arm == s.arm:
            await self._serve(scope, receive, send, metrics, "direct")
            return
        if body is None:
            body = await read_body(receive, send, s.max_request_bytes)
            if body is None:
                return
            receive = replay(body, receive)
        if not await self._forward(scope, body, arm, send, metrics):
            await self._serve(scope, receive, send, metrics, "fallback")

    async def _route_feedback(
        self, scope: Scope, receive: Receive, send: Send, metrics: ExperimentMetrics
    ) -> None:
        """Labels sent with the key header go to the key's arm, where its predictions were
        served (a keyless label, or one for a parameter key, stays where it lands)."""
        s = self.settings
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        key = self._header_key(headers) if self._header is not None else None
        forwarded = any(k == FORWARDED for k, _ in headers)
        if key is None or forwarded or assign(s.salt, key, s.share_b) == s.arm:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive, send, s.max_request_bytes)
        if body is None:
            return
        if not await self._forward(scope, body, other(s.arm), send, metrics):
            await self.app(scope, replay(body, receive), send)

    def _header_key(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        for name, value in headers:
            if name == self._header:
                key = value.decode("latin-1").strip()
                return key[:MAX_KEY_LENGTH] if key else None
        return None

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, metrics: ExperimentMetrics, via: str
    ) -> None:
        arm = self.settings.arm
        started = time.perf_counter()
        status = 500
        stamp = [(ARM_HEADER, arm.encode()), (VERSION_HEADER, metrics.version.encode())]

        async def stamped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *stamp]}
            await send(message)

        try:
            await self.app(scope, receive, stamped)
        finally:
            metrics.serve(arm, status, time.perf_counter() - started, via)

    async def _forward(
        self, scope: Scope, body: bytes, arm: Arm, send: Send, metrics: ExperimentMetrics
    ) -> bool:
        """Send the request to ``arm``'s Service and relay the answer; False when it could not
        be had (the caller serves the request itself)."""
        s = self.settings
        session = self.client(s.forward_timeout_seconds)
        path = scope["path"] + (
            "?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else ""
        )
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in (b"content-type", b"x-request-id") or k == self._header
        }
        headers[FORWARDED.decode()] = arm
        if scope.get(UNIT_SCOPE):
            headers[UNIT_HEADER.decode()] = scope[UNIT_SCOPE]
        started = time.perf_counter()
        try:
            async with session.post(s.peer_url + path, data=body, headers=headers) as resp:
                payload = await resp.read()
                relayed = [
                    (k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in resp.headers.items()
                    if k.lower().encode("latin-1") in _RELAYED
                ]
                status = resp.status
        except TimeoutError:
            metrics.forwards.labels(metrics.version, arm, "timeout").inc()
            log.warning("forward to arm %s timed out after %ss", arm, s.forward_timeout_seconds)
            return False
        except (aiohttp.ClientError, OSError) as exc:
            metrics.forwards.labels(metrics.version, arm, "error").inc()
            log.warning("forward to arm %s failed: %s", arm, exc)
            return False
        metrics.hop.observe(time.perf_counter() - started)
        metrics.forwards.labels(metrics.version, arm, "ok").inc()
        if not any(k == ARM_HEADER for k, _ in relayed):
            relayed.append((ARM_HEADER, arm.encode()))
        relayed.append((b"content-length", b"%d" % len(payload)))
        await send({"type": "http.response.start", "status": status, "headers": relayed})
        await send({"type": "http.response.body", "body": payload})
        return True


def _parameter_key(body: bytes, name: str) -> str | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # the server answers the malformed body with its own 400
    parameters = doc.get("parameters") if isinstance(doc, dict) else None
    value = parameters.get(name) if isinstance(parameters, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    key = str(value).strip()
    return key[:MAX_KEY_LENGTH] if key else None


def wrap(
    app: Any,
    settings: ExperimentSettings | None = None,
    chance: Callable[[], float] = random.random,
    server: Any = None,
) -> ASGIApp:
    """``app`` behind an ExperimentRouter when ``settings`` or the environment configure an
    experiment; ``app`` itself otherwise. ``server`` is the ModelServer inside (``app`` by
    default)."""
    settings = settings or ExperimentSettings.from_env()
    if settings is None:
        return app  # type: ignore[no-any-return]
    return ExperimentRouter(app, settings, served_by(server or app), chance)
