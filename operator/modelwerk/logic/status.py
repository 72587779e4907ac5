"""Helpers every kind's logic uses to fill in the common status fields."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from modelwerk.api.conditions import READY, ConditionStatus, set_condition
from modelwerk.api.v1alpha1.common import StatusBase

S = TypeVar("S", bound=StatusBase)


def with_ready(
    status: S,
    ready: ConditionStatus,
    reason: str,
    message: str,
    *,
    phase: str,
    generation: int,
    now: datetime,
    also: Iterable[tuple[str, ConditionStatus, str]] = (),
    **fields: Any,
) -> S:
    """``status`` for ``generation`` with its phase, message and Ready condition set.

    ``also`` sets further conditions (type, status, reason) with the same message;
    ``fields`` are other status fields to update.
    """
    conditions = set_condition(
        status.conditions, READY, ready, reason, message, now=now, generation=generation
    )
    for type_, state, why in also:
        conditions = set_condition(
            conditions, type_, state, why, message, now=now, generation=generation
        )
    return status.model_copy(
        update={
            "observed_generation": generation,
            "phase": phase,
            "message": message,
            "conditions": conditions,
            **fields,
        }
    )
