"""Decisions for ModelVersion objects."""

from __future__ import annotations

from datetime import datetime

from modelwerk.api.v1alpha1.model_version import ModelVersion
from modelwerk.logic.plan import Plan
from modelwerk.logic.status import with_ready


def reconcile_model_version(obj: ModelVersion, *, now: datetime) -> Plan:
    """Skeleton: acknowledge the object's generation with a Ready condition."""
    status = with_ready(
        obj.status,
        "False",
        "Pending",
        "The artifact has not been verified yet",
        phase="Pending",
        generation=obj.metadata.generation,
        now=now,
    )
    return Plan(status=status)
