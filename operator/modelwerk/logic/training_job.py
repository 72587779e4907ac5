"""Decisions for TrainingJob objects: wait for data, run one Job per spec, gate, register.

A run is identified by a fingerprint of the spec, so its Job name is deterministic and a
restarted operator finds the Job it started. A passing run registers exactly one ModelVersion,
labelled with the run: the label, not the status, is the proof of registration, so a crash
between creating the ModelVersion and writing the status cannot register a second one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modelwerk.api.base import ApiModel
from modelwerk.api.conditions import ConditionStatus
from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.api.v1alpha1.estimators import task_of
from modelwerk.api.v1alpha1.model_version import (
    Artifact,
    Lineage,
    ModelVersionSpec,
    Signature,
    Tensor,
)
from modelwerk.api.v1alpha1.training_job import GateResult, TrainingJob, TrainingJobStatus
from modelwerk.builders.training_job import (
    build_model_version,
    build_training_job,
    model_version_name,
    run_fingerprint,
    training_job_name,
)
from modelwerk.builders.workload import WorkloadConfig, build_artifact_pvc
from modelwerk.logic.jobs import JobOutcome, failure
from modelwerk.logic.plan import Event, Plan
from modelwerk.logic.status import with_ready

DATASET_READY = "DatasetReady"
GATES_PASSED = "GatesPassed"
WAIT_FOR_DATASET_SECONDS = 30.0
REGISTRATION_RETRY_SECONDS = 2.0
TERMINAL = ("Succeeded", "Failed", "Rejected")


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    model: str
    version: int
    run: str | None
    training_job: str | None


@dataclass(frozen=True)
class ObservedTraining:
    dataset: Dataset | None
    jobs: dict[str, JobOutcome]
    """Training Jobs of this TrainingJob by name."""
    versions: list[RegisteredVersion]
    """Every ModelVersion of the target model in the namespace."""
    artifact_pvc_exists: bool


class ArtifactResult(ApiModel):
    model_config = ApiModel.model_config | {"extra": "ignore"}
    uri: str
    sha256: str
    size_bytes: int | None = None
    framework_version: str | None = None


class TrainingResult(ApiModel):
    """The training pod's termination message (see ``modelwerk.runtime.trainer``)."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    ok: bool
    task: str | None = None
    metrics: dict[str, float | None] = {}
    best_params: dict[str, Any] | None = None
    artifact: ArtifactResult | None = None
    signature: dict[str, Any] | None = None
    duration_seconds: float | None = None
    reason: str | None = None
    error: str | None = None


def primary_metric(tj: TrainingJob, metrics: dict[str, float]) -> str | None:
    """The headline metric: the first gate's, else accuracy or rmse."""
    names = [g.metric for g in tj.spec.gates]
    names += ["accuracy" if task_of(tj.spec.estimator.name) == "classification" else "rmse"]
    for name in names:
        if name in metrics:
            return f"{name}={metrics[name]:.4g}"
    return None


def evaluate_gates(tj: TrainingJob, metrics: dict[str, float]) -> list[GateResult]:
    return [
        GateResult(
            metric=gate.metric,
            operator=gate.operator,
            threshold=gate.threshold,
            value=metrics.get(gate.metric),
            passed=gate.metric in metrics and gate.passes(metrics[gate.metric]),
        )
        for gate in tj.spec.gates
    ]


def _tensors(entries: Any) -> list[Tensor]:
    tensors = []
    for entry in entries or []:
        if isinstance(entry, dict):
            tensors.append(Tensor.model_validate(entry))
        else:  # compact form: [name, datatype] or [name, datatype, shape]
            shape = list(entry[2]) if len(entry) > 2 else [-1]
            tensors.append(Tensor(name=entry[0], datatype=entry[1], shape=shape))
    return tensors


def signature_of(raw: dict[str, Any] | None) -> Signature | None:
    if not raw or not raw.get("inputs"):
        return None
    classes = raw.get("classes")
    return Signature(
        inputs=_tensors(raw.get("inputs")),
        outputs=_tensors(raw.get("outputs")) or [Tensor(name="predict", datatype="BYTES")],
        classes=[str(c) for c in classes] if classes is not None else None,
    )


def reconcile_training_job(
    tj: TrainingJob, observed: ObservedTraining, *, now: datetime, config: WorkloadConfig
) -> Plan:
    meta = tj.metadata
    status = tj.status
    fingerprint = run_fingerprint(tj)
    job_name = training_job_name(tj, fingerprint)
    job = observed.jobs.get(job_name)
    this_run = status.job_name == job_name
    if this_run and status.phase in TERMINAL:
        return Plan(status=status.model_copy(update={"observed_generation": meta.generation}))

    if job is None:
        return _start(tj, observed, fingerprint, job_name, now=now, config=config)
    if job.state in ("Pending", "Running"):
        new = _status(
            tj,
            now=now,
            phase="Running",
            ready="False",
            reason="Training",
            message=f"Training Job {job_name} is {job.state.lower()}",
            job_name=job_name,
            start_time=status.start_time or job.start_time or now,
        )
        return Plan(status=new)
    if job.state == "Failed":
        return _failed(tj, job, now=now)
    return _finished(tj, observed, job, fingerprint, now=now)


def _status(
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


def _start(
    tj: TrainingJob,
    observed: ObservedTraining,
    fingerprint: str,
    job_name: str,
    *,
    now: datetime,
    config: WorkloadConfig,
) -> Plan:
    dataset = observed.dataset
    ref = tj.spec.dataset_ref.name
    if dataset is None:
        message = f"Dataset {ref} does not exist in namespace {tj.metadata.namespace}"
        new = _status(
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
        new = _status(
            tj,
            now=now,
            phase="Pending",
            ready="False",
            reason=why,
            message=message,
            conditions=[(DATASET_READY, "False", why)],
        )
        return Plan(status=new, requeue_after=WAIT_FOR_DATASET_SECONDS)
    create: list[dict[str, Any]] = []
    if not observed.artifact_pvc_exists:
        create.append(build_artifact_pvc(config, tj.metadata.namespace))
    create.append(build_training_job(tj, dataset, fingerprint, config))
    message = f"Started training Job {job_name} on Dataset {ref} version {ds.short_version}"
    new = _status(
        tj,
        now=now,
        phase="Running",
        ready="False",
        reason="Training",
        message=message,
        conditions=[(DATASET_READY, "True", "DatasetReady")],
        job_name=job_name,
        dataset_version=ds.version,
        start_time=now,
        completion_time=None,
        metrics=None,
        primary_metric=None,
        best_params=None,
        gate_results=None,
        model_version=None,
        artifact_uri=None,
    )
    return Plan(
        status=new, create=tuple(create), events=(Event("Normal", "TrainingStarted", message),)
    )


def _failed(tj: TrainingJob, job: JobOutcome, *, now: datetime) -> Plan:
    reason, detail = failure(job, "TrainingFailed")
    message = f"Training Job {job.name} failed: {detail}"
    new = _status(
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
    tj: TrainingJob, observed: ObservedTraining, job: JobOutcome, fingerprint: str, *, now: datetime
) -> Plan:
    try:
        result = TrainingResult.model_validate(job.result or {})
    except ValidationError as exc:
        result = TrainingResult(ok=False, reason="ResultUnreadable", error=str(exc.errors()[:1]))
    if not result.ok or result.artifact is None:
        message = f"Training Job {job.name} reported no model: {result.error or job.message or 'no result'}"
        new = _status(
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
    gates = evaluate_gates(tj, metrics)
    common: dict[str, Any] = {
        "job_name": job.name,
        "metrics": metrics,
        "primary_metric": primary_metric(tj, metrics),
        "best_params": result.best_params,
        "gate_results": gates or None,
        "artifact_uri": result.artifact.uri,
        "completion_time": job.completion_time or now,
    }
    failing = [g for g in gates if not g.passed]
    if failing:
        reasons = "; ".join(
            f"{g.metric} {'missing' if g.value is None else f'{g.value:.4g}'} is not {g.operator} {g.threshold:g}"
            for g in failing
        )
        message = f"Rejected: {reasons}; no ModelVersion was registered"
        new = _status(
            tj,
            now=now,
            phase="Rejected",
            ready="False",
            reason="GatesFailed",
            message=message,
            conditions=[(GATES_PASSED, "False", "GatesFailed")],
            **common,
        )
        return Plan(status=new, events=(Event("Warning", "GatesFailed", message),))

    model = tj.spec.model.name
    mine = [
        v
        for v in observed.versions
        if v.run == fingerprint and v.training_job == tj.metadata.name and v.model == model
    ]
    if mine:
        registered = min(mine, key=lambda v: v.version).name
        message = f"Registered {registered} ({common['primary_metric'] or 'no metrics'})"
        new = _status(
            tj,
            now=now,
            phase="Succeeded",
            ready="True",
            reason="Registered",
            message=message,
            conditions=[(GATES_PASSED, "True", "GatesPassed")],
            model_version=registered,
            **common,
        )
        events = () if tj.status.phase == "Succeeded" else (Event("Normal", "Registered", message),)
        return Plan(status=new, events=events)

    version = max((v.version for v in observed.versions if v.model == model), default=0) + 1
    dataset = observed.dataset
    spec = ModelVersionSpec(
        model=model,
        version=version,
        task=task_of(tj.spec.estimator.name),
        artifact=Artifact(
            uri=result.artifact.uri,
            sha256=result.artifact.sha256,
            framework_version=result.artifact.framework_version,
        ),
        signature=signature_of(result.signature),
        metrics=metrics,
        params={**tj.spec.estimator.params, **(result.best_params or {})},
        lineage=Lineage(
            dataset=tj.spec.dataset_ref.name,
            dataset_version=tj.status.dataset_version
            or (dataset.status.version if dataset else None),
            training_job=tj.metadata.name,
            training_job_uid=tj.metadata.uid or None,
        ),
    )
    name = model_version_name(model, version)
    new = _status(
        tj,
        now=now,
        phase="Running",
        ready="False",
        reason="Registering",
        message=f"Gates passed; registering {name}",
        conditions=[(GATES_PASSED, "True", "GatesPassed")],
        **common,
    )
    return Plan(
        status=new,
        create=(build_model_version(tj, fingerprint, version, spec),),
        requeue_after=REGISTRATION_RETRY_SECONDS,
    )
