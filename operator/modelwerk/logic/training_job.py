"""Decisions for TrainingJob objects."""

from __future__ import annotations

from datetime import datetime

from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.logic.plan import Plan
from modelwerk.logic.status import with_ready


def reconcile_training_job(obj: TrainingJob, *, now: datetime) -> Plan:
    """Skeleton: acknowledge the object's generation with a Ready condition."""
    status = with_ready(
        obj.status,
        "False",
        "Pending",
        "Training has not started yet",
        phase="Pending",
        generation=obj.metadata.generation,
        now=now,
    )
    return Plan(status=status)
