"""A small asynchronous client for the handful of API calls the operator makes.

Writes use server-side apply with one field manager, so the operator owns exactly the fields
it sets: a user's or another controller's fields on the same object are never overwritten,
and a field the operator stops setting is removed. Conflicts (409), throttling (429) and
transient server errors (5xx) are retried a few times with backoff before they surface.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from modelwerk.kube.credentials import Credentials
from modelwerk.kube.resources import ResourceType, resource_of

FIELD_MANAGER = "modelwerk-operator"
_RETRYABLE = {409, 429, 500, 502, 503, 504}
_ATTEMPTS = 4

logger = logging.getLogger(__name__)

Body = dict[str, Any]


class ApiError(Exception):
    """The API server refused a request."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Kube:
    """Typed verbs over the REST API; one instance (and connection pool) per operator."""

    def __init__(
        self, credentials: Credentials, *, identity: str = FIELD_MANAGER, timeout: float = 30.0
    ) -> None:
        self.identity = identity
        """Who is acting, for example the pod name; recorded on Events."""
        self._credentials = credentials
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._credentials.ssl_context(), limit=32)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        retry_conflicts: bool = True,
    ) -> Body:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        token = self._credentials.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body)
        delay = 0.2
        for attempt in range(1, _ATTEMPTS + 1):
            async with self._session_now().request(
                method, self._credentials.server + path, params=params, data=data, headers=headers
            ) as response:
                text = await response.text()
                if response.status < 300:
                    return json.loads(text) if text else {}
                error = _error(response.status, text)
                retryable = response.status in _RETRYABLE and (
                    retry_conflicts or response.status != 409
                )
                if not retryable or attempt == _ATTEMPTS:
                    raise error
                wait = _retry_after(response.headers.get("Retry-After")) or delay
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


def _retry_after(value: str | None) -> float | None:
    try:
        return min(float(value), 10.0) if value else None
    except ValueError:
        return None
