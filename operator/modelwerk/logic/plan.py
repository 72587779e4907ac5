"""What a reconcile decided: the status to write, children to apply or delete, events to emit.

The kube layer carries a Plan out; nothing here performs I/O, so every decision is testable
as a plain function call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from modelwerk.api.v1alpha1.common import StatusBase


@dataclass(frozen=True)
class ObjectKey:
    api_version: str
    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    status: StatusBase
    """The whole desired status; written only when it differs from the observed one."""
    apply: tuple[dict[str, Any], ...] = ()
    """Children in their desired state (server-side apply, owned by the operator)."""
    create: tuple[dict[str, Any], ...] = ()
    """Objects created once and then left alone (registered ModelVersions, retraining runs)."""
    delete: tuple[ObjectKey, ...] = ()
    """Children that must go."""
    patch: tuple[tuple[ObjectKey, dict[str, Any]], ...] = ()
    """Merge patches of objects the user owns (an HTTPRoute's backend weights)."""
    events: tuple[Event, ...] = field(default=())
    """Kubernetes Events to record on the object."""
    requeue_after: float | None = None
    """Reconcile again after this many seconds even without an event (time-based steps)."""
    spec_patch: dict[str, Any] | None = None
    """A merge patch of the object's own spec. The operator writes a spec in one case only:
    archiving a Production ModelVersion superseded by a newer one (the registry's rule)."""
