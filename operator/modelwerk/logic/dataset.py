"""Decisions for Dataset objects: when to validate, and what a validation run means.

A validation run is identified by a fingerprint of the spec (and, with
``refreshIntervalSeconds``, of the refresh period), so its Job name is deterministic: after a
restart the operator finds the Job it started instead of starting another, and re-applying an
unchanged spec starts nothing. The result lives in the status; finished Jobs of older
fingerprints are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modelwerk.api.base import ApiModel
from modelwerk.api.conditions import ConditionStatus
from modelwerk.api.v1alpha1.dataset import Dataset, DatasetStatus, InferredColumn, Violation
from modelwerk.api.v1alpha1.dataset_production import Provenance
from modelwerk.builders.dataset import (
    ProductionContext,
    build_validation_job,
    validation_fingerprint,
    validation_job_name,
)
from modelwerk.builders.workload import WorkloadConfig, build_artifact_pvc
from modelwerk.logic import dataset_production as production
from modelwerk.logic.jobs import JobOutcome, failure
from modelwerk.logic.plan import Event, ObjectKey, Plan
from modelwerk.logic.status import with_ready

VALIDATED = "Validated"


@dataclass(frozen=True)
class ObservedDataset:
    jobs: dict[str, JobOutcome]
    """Validation Jobs of this Dataset by name."""
    artifact_pvc_exists: bool
    """Whether the store's claim exists (always true for a remote store)."""
    base: Dataset | None = None
    """The base Dataset of a production source, when it names one and it exists."""


class ValidationResult(ApiModel):
    """The validation pod's termination message (see ``modelwerk.runtime.data.job``)."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    valid: bool
    version: str | None = None
    rows: int | None = None
    columns: int | None = None
    snapshot_uri: str | None = None
    profile_uri: str | None = None
    inferred_schema: list[InferredColumn] | None = None
    violations: list[Violation] | None = None
    violation_count: int | None = None
    message: str | None = None
    reason: str | None = None
    error: str | None = None
    provenance: Provenance | None = None
    labelled_rows: int | None = None
    required_rows: int | None = None


def refresh_epoch(dataset: Dataset, now: datetime) -> tuple[int, float | None]:
    """The refresh period ``now`` falls in, and seconds until the next one starts.

    >>> from datetime import UTC
    >>> ds = Dataset.from_k8s({"spec": {"source": {"builtin": "iris"}, "refreshIntervalSeconds": 3600}})
    >>> refresh_epoch(ds, datetime(2026, 1, 1, 10, 30, tzinfo=UTC))
    (490906, 1800.0)
    """
    interval = production.refresh_interval(dataset)
    if not interval:
        return 0, None
    stamp = now.timestamp()
    epoch = int(stamp // interval)
    return epoch, (epoch + 1) * interval - stamp


def reconcile_dataset(
    dataset: Dataset, observed: ObservedDataset, *, now: datetime, config: WorkloadConfig
) -> Plan:
    meta = dataset.metadata
    generation = meta.generation
    epoch, requeue = refresh_epoch(dataset, now)
    base = observed.base if production.base_name(dataset) else None
    fingerprint = validation_fingerprint(
        dataset, epoch, base_version=base.status.version if base else None
    )
    job_name = validation_job_name(dataset, fingerprint)
    job = observed.jobs.get(job_name)
    status = dataset.status
    create: list[dict[str, Any]] = []
    events: list[Event] = []

    claim = None if observed.artifact_pvc_exists else build_artifact_pvc(config, meta.namespace)
    if claim is not None:
        create.append(claim)
    # Every other run is superseded, finished or not: a refresh period or a spec edit that
    # comes while a run is still pending must not leave it behind (one more per period).
    stale = [
        ObjectKey("batch/v1", "Job", meta.namespace, name)
        for name in observed.jobs
        if name != job_name
    ]
    already_judged = status.validation_job == job_name and (
        status.phase in ("Ready", "Invalid", "Failed")
        or any(c.reason == "InsufficientLabels" for c in status.conditions)
    )

    waiting = production.base_problem(dataset, observed.base) if job is None else None
    if job is None and already_judged:
        # The verdict is recorded; the Job was cleaned up (by a TTL or a person).
        new = status.model_copy(update={"observed_generation": generation})
    elif waiting is not None:
        new = production.waiting_for_base(dataset, *waiting, now=now)
        if status.message != new.message:
            events.append(Event("Normal", waiting[0], waiting[1]))
        requeue = min(requeue or production.WAIT_FOR_BASE_SECONDS, production.WAIT_FOR_BASE_SECONDS)
    elif job is None or job.state in ("Pending", "Running"):
        if job is None:
            context = None
            if dataset.spec.source.production is not None:
                context = ProductionContext(now=now, base=base)
            create.append(build_validation_job(dataset, fingerprint, config, context))
            events.append(
                Event("Normal", "ValidationStarted", f"Started validation Job {job_name}")
            )
        new = _validating(dataset, job_name, now=now, stuck=job.stuck if job else None)
    elif job.state == "Succeeded":
        new, judged = _judged(dataset, job, now=now)
        fresh = status.validation_job != job_name or status.phase in (None, "Pending", "Validating")
        if judged is not None and (fresh or judged.reason == "InsufficientLabels"):
            events.append(judged)
    else:
        new = _failed(dataset, job, now=now)
        if status.phase != "Failed" or status.validation_job != job_name:
            events.append(Event("Warning", "ValidationFailed", new.message or "Validation failed"))
    return Plan(
        status=new,
        create=tuple(create),
        delete=tuple(stale),
        events=tuple(events),
        requeue_after=requeue,
    )


def _set(
    status: DatasetStatus,
    *,
    generation: int,
    now: datetime,
    phase: str,
    ready: ConditionStatus,
    ready_reason: str,
    validated: ConditionStatus,
    validated_reason: str,
    message: str,
    conditions: list[tuple[str, ConditionStatus, str]] | None = None,
    **fields: Any,
) -> DatasetStatus:
    return with_ready(
        status,
        ready,
        ready_reason,
        message,
        phase=phase,
        generation=generation,
        now=now,
        also=[(VALIDATED, validated, validated_reason), *(conditions or [])],
        **fields,
    )


def _validating(
    dataset: Dataset, job_name: str, *, now: datetime, stuck: str | None = None
) -> DatasetStatus:
    status = dataset.status
    generation = dataset.metadata.generation
    # A refresh of an unchanged spec keeps serving the last good version meanwhile.
    still_ready = status.phase == "Ready" and status.observed_generation == generation
    return _set(
        status,
        generation=generation,
        now=now,
        phase="Ready" if still_ready else "Validating",
        ready="True" if still_ready else "False",
        ready_reason="Validated" if still_ready else "Validating",
        validated="Unknown",
        validated_reason="Validating",
        message=f"Validation Job {job_name} "
        + (f"cannot start its pod: {stuck}" if stuck else "is running"),
        validation_job=job_name,
    )


def _judged(
    dataset: Dataset, job: JobOutcome, *, now: datetime
) -> tuple[DatasetStatus, Event | None]:
    generation = dataset.metadata.generation
    try:
        result = ValidationResult.model_validate(job.result or {})
    except ValidationError as exc:
        failed = _set(
            dataset.status,
            generation=generation,
            now=now,
            phase="Failed",
            ready="False",
            ready_reason="ResultUnreadable",
            validated="False",
            validated_reason="ResultUnreadable",
            message=f"The validation Job {job.name} reported no usable result: {exc.error_count()} errors",
            validation_job=job.name,
        )
        return failed, Event("Warning", "ResultUnreadable", failed.message or "")
    if result.reason == "InsufficientLabels":
        return production.insufficient(
            dataset,
            job.name,
            rows=result.labelled_rows or 0,
            required=result.required_rows or 0,
            provenance=result.provenance,
            completed=job.completion_time,
            now=now,
        )
    common: dict[str, Any] = {
        "validation_job": job.name,
        "rows": result.rows,
        "columns": result.columns,
        "inferred_schema": result.inferred_schema,
        "last_validated_time": job.completion_time or now,
    }
    if result.valid and result.version:
        common |= {
            "version": result.version,
            "short_version": result.version.removeprefix("sha256:")[:12],
            "snapshot_uri": result.snapshot_uri,
            "profile_uri": result.profile_uri,
            "violations": None,
        }
        common = production.published(dataset.status, common, result.provenance, now)
        message = f"Version {common['short_version']}: {result.rows} rows, {result.columns} columns"
        ready = _set(
            dataset.status,
            generation=generation,
            now=now,
            phase="Ready",
            ready="True",
            ready_reason="Validated",
            validated="True",
            validated_reason="ContractMet",
            message=message,
            conditions=production.labels_condition(dataset),
            **common,
        )
        return ready, Event("Normal", "Validated", message)
    count = result.violation_count or len(result.violations or [])
    listed = result.violations or []
    summary = "; ".join(v.message or f"{v.column}: {v.rule}" for v in listed[:3])
    message = f"{count} contract violation{'s' if count != 1 else ''}: {summary}"
    if count > len(listed[:3]):
        message += f" (and {count - len(listed[:3])} more in status.violations)"
    invalid = _set(
        dataset.status,
        generation=generation,
        now=now,
        phase="Invalid",
        ready="False",
        ready_reason="ContractViolated",
        validated="False",
        validated_reason="ContractViolated",
        message=message,
        violations=listed[:100],
        **common,
    )
    return invalid, Event("Warning", "ContractViolated", message)


def _failed(dataset: Dataset, job: JobOutcome, *, now: datetime) -> DatasetStatus:
    reason, detail = failure(job, "ValidationFailed")
    return _set(
        dataset.status,
        generation=dataset.metadata.generation,
        now=now,
        phase="Failed",
        ready="False",
        ready_reason=reason,
        validated="False",
        validated_reason=reason,
        message=f"Validation Job {job.name} failed: {detail}",
        validation_job=job.name,
    )
