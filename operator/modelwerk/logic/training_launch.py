"""Starting the Jobs of a TrainingJob run: the search stages and the training Job, once the
Dataset is Ready (and, after a search, still the version the run started on)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelwerk.api.conditions import ConditionStatus
from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.api.v1alpha1.search import SearchProgress
from modelwerk.api.v1alpha1.training_job import TrainingJob, TrainingJobStatus
from modelwerk.builders.byo import (
    build_evaluation_job,
    build_trainer_job,
    trainer_job_name,
)
from modelwerk.builders.training_job import (
    build_search_job,
    build_training_job,
    search_job_name,
)
from modelwerk.builders.workload import WorkloadConfig, build_artifact_pvc
from modelwerk.logic.champion import ChampionTarget, with_champion
from modelwerk.logic.jobs import JobOutcome
from modelwerk.logic.plan import Event, Plan
from modelwerk.logic.status import with_ready
from modelwerk.logic.training_byo import TrainerDecision
from modelwerk.logic.training_search import SearchDecision

DATASET_READY = "DatasetReady"
WAIT_FOR_DATASET_SECONDS = 30.0


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    model: str
    version: int
    run: str | None
    training_job: str | None
    sha256: str | None = None
    """sha256 of its artifact: identical bytes are never registered twice."""


@dataclass(frozen=True)
class ObservedTraining:
    dataset: Dataset | None
    jobs: dict[str, JobOutcome]
    """Training Jobs of this TrainingJob by name."""
    versions: list[RegisteredVersion]
    """Every ModelVersion of the target model in the namespace."""
    artifact_pvc_exists: bool
    """Whether the store's claim exists (always true for a remote store)."""
    champion: ChampionTarget | str | None = None
    """spec.champion resolved (a string: why it cannot be; None: there is none, a
    Deployment serving nothing yet)."""


def training_status(
    tj: TrainingJob,
    *,
    now: datetime,
    phase: str,
    ready: ConditionStatus,
    reason: str,
    message: str,
    conditions: Iterable[tuple[str, ConditionStatus, str]] = (),
    **fields: Any,
) -> TrainingJobStatus:
    return with_ready(
        tj.status,
        ready,
        reason,
        message,
        phase=phase,
        generation=tj.metadata.generation,
        now=now,
        also=conditions,
        **fields,
    )


def _dataset_wait(tj: TrainingJob, observed: ObservedTraining, *, now: datetime) -> Plan | None:
    """A status that waits for the Dataset, or None when it is Ready."""
    dataset = observed.dataset
    ref = tj.spec.dataset_ref.name
    if dataset is None:
        message = f"Dataset {ref} does not exist in namespace {tj.metadata.namespace}"
        new = training_status(
            tj,
            now=now,
            phase="Pending",
            ready="False",
            reason="DatasetNotFound",
            message=message,
            conditions=[(DATASET_READY, "False", "DatasetNotFound")],
        )
        return Plan(status=new, requeue_after=WAIT_FOR_DATASET_SECONDS)
    ds = dataset.status
    if (
        ds.phase != "Ready"
        or not ds.version
        or ds.observed_generation != dataset.metadata.generation
    ):
        why = {"Invalid": "DatasetInvalid", "Failed": "DatasetFailed"}.get(
            ds.phase or "", "DatasetNotReady"
        )
        detail = f": {ds.message}" if ds.message else ""
        message = f"Waiting for Dataset {ref} to be Ready (it is {ds.phase or 'Pending'}{detail})"
        new = training_status(
            tj,
            now=now,
            phase="Pending",
            ready="False",
            reason=why,
            message=message,
            conditions=[(DATASET_READY, "False", why)],
        )
        return Plan(status=new, requeue_after=WAIT_FOR_DATASET_SECONDS)
    return None


def _changed_dataset(tj: TrainingJob, dataset: Dataset, *, now: datetime) -> Plan | None:
    """A run that started on one Dataset version must not finish on another (its later Jobs
    would read another snapshot than its first)."""
    pinned = tj.status.dataset_version
    if pinned is None or dataset.status.version == pinned:
        return None
    message = (
        f"Dataset {dataset.metadata.name} changed from {pinned[:19]} to "
        f"{(dataset.status.version or '')[:19]} during the run; edit the TrainingJob to "
        "start a new run"
    )
    new = training_status(
        tj, now=now, phase="Failed", ready="False", reason="DatasetChanged", message=message
    )
    return Plan(status=new, events=(Event("Warning", "DatasetChanged", message),))


_CLEARED: dict[str, Any] = dict.fromkeys(
    (
        "completion_time",
        "metrics",
        "primary_metric",
        "best_params",
        "gate_results",
        "model_version",
        "artifact_uri",
        "duration_seconds",
        "fairness",
        "robustness",
        "trials",
        "trial_count",
        "trials_uri",
        "tracking",
        "search",
        "trainer",
        "champion",
        "champion_version",
    )
)
"""Status fields of an earlier run, cleared when a run starts."""


def _new_run(dataset: Dataset, now: datetime) -> dict[str, Any]:
    """The status fields of a run's first Job: earlier runs' results cleared, the Dataset
    version pinned."""
    return _CLEARED | {"dataset_version": dataset.status.version, "start_time": now}


def _create(
    tj: TrainingJob, observed: ObservedTraining, body: dict[str, Any], config: WorkloadConfig
) -> tuple[dict[str, Any], ...]:
    create: list[dict[str, Any]] = []
    claim = (
        None if observed.artifact_pvc_exists else build_artifact_pvc(config, tj.metadata.namespace)
    )
    if claim is not None:
        create.append(claim)
    return (*create, body)


def _launched(
    tj: TrainingJob,
    observed: ObservedTraining,
    body: dict[str, Any],
    config: WorkloadConfig,
    *,
    now: datetime,
    phase: str,
    reason: str,
    event: str,
    message: str,
    fields: dict[str, Any],
) -> Plan:
    """Create a Job of the run (and the artifact claim if missing) and say so."""
    new = training_status(
        tj,
        now=now,
        phase=phase,
        ready="False",
        reason=reason,
        message=message,
        conditions=[(DATASET_READY, "True", "DatasetReady")],
        **fields,
    )
    return Plan(
        status=new,
        create=_create(tj, observed, body, config),
        events=(Event("Normal", event, message),),
    )


def _stage_failed(
    tj: TrainingJob, *, now: datetime, reason: str, message: str, fields: dict[str, Any]
) -> Plan:
    """A Job before the final one failed: the run is over (Failed) with its cause."""
    new = training_status(
        tj,
        now=now,
        phase="Failed",
        ready="False",
        reason=reason,
        message=message,
        completion_time=now,
        **fields,
    )
    return Plan(status=new, events=(Event("Warning", reason, message),))


def searching(
    tj: TrainingJob,
    observed: ObservedTraining,
    fingerprint: str,
    decision: SearchDecision,
    *,
    now: datetime,
    config: WorkloadConfig,
) -> Plan:
    progress = decision.progress
    stage = decision.stage
    assert stage is not None
    name = search_job_name(tj, fingerprint, stage.number)
    best = (
        f"; best {progress.scoring or 'score'} {progress.best_score:.4g}"
        if progress.best_score is not None
        else ""
    )
    counts = f"{progress.trials_done}/{progress.trials_total} trials{best}"
    where = f"search stage {stage.number + 1}/{progress.stages}"
    if decision.action == "fail":
        return _stage_failed(
            tj,
            now=now,
            reason=decision.reason or "SearchFailed",
            message=decision.message or f"{where} failed",
            fields={"job_name": name, "search": progress},
        )
    if decision.action == "wait":
        new = training_status(
            tj,
            now=now,
            phase="Searching",
            ready="False",
            reason="Searching",
            message=f"Searching: {where} running ({counts})",
            job_name=name,
            search=progress,
        )
        return Plan(status=new)
    waiting = _dataset_wait(tj, observed, now=now)
    if waiting is not None:
        return waiting
    dataset = observed.dataset
    assert dataset is not None
    first = stage.number == 0
    if not first and (changed := _changed_dataset(tj, dataset, now=now)) is not None:
        return changed
    body = build_search_job(tj, dataset, fingerprint, stage, config)
    message = f"Started {where}: {stage.trials} trials on {stage.indexes} pods (Job {name})"
    fields = (_new_run(dataset, now) if first else {}) | {"job_name": name, "search": progress}
    return _launched(
        tj,
        observed,
        body,
        config,
        now=now,
        phase="Searching",
        reason="Searching",
        event="SearchStageStarted",
        message=message,
        fields=fields,
    )


def trainer_stage(
    tj: TrainingJob,
    observed: ObservedTraining,
    fingerprint: str,
    decision: TrainerDecision,
    *,
    now: datetime,
    config: WorkloadConfig,
) -> Plan:
    """The trainer container's Job of a spec.trainer run, before modelwerk evaluates."""
    name = trainer_job_name(tj, fingerprint)
    if decision.action == "fail":
        return _stage_failed(
            tj,
            now=now,
            reason=decision.reason or "TrainerFailed",
            message=decision.message or f"Trainer Job {name} failed",
            fields={"job_name": name, "trainer": decision.record},
        )
    if decision.action == "wait":
        new = training_status(
            tj,
            now=now,
            phase="Running",
            ready="False",
            reason="Training",
            message=f"The trainer container of Job {name} is running",
            job_name=name,
            trainer=decision.record,
        )
        return Plan(status=new)
    waiting = _dataset_wait(tj, observed, now=now)
    if waiting is not None:
        return waiting
    dataset = observed.dataset
    assert dataset is not None and tj.spec.trainer is not None
    body = build_trainer_job(tj, dataset, fingerprint, config)
    message = (
        f"Started trainer Job {name} ({tj.spec.trainer.image}) on Dataset "
        f"{dataset.metadata.name} version {dataset.status.short_version}"
    )
    fields = _new_run(dataset, now) | {"job_name": name}
    return _launched(
        tj,
        observed,
        body,
        config,
        now=now,
        phase="Running",
        reason="Training",
        event="TrainingStarted",
        message=message,
        fields=fields,
    )


def start(
    tj: TrainingJob,
    observed: ObservedTraining,
    fingerprint: str,
    job_name: str,
    searched: SearchProgress | None,
    *,
    now: datetime,
    config: WorkloadConfig,
    trained: TrainerDecision | None = None,
) -> Plan:
    """Create the run's final Job: training; after a parallel search (``searched``) it fits the
    winner; after a trainer container (``trained``) modelwerk evaluates its model."""
    waiting = _dataset_wait(tj, observed, now=now)
    if waiting is not None:
        return waiting
    dataset = observed.dataset
    assert dataset is not None
    ds = dataset.status
    pinned = searched is not None or trained is not None
    if pinned and (changed := _changed_dataset(tj, dataset, now=now)) is not None:
        return changed
    ref = tj.spec.dataset_ref.name
    if tj.spec.champion is not None and isinstance(observed.champion, str):
        new = training_status(
            tj,
            now=now,
            phase="Pending",
            ready="False",
            reason="ChampionNotFound",
            message=f"Waiting for the champion: {observed.champion}",
        )
        return Plan(status=new, requeue_after=WAIT_FOR_DATASET_SECONDS)
    champion = observed.champion if isinstance(observed.champion, ChampionTarget) else None
    fields: dict[str, Any] = {"job_name": job_name}
    if trained is not None:
        assert trained.model_uri is not None and trained.sha256 is not None
        body = build_evaluation_job(
            tj,
            dataset,
            fingerprint,
            config,
            trained.model_uri,
            trained.sha256,
            trained.model_format,
        )
        body = with_champion(body, champion)
        message = f"Started evaluation Job {job_name} of the trainer's model on the holdout"
        fields |= {"trainer": trained.record}
    else:
        body = with_champion(build_training_job(tj, dataset, fingerprint, config), champion)
        message = f"Started training Job {job_name} on Dataset {ref} version {ds.short_version}"
    if not pinned:
        fields |= _new_run(dataset, now)
    elif searched is not None:
        message += f" to fit the best of {searched.trials_done} trials"
        fields |= {"search": searched}
    if champion is not None:
        fields["champion_version"] = champion.version
    return _launched(
        tj,
        observed,
        body,
        config,
        now=now,
        phase="Running",
        reason="Training",
        event="TrainingStarted",
        message=message,
        fields=fields,
    )
