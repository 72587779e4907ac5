"""A small asynchronous client for the handful of API calls the operator makes.

Writes use server-side apply with one field manager, so the operator owns exactly the fields
it sets: a user's or another controller's fields on the same object are never overwritten,
and a field the operator stops setting is removed. Throttling (429, with the API server's
Retry-After), transient server errors (500, 502, 503, 504) and write conflicts (409) are
retried a few times with jittered exponential backoff before they surface; the work queue
then retries the whole reconcile from a fresh read. A conflict on a write that carries a
resourceVersion is never retried here: the same body can only conflict again, so the caller
has to read again and decide anew (leader election depends on that).

Every write passes the ``fence`` first: a replica that is not the leader sends none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from modelwerk import __version__
from modelwerk.kube.credentials import Credentials
from modelwerk.kube.resources import ResourceType, resource_of
from modelwerk.kube.session import LazySession
from modelwerk.metrics import API_RETRIES

FIELD_MANAGER = "modelwerk-operator"
_RETRYABLE = {409, 429, 500, 502, 503, 504}
_ATTEMPTS = 4
_READS = {"GET", "HEAD"}

logger = logging.getLogger(__name__)

Body = dict[str, Any]


class ApiError(Exception):
    """The API server refused a request."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotLeader(Exception):
    """A write was refused locally: this replica does not hold the leader lease."""


class Kube:
    """Typed verbs over the REST API; one instance (and connection pool) per operator."""

    def __init__(
        self, credentials: Credentials, *, identity: str = FIELD_MANAGER, timeout: float = 30.0
    ) -> None:
        self.identity = identity
        """Who is acting, for example the pod name; recorded on Events."""
        self.fence: Callable[[], bool] | None = None
        """Asked before every write; writes are refused (``NotLeader``) while it says False."""
        self._credentials = credentials
        self._session = LazySession(
            lambda: aiohttp.TCPConnector(ssl=credentials.ssl_context(), limit=32),
            aiohttp.ClientTimeout(total=timeout),
        )

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        retry_conflicts: bool = True,
        fenced: bool = True,
    ) -> Body:
        """One API call; ``fenced=False`` only for the leader election's own Lease writes."""
        headers = {
            "Accept": "application/json",
            "Content-Type": content_type,
            "User-Agent": f"modelwerk-operator/{__version__} ({self.identity})",
        }
        token = self._credentials.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body)
        if isinstance(body, dict) and body.get("metadata", {}).get("resourceVersion"):
            retry_conflicts = False  # a precondition: the same body would conflict again
        delay = 0.2
        for attempt in range(1, _ATTEMPTS + 1):
            if fenced and method not in _READS and self.fence is not None and not self.fence():
                raise NotLeader(f"{method} {path}: this replica is not the leader")
            async with self._session.get().request(
                method, self._credentials.server + path, params=params, data=data, headers=headers
            ) as response:
                text = await response.text()
                if response.status < 300:
                    return json.loads(text) if text else {}
                error = _error(response.status, text)
                if not _retryable(error, retry_conflicts) or attempt == _ATTEMPTS:
                    raise error
                # Jitter spreads the retries of many workers hit by the same outage (the
                # API server asks them all for the same Retry-After).
                jitter = random.uniform(delay / 2, delay)
                retry_after = _retry_after(response.headers.get("Retry-After"))
                wait = jitter if retry_after is None else retry_after + jitter / 2
            API_RETRIES.labels(str(error.status)).inc()
            logger.debug("Retrying %s %s after %s (attempt %d)", method, path, error, attempt)
            await asyncio.sleep(wait)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def get(self, rt: ResourceType, namespace: str | None, name: str) -> Body | None:
        try:
            return await self.request("GET", rt.path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(
        self, rt: ResourceType, namespace: str | None, *, labels: Mapping[str, str] | None = None
    ) -> list[Body]:
        params = (
            {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else None
        )
        listing = await self.request("GET", rt.path(namespace), params=params)
        items: list[Body] = listing.get("items", [])
        for item in items:
            # Lists omit apiVersion/kind on items; restore them so items look like gets.
            item.setdefault("apiVersion", rt.api_version)
            item.setdefault("kind", rt.kind)
        return items

    async def apply(
        self, obj: Body, *, subresource: str | None = None, dry_run: bool = False
    ) -> Body:
        """Server-side apply of ``obj`` (or of its status with ``subresource="status"``);
        ``dry_run`` runs validation and admission without storing anything."""
        rt = resource_of(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        return await self.request(
            "PATCH",
            rt.path(meta.get("namespace"), meta["name"], subresource),
            params=params | ({"dryRun": "All"} if dry_run else {}),
            body=obj,
            content_type="application/apply-patch+yaml",
        )

    async def create(self, obj: Body, *, dry_run: bool = False) -> Body | None:
        """Create ``obj``; ``None`` when an object of that name already exists."""
        rt = resource_of(obj["apiVersion"], obj["kind"])
        params = {"fieldManager": FIELD_MANAGER}
        try:
            return await self.request(
                "POST",
                rt.path(obj["metadata"].get("namespace")),
                params=params | ({"dryRun": "All"} if dry_run else {}),
                body=obj,
                retry_conflicts=False,
            )
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise

    async def delete(self, rt: ResourceType, namespace: str | None, name: str) -> None:
        """Delete in the background (children of the object go through garbage collection)."""
        try:
            await self.request(
                "DELETE",
                rt.path(namespace, name),
                body={"propagationPolicy": "Background"},
                retry_conflicts=False,
            )
        except ApiError as exc:
            if exc.status != 404:
                raise


def _error(status: int, text: str) -> ApiError:
    try:
        payload = json.loads(text)
    except ValueError:
        return ApiError(status, "Unknown", text[:500])
    return ApiError(status, payload.get("reason", "Unknown"), payload.get("message", text[:500]))


def _retryable(error: ApiError, retry_conflicts: bool) -> bool:
    if error.status == 409:
        # AlreadyExists will not go away; a Conflict may (a patch that lost a race).
        return retry_conflicts and error.reason == "Conflict"
    return error.status in _RETRYABLE


def _retry_after(value: str | None) -> float | None:
    try:
        return min(float(value), 10.0) if value else None
    except ValueError:
        return None
