"""What the model server's middleware share (``experiment``, ``shadow``): ASGI types, reading
and replaying a request body, watching a response, and the lifespan of a middleware that owns
an HTTP client session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import aiohttp
import orjson
from prometheus_client import CollectorRegistry

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNIT_SCOPE = "modelwerk.unit"
"""The ASGI scope key under which the experiment router hands a request's unit (a hash of
its key) to the server, which captures it with the rows."""

M = TypeVar("M")


def inference_path(path: str) -> bool:
    """An unversioned inference path: ``/v2/models/<name>/infer`` or ``/v1/models/<name>:predict``."""
    if path.startswith("/v2/models/"):
        parts = path[len("/v2/models/") :].split("/")
        return len(parts) == 2 and parts[1] == "infer"
    return path.startswith("/v1/models/") and path.endswith(":predict") and path.count("/") == 3


def feedback_path(path: str) -> bool:
    """An unversioned feedback path: ``/v2/models/<name>/feedback``."""
    parts = path.removeprefix("/v2/models/").split("/") if path.startswith("/v2/models/") else []
    return len(parts) == 2 and parts[1] == "feedback"


def post(scope: Scope, path: Callable[[str], bool]) -> bool:
    return scope["type"] == "http" and scope["method"] == "POST" and path(scope["path"])


async def read_body(receive: Receive, send: Send, limit: int) -> bytes | None:
    """The whole request body, refusing more than ``limit`` bytes while reading (with a 413
    sent); None when the body is refused or the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            await refuse(send, 413, f"request body larger than {limit} bytes")
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out ``body`` once, then waits on the real one (disconnects)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def refuse(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"error": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Recording:
    """Wraps ``receive`` and ``send`` to keep the request body, the response status and (with
    ``answer``) the body of a 200 response, while passing everything through."""

    def __init__(self, receive: Receive, send: Send, *, answer: bool = False) -> None:
        self._receive, self._send, self._answer = receive, send, answer
        self.request: list[bytes] = []
        self.response: list[bytes] = []
        self.status = 0

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.request.append(message.get("body", b""))
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body" and self._answer and self.status == 200:
            self.response.append(message.get("body", b""))
        await self._send(message)


class Middleware(Generic[M]):
    """An ASGI middleware in front of the model server, with metrics on the server's registry
    (made once the model is loaded: ``make_metrics``) and an HTTP client session it closes at
    shutdown."""

    def __init__(
        self, app: ASGIApp, served: Callable[[], tuple[CollectorRegistry, str, str] | None]
    ) -> None:
        self.app = app
        self._served = served
        self.metrics: M | None = None
        self.session: aiohttp.ClientSession | None = None

    def make_metrics(self, registry: CollectorRegistry, version: str, task: str) -> M:
        raise NotImplementedError

    def current_metrics(self) -> M | None:
        if self.metrics is None:
            found = self._served()  # the server's registry exists once the model is loaded
            if found is not None:
                self.metrics = self.make_metrics(*found)
        return self.metrics

    def client(self, timeout: float) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=False
            )
        return self.session

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watch(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown"):
                await self.close()
            await send(message)

        await self.app(scope, receive, watch)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def served_by(server: Any) -> Callable[[], tuple[CollectorRegistry, str, str] | None]:
    """What a middleware needs of the ModelServer ``server``: its registry, the served version
    and task, once the model is loaded."""

    def served() -> tuple[CollectorRegistry, str, str] | None:
        model = getattr(server, "model", None)
        if model is None:
            return None
        return server.metrics.registry, model.version, model.task

    return served
