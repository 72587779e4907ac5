"""Carry out a Plan: children first, then the status, then events.

Children go before the status so that a status never claims something (a Job started, a
Service switched) that a crash could leave undone; on the next reconcile the same Plan is
computed again and applying it twice changes nothing.

Before writing anything, a plan with several children is tried as a whole with a server-side
dry run, and every child it would apply is checked to be the owner's own: a spec the API
server refuses for one child (a node port already taken, a quantity a pod cannot have) or a
name already used by an object someone else owns raises :class:`ChildRefused` with nothing
written, never a half-created set of children or a take-over of a stranger's Service.

The status is applied with the operator's field manager and only with the conditions the
operator owns or decided now: a condition another field manager wrote (a policy engine, a
person with kubectl) is carried in the plan only because it was read. Applying it would
make the operator a co-owner, so that its owner could no longer change it without a
conflict, and, when the read was stale, would put back a value its owner had just changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from modelwerk.api.base import Resource
from modelwerk.kube.client import FIELD_MANAGER, ApiError, Kube
from modelwerk.kube.resources import EVENTS, resource_of
from modelwerk.logic.plan import Event, Plan

_COMPONENT = "modelwerk-operator"

logger = logging.getLogger(__name__)


_REFUSALS = (400, 422)
"""The API server's answers to a child that cannot exist as specified (not transient)."""


class ChildRefused(Exception):
    """A child of the plan cannot be written; nothing of the plan was."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _describe(child: dict[str, Any]) -> str:
    return f"{child['kind']} {child['metadata']['name']}"


def _controlled_by(existing: dict[str, Any], uid: str) -> bool:
    refs = existing.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("controller") and ref.get("uid") == uid for ref in refs)


_CHECKED: OrderedDict[str, str] = OrderedDict()
"""Object uid -> digest of the last set of children that passed the preflight. Most reconciles
(resyncs, events that change nothing) plan exactly the children they planned before; those
were checked then, so they cost no extra reads or dry runs now."""
_CHECKED_LIMIT = 10_000


def _digest(plan: Plan) -> str:
    children = json.dumps([plan.apply, plan.create], sort_keys=True, default=str)
    return hashlib.sha256(children.encode()).hexdigest()


async def _preflight(kube: Kube, obj: Resource, plan: Plan) -> None:
    if not plan.apply and not plan.create:
        return
    uid, digest = obj.metadata.uid, _digest(plan)
    if uid and _CHECKED.get(uid) == digest:
        _CHECKED.move_to_end(uid)
        return
    await _check(kube, obj, plan)
    if uid:
        _CHECKED[uid] = digest
        _CHECKED.move_to_end(uid)
        while len(_CHECKED) > _CHECKED_LIMIT:
            _CHECKED.popitem(last=False)


async def _check(kube: Kube, obj: Resource, plan: Plan) -> None:
    for child in plan.apply:
        meta = child["metadata"]
        rt = resource_of(child["apiVersion"], child["kind"])
        existing = await kube.get(rt, meta.get("namespace"), meta["name"])
        if existing is not None and not _controlled_by(existing, obj.metadata.uid):
            raise ChildRefused(
                "NameTaken",
                f"{_describe(child)} already exists and does not belong to this "
                f"{obj.crd.kind}; rename one of them",
            )
    if len(plan.apply) + len(plan.create) < 2:
        return  # a single write is all or nothing by itself
    for child in plan.apply:
        await _refusing(kube.apply(child, dry_run=True), child)
    for new in plan.create:
        await _refusing(kube.create(new, dry_run=True), new)


async def _refusing(write: Awaitable[Any], child: dict[str, Any]) -> None:
    try:
        await write
    except ApiError as exc:
        if exc.status not in _REFUSALS:
            raise
        raise ChildRefused(
            "ChildRefused", f"The API server refused {_describe(child)}: {exc.message}"
        ) from None


async def apply_plan(kube: Kube, obj: Resource, plan: Plan, *, now: datetime) -> bool:
    """Apply ``plan`` to the cluster; returns whether the status changed.

    Raises :class:`ChildRefused` when a child cannot be written as planned.
    """
    await _preflight(kube, obj, plan)
    # Services first: the one write a race can still refuse after the dry run (two objects
    # claiming one node port at once) then comes before anything that would be left behind.
    for child in sorted(plan.apply, key=lambda c: c["kind"] != "Service"):
        await _refusing(kube.apply(child), child)
    for new in plan.create:
        await _refusing(kube.create(new), new)
    for key in plan.delete:
        await kube.delete(resource_of(key.api_version, key.kind), key.namespace, key.name)
    for key, body in plan.patch:
        await kube.request(
            "PATCH",
            resource_of(key.api_version, key.kind).path(key.namespace, key.name),
            body=body,
            content_type="application/merge-patch+json",
            params={"fieldManager": FIELD_MANAGER},
            retry_conflicts=False,  # a stale resourceVersion needs a fresh read, not a retry
        )
    if plan.spec_patch:
        rt = resource_of(obj.api_version, obj.crd.kind)
        await kube.request(
            "PATCH",
            rt.path(obj.metadata.namespace, obj.metadata.name),
            body={"spec": plan.spec_patch},
            content_type="application/merge-patch+json",
            params={"fieldManager": FIELD_MANAGER},
        )
    desired = plan.status.to_k8s()
    current: dict[str, Any] = obj.status.to_k8s()  # type: ignore[attr-defined]
    changed = desired != current
    if changed:
        await kube.apply(
            {
                "apiVersion": obj.api_version,
                "kind": obj.crd.kind,
                "metadata": {"name": obj.metadata.name, "namespace": obj.metadata.namespace},
                "status": status_to_apply(desired, current, owned_conditions(obj)),
            },
            subresource="status",
        )
    for event in plan.events:
        try:
            await post_event(kube, obj, event, now=now)
        except ApiError as exc:
            # Events are best effort (a terminating namespace refuses them); the status,
            # already written, is the record that matters.
            logger.info("Could not record event %s on %s: %s", event.reason, obj.metadata.name, exc)
    return changed


def owned_conditions(obj: Resource) -> set[str]:
    """Condition types the operator's field manager owns in ``obj``'s status."""
    owned: set[str] = set()
    for entry in (obj.metadata.model_extra or {}).get("managedFields") or []:
        if entry.get("manager") != FIELD_MANAGER or entry.get("subresource") != "status":
            continue
        conditions = (entry.get("fieldsV1") or {}).get("f:status", {}).get("f:conditions", {})
        for key in conditions:
            if key.startswith("k:"):  # a list-map key: k:{"type":"Ready"}
                owned.add(json.loads(key[2:]).get("type", ""))
    return owned


def status_to_apply(
    desired: dict[str, Any], current: dict[str, Any], owned: set[str]
) -> dict[str, Any]:
    """``desired`` without the conditions the operator neither owns nor changed.

    >>> mine = {"type": "Ready", "status": "True"}
    >>> theirs = {"type": "example.com/Audited", "status": "True"}
    >>> status_to_apply({"conditions": [mine, theirs]}, {"conditions": [mine, theirs]}, {"Ready"})
    {'conditions': [{'type': 'Ready', 'status': 'True'}]}
    """
    if "conditions" not in desired:
        return desired
    before = {c["type"]: c for c in current.get("conditions") or []}
    ours = [c for c in desired["conditions"] if c["type"] in owned or before.get(c["type"]) != c]
    return {**desired, "conditions": ours}


async def post_event(kube: Kube, obj: Resource, event: Event, *, now: datetime) -> None:
    meta = obj.metadata
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.name}.", "namespace": meta.namespace},
        "involvedObject": {
            "apiVersion": obj.api_version,
            "kind": obj.crd.kind,
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:1024],
        "source": {"component": _COMPONENT},
        "reportingComponent": f"modelwerk.dev/{_COMPONENT}",
        "reportingInstance": kube.identity,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    await kube.request("POST", EVENTS.path(meta.namespace), body=body)
