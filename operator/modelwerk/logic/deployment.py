"""Decisions for Deployment objects."""

from __future__ import annotations

from datetime import datetime

from modelwerk.api.v1alpha1.deployment import Deployment
from modelwerk.logic.plan import Plan
from modelwerk.logic.status import with_ready


def reconcile_deployment(obj: Deployment, *, now: datetime) -> Plan:
    """Skeleton: acknowledge the object's generation with a Ready condition."""
    status = with_ready(
        obj.status,
        "False",
        "Progressing",
        "The model is not being served yet",
        phase="Progressing",
        generation=obj.metadata.generation,
        now=now,
    )
    return Plan(status=status)
