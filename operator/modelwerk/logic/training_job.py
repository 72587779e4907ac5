"""Decisions for TrainingJob objects: wait for data, run one Job per spec, gate, register.

A run is identified by a fingerprint of the spec, so its Job name is deterministic and a
restarted operator finds the Job it started. A passing run registers exactly one ModelVersion,
labelled with the run: the label, not the status, is the proof of registration, so a crash
between creating the ModelVersion and writing the status cannot register a second one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modelwerk.api.conditions import ConditionStatus
from modelwerk.api.v1alpha1.model_version import Artifact, Lineage, ModelVersionSpec
from modelwerk.api.v1alpha1.search import search_plan
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.builders.byo import trainer_job_name
from modelwerk.builders.training_job import (
    build_model_version,
    model_version_name,
    run_fingerprint,
    search_job_name,
    training_job_name,
)
from modelwerk.builders.workload import WorkloadConfig
from modelwerk.logic.champion import CHAMPION_BEATEN, judge
from modelwerk.logic.dataset_versions import pin_dataset
from modelwerk.logic.jobs import JobOutcome, failure
from modelwerk.logic.plan import Event, Plan
from modelwerk.logic.training_byo import decide_trainer
from modelwerk.logic.training_launch import (
    DATASET_READY,
    ObservedTraining,
    RegisteredVersion,
    searching,
    start,
    trainer_stage,
    training_status,
)
from modelwerk.logic.training_result import (
    TRACKED,
    TrainingResult,
    compiled_of,
    evaluate_gates,
    primary_metric,
    reproducibility,
    signature_of,
    tracking_condition,
)
from modelwerk.logic.training_search import decide_search

__all__ = [
    "DATASET_READY",
    "GATES_PASSED",
    "TRACKED",
    "ObservedTraining",
    "RegisteredVersion",
    "reconcile_training_job",
]

GATES_PASSED = "GatesPassed"
REGISTRATION_RETRY_SECONDS = 2.0
TERMINAL = ("Succeeded", "Failed", "Rejected")


def reconcile_training_job(
    tj: TrainingJob, observed: ObservedTraining, *, now: datetime, config: WorkloadConfig
) -> Plan:
    meta = tj.metadata
    status = tj.status
    fingerprint = run_fingerprint(tj)
    job_name = training_job_name(tj, fingerprint)
    job = observed.jobs.get(job_name)
    this_run = status.job_name == job_name or status.job_name in _stage_jobs(tj, fingerprint)
    if this_run and status.phase in TERMINAL:
        return Plan(status=status.model_copy(update={"observed_generation": meta.generation}))
    if tj.spec.suspend and job is None and not this_run:
        # A retraining template: a run of its own the moment its (production) Dataset is Ready
        # would bypass every trigger and the champion gate, and count that version as seen.
        return Plan(
            status=training_status(
                tj,
                now=now,
                phase="Suspended",
                ready="False",
                reason="Suspended",
                message="spec.suspend is true: no run starts; retraining copies of this "
                "TrainingJob run without it",
            )
        )
    pinned = pin_dataset(tj, observed, now=now)
    if isinstance(pinned, Plan):
        return pinned
    observed = pinned

    if job is None:
        searched = None
        if tj.spec.trainer is not None:
            trained = decide_trainer(tj, observed.jobs, fingerprint)
            if trained.action != "done":
                return trainer_stage(tj, observed, fingerprint, trained, now=now, config=config)
            return start(
                tj, observed, fingerprint, job_name, None, now=now, config=config, trained=trained
            )
        if tj.spec.search is not None and tj.spec.search.parallel:
            decision = decide_search(tj, observed.jobs, fingerprint)
            if decision.action != "done":
                return searching(tj, observed, fingerprint, decision, now=now, config=config)
            searched = decision.progress
        return start(tj, observed, fingerprint, job_name, searched, now=now, config=config)
    if job.state in ("Pending", "Running"):
        new = training_status(
            tj,
            now=now,
            phase="Running",
            ready="False",
            reason="Training",
            message=f"Training Job {job_name} "
            + (f"cannot start its pod: {job.stuck}" if job.stuck else f"is {job.state.lower()}"),
            job_name=job_name,
            start_time=status.start_time or job.start_time or now,
        )
        return Plan(status=new)
    if job.state == "Failed":
        return _failed(tj, job, now=now)
    return _finished(tj, observed, job, fingerprint, now=now, image=config.image)


def _stage_jobs(tj: TrainingJob, fingerprint: str) -> set[str]:
    """The Jobs before the final one: a run that failed in one of them is over."""
    if tj.spec.trainer is not None:
        return {trainer_job_name(tj, fingerprint)}
    search = tj.spec.search
    if search is None or not search.parallel:
        return set()
    return {search_job_name(tj, fingerprint, stage.number) for stage in search_plan(search)}


def _failed(tj: TrainingJob, job: JobOutcome, *, now: datetime) -> Plan:
    reason, detail = failure(job, "TrainingFailed")
    message = f"Training Job {job.name} failed: {detail}"
    new = training_status(
        tj,
        now=now,
        phase="Failed",
        ready="False",
        reason=reason,
        message=message,
        job_name=job.name,
        completion_time=job.completion_time or now,
    )
    return Plan(status=new, events=(Event("Warning", reason, message),))


def _finished(
    tj: TrainingJob,
    observed: ObservedTraining,
    job: JobOutcome,
    fingerprint: str,
    *,
    now: datetime,
    image: str,
) -> Plan:
    try:
        result = TrainingResult.model_validate(job.result or {})
    except ValidationError as exc:
        result = TrainingResult(ok=False, reason="ResultUnreadable", error=str(exc.errors()[:1]))
    if not result.ok or result.artifact is None:
        message = f"Training Job {job.name} reported no model: {result.error or job.message or 'no result'}"
        new = training_status(
            tj,
            now=now,
            phase="Failed",
            ready="False",
            reason=result.reason or "ResultUnreadable",
            message=message,
            job_name=job.name,
            completion_time=job.completion_time or now,
        )
        return Plan(status=new, events=(Event("Warning", "ResultUnreadable", message),))
    metrics = {k: v for k, v in result.metrics.items() if v is not None}
    gates = evaluate_gates(tj, result.figures())
    common: dict[str, Any] = {
        "job_name": job.name,
        "metrics": metrics,
        "primary_metric": primary_metric(tj, metrics),
        "best_params": result.best_params,
        "gate_results": gates or None,
        "artifact_uri": result.artifact.uri,
        "completion_time": job.completion_time or now,
        "duration_seconds": result.duration_seconds,
        "fairness": result.fairness,
        "robustness": result.robustness,
        "trials": (result.trials or [])[:5] or None,
        "trial_count": result.trial_count,
        "trials_uri": result.trials_uri,
        "tracking": result.tracking,
        "reproducibility": reproducibility(tj, observed, result, fingerprint, image),
    }
    tracked = tracking_condition(tj, result)
    extra = [tracked] if tracked else []
    warnings: tuple[Event, ...] = ()
    already = any(c.type == TRACKED for c in tj.status.conditions)
    if tracked and tracked[1] == "False" and not already:
        warnings = (
            Event("Warning", tracked[2], f"Run not fully tracked: {result.tracking_error}"),
        )
    champion, beaten = judge(tj, result)
    common["champion"] = champion
    if champion is not None and champion.version is not None:
        extra.append(
            (CHAMPION_BEATEN, "True", "ChampionBeaten")
            if beaten is None
            else (CHAMPION_BEATEN, "False", "ChampionNotBeaten")
        )
    failing = [g for g in gates if not g.passed]
    if failing or beaten:
        reasons = "; ".join(
            [
                *(
                    f"{g.metric} {'missing' if g.value is None else f'{g.value:.4g}'} is not {g.operator} {g.threshold:g}"
                    for g in failing
                ),
                *([beaten] if beaten else []),
            ]
        )
        why = "GatesFailed" if failing else "ChampionNotBeaten"
        message = f"Rejected: {reasons}; no ModelVersion was registered"
        new = training_status(
            tj,
            now=now,
            phase="Rejected",
            ready="False",
            reason=why,
            message=message,
            conditions=[
                (GATES_PASSED, "False", "GatesFailed")
                if failing
                else (GATES_PASSED, "True", "GatesPassed"),
                *extra,
            ],
            **common,
        )
        return Plan(status=new, events=(Event("Warning", why, message), *warnings))

    model = tj.spec.model.name
    mine = [
        v
        for v in observed.versions
        if v.run == fingerprint and v.training_job == tj.metadata.name and v.model == model
    ]
    if mine:
        registered = min(mine, key=lambda v: v.version).name
        message = f"Registered {registered} ({common['primary_metric'] or 'no metrics'})"
        new = training_status(
            tj,
            now=now,
            phase="Succeeded",
            ready="True",
            reason="Registered",
            message=message,
            conditions=[(GATES_PASSED, "True", "GatesPassed"), *extra],
            model_version=registered,
            **common,
        )
        events = () if tj.status.phase == "Succeeded" else (Event("Normal", "Registered", message),)
        return Plan(status=new, events=events)

    same = [v for v in observed.versions if v.model == model and v.sha256 == result.artifact.sha256]
    if same:
        first = min(same, key=lambda v: v.version)
        return _already_registered(tj, first, result.artifact.sha256, common, extra, now=now)
    version = max((v.version for v in observed.versions if v.model == model), default=0) + 1
    dataset = observed.dataset
    spec = ModelVersionSpec(
        model=model,
        version=version,
        task=tj.spec.task,
        artifact=Artifact(
            uri=result.artifact.uri,
            sha256=result.artifact.sha256,
            format=result.artifact.format,
            framework="onnx" if result.artifact.format == "onnx" else "scikit-learn",
            framework_version=result.artifact.framework_version,
        ),
        signature=signature_of(result.signature),
        compiled=compiled_of(result.compiled),
        metrics=metrics,
        params={
            **(tj.spec.estimator.params if tj.spec.estimator else {}),
            **(result.best_params or {}),
        },
        lineage=Lineage(
            dataset=tj.spec.dataset_ref.name,
            dataset_version=tj.status.dataset_version
            or (dataset.status.version if dataset else None),
            training_job=tj.metadata.name,
            training_job_uid=tj.metadata.uid or None,
        ),
        fairness=result.fairness,
        robustness=result.robustness,
        environment=result.environment,
        tracking=result.tracking,
        champion=champion,
    )
    name = model_version_name(model, version)
    new = training_status(
        tj,
        now=now,
        phase="Running",
        ready="False",
        reason="Registering",
        message=f"Gates passed; registering {name}",
        conditions=[(GATES_PASSED, "True", "GatesPassed"), *extra],
        **common,
    )
    return Plan(
        status=new,
        create=(build_model_version(tj, fingerprint, version, spec),),
        requeue_after=REGISTRATION_RETRY_SECONDS,
        events=warnings,
    )


def _already_registered(
    tj: TrainingJob,
    duplicate: RegisteredVersion,
    sha: str,
    common: dict[str, Any],
    extra: list[tuple[str, ConditionStatus, str]],
    *,
    now: datetime,
) -> Plan:
    """Identical data and spec give identical bytes: a second ModelVersion of the same
    artifact would only be a new number for the same model (and a rollout of nothing)."""
    message = (
        f"AlreadyRegistered: the model is byte-identical (sha256 {sha[:12]}) to "
        f"{duplicate.name}; no ModelVersion was registered"
    )
    new = training_status(
        tj,
        now=now,
        phase="Succeeded",
        ready="True",
        reason="AlreadyRegistered",
        message=message,
        conditions=[(GATES_PASSED, "True", "GatesPassed"), *extra],
        model_version=duplicate.name,
        **common,
    )
    events = (
        () if tj.status.phase == "Succeeded" else (Event("Normal", "AlreadyRegistered", message),)
    )
    return Plan(status=new, events=events)
