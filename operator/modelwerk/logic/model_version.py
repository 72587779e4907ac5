"""Decisions for ModelVersion objects: verify the artifact once, record stage changes.

The spec is immutable (CEL), so one verification per object is enough: Ready means the
artifact existed with the declared sha256 when the operator checked. Model servers verify
the hash again before they unpickle anything. The same Job tags the version's MLflow run with
it (logic/version_tags.py); how that went is the ``Tracked`` condition, never the phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from modelwerk.api.conditions import ConditionStatus
from modelwerk.api.v1alpha1.model_version import ModelVersion, ModelVersionStatus, StageTransition
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.builders.model_version import build_verification_job, verification_job_name
from modelwerk.builders.workload import WorkloadConfig
from modelwerk.logic.jobs import JobOutcome, failure
from modelwerk.logic.plan import Event, Plan
from modelwerk.logic.status import with_ready
from modelwerk.logic.version_tags import run_tag, with_tracked

VERIFIED = "Verified"
_KEY_METRICS = ("accuracy", "f1", "r2", "rmse")


@dataclass(frozen=True)
class ProductionVersion:
    """Another version of the same model whose spec says Production."""

    name: str
    version: int
    promoted: datetime | None
    """When its status recorded the promotion; None until its own reconcile saw it."""


@dataclass(frozen=True)
class ObservedModelVersion:
    jobs: dict[str, JobOutcome]
    other_production: list[ProductionVersion] = field(default_factory=list)
    training_job: TrainingJob | None = None
    """The TrainingJob named in the lineage, when the verification Job needs its tracking
    settings (``version_tags.training_job_to_observe``)."""


def superseded_by(mv: ModelVersion, others: list[ProductionVersion], now: datetime) -> str | None:
    """The newer Production version that retires ``mv``, if any.

    At most one version per model is in Production: the most recently promoted one wins,
    ties (two promotions not yet recorded) go to the higher version number. Every version
    decides only about itself, so two reconciles never archive each other.
    """
    if mv.spec.stage != "Production":
        return None
    history = mv.status.stage_history or []
    mine = history[-1].time if history and history[-1].stage == "Production" else now
    for other in sorted(others, key=lambda o: -o.version):
        theirs = other.promoted or now
        if (theirs, other.version) > (mine, mv.spec.version):
            return other.name
    return None


def key_metric(mv: ModelVersion) -> str | None:
    """The headline metric for printer columns.

    >>> mv = ModelVersion.from_k8s({"spec": {"model": "m", "version": 1, "task": "regression",
    ...     "artifact": {"uri": "pvc://a/b", "sha256": "0" * 64}, "metrics": {"mae": 3.0, "r2": 0.5}}})
    >>> key_metric(mv)
    'r2=0.5'
    """
    metrics = mv.spec.metrics or {}
    for name in (*_KEY_METRICS, *sorted(metrics)):
        if name in metrics:
            return f"{name}={metrics[name]:.4g}"
    return None


def short_dataset_version(mv: ModelVersion) -> str | None:
    """The dataset version's first 12 hex digits, as the Dataset shows its own.

    >>> mv = ModelVersion.from_k8s({"spec": {"model": "m", "version": 1, "task": "regression",
    ...     "artifact": {"uri": "pvc://a/b", "sha256": "0" * 64},
    ...     "lineage": {"datasetVersion": "sha256:" + "0123456789abcdef" * 4}}})
    >>> short_dataset_version(mv)
    '0123456789ab'
    """
    version = mv.spec.lineage.dataset_version if mv.spec.lineage else None
    return version.removeprefix("sha256:")[:12] if version else None


def _stage_history(mv: ModelVersion, now: datetime) -> list[StageTransition]:
    history = list(mv.status.stage_history or [])
    if not history or history[-1].stage != mv.spec.stage:
        history.append(StageTransition(stage=mv.spec.stage, time=now))
    return history[-100:]


def reconcile_model_version(
    mv: ModelVersion, observed: ObservedModelVersion, *, now: datetime, config: WorkloadConfig
) -> Plan:
    generation = mv.metadata.generation
    expected = mv.spec.artifact.sha256
    job_name = verification_job_name(mv)
    job = observed.jobs.get(job_name)
    status = mv.status
    common = {
        "key_metric": key_metric(mv),
        "short_dataset_version": short_dataset_version(mv),
        "stage_history": _stage_history(mv, now),
    }

    def with_state(
        phase: str, ready: ConditionStatus, reason: str, message: str, **extra: object
    ) -> ModelVersionStatus:
        return with_ready(
            status,
            ready,
            reason,
            message,
            phase=phase,
            generation=generation,
            now=now,
            also=[(VERIFIED, ready, reason)],
            **common,
            **extra,
        )

    newer = superseded_by(mv, observed.other_production, now)
    if newer is not None:
        message = f"Archived: {newer} is now the Production version of {mv.spec.model}"
        return Plan(
            status=status.model_copy(update={"message": message}),
            spec_patch={"stage": "Archived"},
            events=(Event("Normal", "ArchivedByNewerProduction", message),),
        )
    if status.verified_sha256 == expected:
        message = f"Artifact verified (sha256 {expected[:12]}…); stage {mv.spec.stage}"
        return Plan(status=with_state("Ready", "True", "Verified", message))
    if status.phase == "Failed" and job is None:
        return Plan(status=status.model_copy(update={"observed_generation": generation, **common}))
    if job is None:
        message = f"Verifying the artifact in Job {job_name}"
        return Plan(
            status=with_state("Pending", "Unknown", "Verifying", message),
            create=(
                build_verification_job(
                    mv, config, run_tag(mv, observed.training_job, config.mlflow)
                ),
            ),
        )
    if job.state in ("Pending", "Running"):
        return Plan(
            status=with_state(
                "Pending",
                "Unknown",
                "Verifying",
                f"Verification Job {job_name} cannot start its pod: {job.stuck}"
                if job.stuck
                else f"Verifying the artifact in Job {job_name}",
            )
        )
    result = job.result or {}
    if job.state == "Succeeded" and result.get("ok") and result.get("sha256") == expected:
        message = f"Artifact verified (sha256 {expected[:12]}…); stage {mv.spec.stage}"
        new = with_state(
            "Ready",
            "True",
            "Verified",
            message,
            verified_sha256=expected,
            last_verified_time=job.completion_time or now,
        )
        new, tag_events = with_tracked(mv, new, job.result, now=now)
        return Plan(status=new, events=(Event("Normal", "Verified", message), *tag_events))
    reason, detail = failure(job, "VerificationFailed")
    message = f"The artifact cannot be used: {detail}"
    new = with_state(
        "Failed", "False", reason, message, last_verified_time=job.completion_time or now
    )
    new, tag_events = with_tracked(mv, new, job.result, now=now)
    events = () if status.phase == "Failed" else (Event("Warning", reason, message),)
    return Plan(status=new, events=(*events, *tag_events))
