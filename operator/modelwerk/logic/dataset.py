"""Decisions for Dataset objects."""

from __future__ import annotations

from datetime import datetime

from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.logic.plan import Plan
from modelwerk.logic.status import with_ready


def reconcile_dataset(obj: Dataset, *, now: datetime) -> Plan:
    """Skeleton: acknowledge the object's generation with a Ready condition."""
    status = with_ready(
        obj.status,
        "False",
        "Pending",
        "Dataset validation has not run yet",
        phase="Pending",
        generation=obj.metadata.generation,
        now=now,
    )
    return Plan(status=status)
