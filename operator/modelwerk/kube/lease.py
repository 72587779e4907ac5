"""Reads and writes of the leader election Lease, with optimistic concurrency.

A write either creates the Lease (when there was none) or replaces it carrying the
resourceVersion that was read; the API server's 409 then means another replica wrote first,
and the write reports that it lost instead of raising.
"""

from __future__ import annotations

from typing import Any

from modelwerk.kube.client import ApiError, Body, Kube
from modelwerk.kube.resources import LEASES
from modelwerk.logic.leader import LeaseRecord

_LABELS = {
    "app.kubernetes.io/name": "modelwerk-operator",
    "app.kubernetes.io/part-of": "modelwerk",
}


async def observe_lease(kube: Kube, namespace: str, name: str) -> Body | None:
    """The Lease as stored (None when there is none); its ``spec`` feeds LeaseRecord."""
    return await kube.get(LEASES, namespace, name)


def lease_record(lease: Body | None) -> LeaseRecord | None:
    return None if lease is None else LeaseRecord.from_spec(lease.get("spec") or {})


async def write_lease(
    kube: Kube, namespace: str, name: str, record: LeaseRecord, current: Body | None
) -> Body | None:
    """Create the Lease, or replace ``current`` with ``record``; None if someone else won."""
    body: dict[str, Any]
    if current is None:
        body = {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": {"name": name, "namespace": namespace, "labels": _LABELS},
            "spec": record.to_spec(),
        }
        method, path = "POST", LEASES.path(namespace)
    else:
        # Fields of the spec this code does not know (newer API versions) are kept.
        body = {**current, "spec": {**(current.get("spec") or {}), **record.to_spec()}}
        method, path = "PUT", LEASES.path(namespace, name)
    try:
        return await kube.request(method, path, body=body, retry_conflicts=False, fenced=False)
    except ApiError as exc:
        if exc.status == 409:  # AlreadyExists on create, Conflict on a stale resourceVersion
            return None
        raise
