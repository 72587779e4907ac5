"""Decisions proper to Datasets made from production data, and the version history of every
Dataset.

Q: When is a production Dataset materialised again?
A: Every refresh period (``spec.refreshIntervalSeconds``, 3600 by default for this source),
   when its spec changes, and when its base Dataset publishes a new version (the base version
   is part of the run's fingerprint). Identical rows hash to the version that is already
   current, so a run that finds no new labels changes nothing but the validation time.

Q: What happens with too few labelled rows?
A: The run publishes nothing. A Dataset that has a version keeps it (still Ready, so training
   goes on with it) and says why nothing newer came in the ``LabelsSufficient`` condition;
   one that never had a version stays Pending. The next refresh period tries again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelwerk.api.conditions import ConditionStatus
from modelwerk.api.v1alpha1.dataset import HISTORY_LIMIT, Dataset, DatasetStatus
from modelwerk.api.v1alpha1.dataset_production import (
    DEFAULT_PRODUCTION_REFRESH_SECONDS,
    DatasetHistoryEntry,
    Provenance,
)
from modelwerk.logic.plan import Event
from modelwerk.logic.status import with_ready

LABELS_SUFFICIENT = "LabelsSufficient"
VALIDATED = "Validated"
WAIT_FOR_BASE_SECONDS = 30.0


def refresh_interval(dataset: Dataset) -> int | None:
    """Seconds between materialisations: the spec's, or the production default."""
    spec = dataset.spec
    if spec.refresh_interval_seconds:
        return spec.refresh_interval_seconds
    return DEFAULT_PRODUCTION_REFRESH_SECONDS if spec.source.production is not None else None


def base_name(dataset: Dataset) -> str | None:
    production = dataset.spec.source.production
    return production.base.name if production and production.base else None


def base_problem(dataset: Dataset, base: Dataset | None) -> tuple[str, str] | None:
    """(reason, message) when the base Dataset cannot be used yet, else None."""
    name = base_name(dataset)
    if name is None:
        return None
    if base is None:
        return "BaseNotFound", f"Base Dataset {name} does not exist"
    s = base.status
    if s.phase != "Ready" or not s.version or not s.snapshot_uri:
        detail = f": {s.message}" if s.message else ""
        return (
            "BaseNotReady",
            f"Waiting for base Dataset {name} to be Ready ({s.phase or 'Pending'}{detail})",
        )
    return None


def waiting_for_base(
    dataset: Dataset, reason: str, message: str, *, now: datetime
) -> DatasetStatus:
    """Keep a published version while the base is missing or not Ready; say why."""
    status = dataset.status
    generation = dataset.metadata.generation
    keep = status.phase == "Ready" and status.version is not None
    return with_ready(
        status,
        "True" if keep else "False",
        "Validated" if keep else reason,
        message,
        phase="Ready" if keep else "Pending",
        generation=generation,
        now=now,
        also=[(VALIDATED, "Unknown", reason)],
    )


def insufficient(
    dataset: Dataset,
    job_name: str,
    *,
    rows: int,
    required: int,
    provenance: Provenance | None,
    completed: datetime | None,
    now: datetime,
) -> tuple[DatasetStatus, Event | None]:
    """A run that found fewer labelled rows than required: nothing new is published."""
    status = dataset.status
    generation = dataset.metadata.generation
    keep = status.version is not None and status.phase == "Ready"
    window = ""
    if provenance and provenance.production:
        p = provenance.production
        window = f" ({p.start:%Y-%m-%d %H:%M} to {p.end:%Y-%m-%d %H:%M} UTC)"
    message = (
        f"InsufficientLabels: {rows} labelled production row{'s' if rows != 1 else ''} in the "
        f"window{window}, {required} required; "
        + (f"version {status.short_version} stays current" if keep else "nothing published")
    )
    also: list[tuple[str, ConditionStatus, str]] = [
        (LABELS_SUFFICIENT, "False", "InsufficientLabels")
    ]
    if not keep:
        also.append((VALIDATED, "False", "InsufficientLabels"))
    new = with_ready(
        status,
        "True" if keep else "False",
        "Validated" if keep else "InsufficientLabels",
        message,
        phase="Ready" if keep else "Pending",
        generation=generation,
        now=now,
        also=also,
        validation_job=job_name,
        last_validated_time=completed or now,
    )
    already = status.validation_job == job_name and any(
        c.type == LABELS_SUFFICIENT and c.status == "False" for c in status.conditions
    )
    return new, None if already else Event("Warning", "InsufficientLabels", message)


def labels_condition(dataset: Dataset) -> list[tuple[str, ConditionStatus, str]]:
    """The LabelsSufficient condition of a published production version (none otherwise)."""
    if dataset.spec.source.production is None:
        return []
    return [(LABELS_SUFFICIENT, "True", "EnoughLabels")]


def published(
    status: DatasetStatus, fields: dict[str, Any], provenance: Provenance | None, now: datetime
) -> dict[str, Any]:
    """``fields`` of a valid run plus its provenance and the history with its version first.

    A version already in the history keeps its first publication time; seen again (no new
    data, or data back to an earlier state) it moves to the front.
    """
    version = fields["version"]
    history = list(status.history or [])
    earlier = next((h for h in history if h.version == version), None)
    entry = DatasetHistoryEntry(
        version=version,
        rows=fields.get("rows"),
        columns=fields.get("columns"),
        snapshot_uri=fields.get("snapshot_uri"),
        profile_uri=fields.get("profile_uri"),
        published_time=earlier.published_time
        if earlier
        else fields.get("last_validated_time") or now,
        provenance=provenance if earlier is None else earlier.provenance,
    )
    rest = [h for h in history if h.version != version]
    return fields | {
        "provenance": provenance,
        "history": [entry, *rest][:HISTORY_LIMIT],
    }
