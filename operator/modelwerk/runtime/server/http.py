"""The ASGI plumbing of the model server: reading a JSON body within its size limit, and the
responses (JSON, errors as ``{"error": message}``, the request id echoed when printable)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from modelwerk.runtime.server.codec import MAX_ID_LENGTH, RequestError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

DUMP = orjson.OPT_SERIALIZE_NUMPY


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def _printable(value: str) -> bool:
    return value.isascii() and value.isprintable()


async def read_json(scope: Scope, receive: Receive, limit: int) -> tuple[Any, str | None]:
    """The parsed body and the X-Request-Id header; the size limit is enforced while reading."""
    length: int | None = None
    header_id: str | None = None
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise RequestError("invalid Content-Length header") from None
        elif key == b"x-request-id":
            candidate = value.decode("latin-1")
            if 0 < len(candidate) <= MAX_ID_LENGTH:
                header_id = candidate
    if length is not None and length > limit:
        raise too_large(limit)
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if message.get("more_body", False):
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
        body = b"".join(chunks)
    if len(body) > limit:
        raise too_large(limit)
    if not body:
        raise RequestError("empty request body; send a JSON object")
    try:
        return orjson.loads(body), header_id
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"malformed JSON: {exc}") from None


def too_large(limit: int) -> RequestError:
    return RequestError(f"request body larger than {limit} bytes", 413)


def json_bool(value: bool) -> bytes:
    return b"true" if value else b"false"


async def respond(
    send: Send,
    status: int,
    body: bytes,
    request_id: str | None = None,
    content_type: bytes = b"application/json",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if request_id is not None and _printable(request_id):
        headers.append((b"x-request-id", request_id.encode()))
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, status: int, payload: Any) -> None:
    await respond(send, status, orjson.dumps(payload, option=DUMP))


async def error(
    send: Send, status: int, message: str, request_id: str | None = None, allow: str | None = None
) -> None:
    extra = [(b"allow", allow.encode())] if allow else None
    await respond(send, status, orjson.dumps({"error": message}), request_id, extra=extra)
