"""The one reconcile path every kind goes through: read, decide, apply, requeue.

Whatever triggered it (a change of the object, an event on a child, a timer, a restart), a
reconcile reads the object fresh from the API server and decides from what it sees, so
missing or repeated events cannot lead it astray.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import NamedTuple

from pydantic import ValidationError

from modelwerk import clock
from modelwerk.api.base import ObjectMeta, Resource
from modelwerk.api.v1alpha1.common import StatusBase
from modelwerk.handlers.context import Context
from modelwerk.kube.apply import ChildRefused, apply_plan
from modelwerk.kube.client import ApiError
from modelwerk.kube.resources import ResourceType
from modelwerk.logic.plan import Event, Plan
from modelwerk.logic.status import with_ready
from modelwerk.metrics import RECONCILE_SECONDS, RECONCILES

logger = logging.getLogger(__name__)


class Key(NamedTuple):
    kind: str
    namespace: str
    name: str


Decide = Callable[[Context, Resource, datetime], Awaitable[Plan]]
"""Observe what the object needs (children, referenced objects) and return the pure plan."""


class KindReconciler(NamedTuple):
    model: type[Resource]
    resource: ResourceType
    decide: Decide


async def reconcile(ctx: Context, kind: KindReconciler, key: Key) -> float | None:
    started = time.perf_counter()
    try:
        body = await ctx.kube.get(kind.resource, key.namespace, key.name)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return None
        now = clock.now()
        try:
            obj = kind.model.from_k8s(body)
        except ValidationError as exc:
            obj, plan = _invalid(kind.model, body, exc, now=now)
        else:
            plan = await kind.decide(ctx, obj, now)
        try:
            await apply_plan(ctx.kube, obj, plan, now=now)
        except ChildRefused as refused:
            # The spec asks for something the cluster will not hold: say so and wait for a
            # change (or the resync), rather than failing and retrying the same refusal.
            plan = _refused(obj, refused, now=now)
            await apply_plan(ctx.kube, obj, plan, now=now)
    except ApiError as exc:
        if _namespace_terminating(exc):
            # Everything in it is being deleted: there is nothing left to reconcile, and
            # retrying would only be refused again until the namespace is gone.
            RECONCILES.labels(key.kind, "skipped").inc()
            return None
        RECONCILES.labels(key.kind, "error").inc()
        raise
    except Exception:
        RECONCILES.labels(key.kind, "error").inc()
        raise
    finally:
        RECONCILE_SECONDS.labels(key.kind).observe(time.perf_counter() - started)
    RECONCILES.labels(key.kind, "success").inc()
    return plan.requeue_after or ctx.settings.resync_seconds


def _namespace_terminating(exc: ApiError) -> bool:
    return exc.status == 403 and "because it is being terminated" in exc.message


def _refused(obj: Resource, refused: ChildRefused, *, now: datetime) -> Plan:
    previous: StatusBase = obj.status  # type: ignore[attr-defined]
    status = with_ready(
        previous,
        "False",
        refused.reason,
        refused.message,
        phase=obj.crd.failed_phase,
        generation=obj.metadata.generation,
        now=now,
    )
    events = () if status == previous else (Event("Warning", refused.reason, refused.message),)
    return Plan(status=status, events=events)


def _invalid(
    model: type[Resource], body: dict[str, object], exc: ValidationError, *, now: datetime
) -> tuple[Resource, Plan]:
    """An object the API server accepted but the operator cannot use: say why in its status.

    Admission normally refuses such objects; this covers rules only the operator can check
    and objects stored before a rule existed.
    """
    status_model: type[StatusBase] = model.model_fields["status"].annotation  # type: ignore[assignment]
    try:
        status = status_model.model_validate(body.get("status") or {})
    except ValidationError:
        status = status_model()
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    shell = model.model_construct(
        api_version=str(body.get("apiVersion", "")),
        kind=str(body.get("kind", "")),
        metadata=ObjectMeta.model_validate(body["metadata"]),
        status=status,
    )
    generation = shell.metadata.generation
    status = with_ready(
        status,
        "False",
        "InvalidSpec",
        f"The spec is invalid: {problems}",
        phase=model.crd.failed_phase,
        generation=generation,
        now=now,
    )
    return shell, Plan(status=status)
