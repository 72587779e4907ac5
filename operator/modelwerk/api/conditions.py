"""Conditions in the metav1.Condition shape, and the pure helpers that set them.

A condition's ``lastTransitionTime`` changes only when its status flips, so re-running a
reconcile that reaches the same verdict leaves the object untouched (no write, no event).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from modelwerk.api.base import ApiModel

ConditionStatus = Literal["True", "False", "Unknown"]

READY = "Ready"


class Condition(ApiModel):
    """One aspect of an object's state, as in metav1.Condition."""

    type: str = Field(max_length=316, pattern=r"^([a-zA-Z0-9.-]+/)?[A-Za-z][A-Za-z0-9_]*$")
    """Type of condition in CamelCase, for example Ready."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """Machine-readable CamelCase reason for the last transition."""
    message: str = Field(default="", max_length=32768)
    """Human-readable details of the last transition."""
    last_transition_time: datetime
    """When the condition last changed status."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation the condition was computed from."""


def get_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: str) -> bool:
    found = get_condition(conditions, type_)
    return found is not None and found.status == "True"


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set; keeps the transition time unless status flips.

    >>> from datetime import UTC
    >>> t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    >>> c = set_condition([], "Ready", "False", "Pending", "waiting", now=t0)
    >>> c = set_condition(c, "Ready", "False", "Validating", "busy", now=t1)
    >>> c[0].last_transition_time == t0, c[0].reason
    (True, 'Validating')
    """
    previous = get_condition(conditions, type_)
    transitioned = previous is None or previous.status != status
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=now
        if transitioned or previous is None
        else previous.last_transition_time,
        observed_generation=generation,
    )
    if previous is not None and previous == updated:
        return conditions
    others = [c for c in conditions if c.type != type_]
    return sorted([*others, updated], key=lambda c: (c.type != READY, c.type))
