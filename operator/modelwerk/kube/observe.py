"""Reads what each kind's decision needs: its Jobs and their pods, referenced objects."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modelwerk.api.v1alpha1 import Dataset, Deployment, ModelVersion, TrainingJob
from modelwerk.api.v1alpha1.deployment import MetricSample
from modelwerk.builders.labels import OWNER_KIND, OWNER_NAME
from modelwerk.builders.retraining import NUMBER_ANNOTATION, RETRAINING_LABEL
from modelwerk.builders.serving import DEPLOYMENT_LABEL, SERVER_PORT, TRACK_LABEL, VERSION_LABEL
from modelwerk.builders.training_job import RUN_LABEL, TRAINING_JOB_LABEL
from modelwerk.kube import resources
from modelwerk.kube.client import Kube
from modelwerk.kube.scrape import MetricsReader, SampleError
from modelwerk.logic.dataset import ObservedDataset
from modelwerk.logic.deployment import ObservedDeployment
from modelwerk.logic.drift import DriftInput, RetrainingRun, wants_drift_sample
from modelwerk.logic.jobs import JobOutcome, job_outcome
from modelwerk.logic.model_version import ProductionVersion
from modelwerk.logic.rollout import TrackState, wants_sample
from modelwerk.logic.training_job import ObservedTraining, RegisteredVersion


async def observe_jobs(
    kube: Kube, owner_kind: str, namespace: str, name: str
) -> dict[str, JobOutcome]:
    labels = {OWNER_KIND: owner_kind, OWNER_NAME: name}
    jobs = await kube.list(resources.JOBS, namespace, labels=labels)
    if not jobs:
        return {}
    pods_by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pod in await kube.list(resources.PODS, namespace, labels=labels):
        job_name = pod["metadata"].get("labels", {}).get("job-name")
        if job_name:
            pods_by_job[job_name].append(pod)
    return {
        job["metadata"]["name"]: job_outcome(job, pods_by_job[job["metadata"]["name"]])
        for job in jobs
    }


async def artifact_pvc_exists(kube: Kube, namespace: str, claim: str) -> bool:
    return await kube.get(resources.PVCS, namespace, claim) is not None


async def observe_dataset(kube: Kube, dataset: Dataset, artifact_pvc: str) -> ObservedDataset:
    meta = dataset.metadata
    return ObservedDataset(
        jobs=await observe_jobs(kube, "Dataset", meta.namespace, meta.name),
        artifact_pvc_exists=await artifact_pvc_exists(kube, meta.namespace, artifact_pvc),
    )


async def observe_training(kube: Kube, tj: TrainingJob, artifact_pvc: str) -> ObservedTraining:
    meta = tj.metadata
    body = await kube.get(resources.DATASETS, meta.namespace, tj.spec.dataset_ref.name)
    versions = []
    model = tj.spec.model.name
    for mv in await kube.list(resources.MODEL_VERSIONS, meta.namespace):
        spec, labels = mv.get("spec", {}), mv["metadata"].get("labels", {})
        if spec.get("model") != model:
            continue
        versions.append(
            RegisteredVersion(
                name=mv["metadata"]["name"],
                model=model,
                version=int(spec.get("version", 0)),
                run=labels.get(RUN_LABEL),
                training_job=labels.get(TRAINING_JOB_LABEL),
            )
        )
    return ObservedTraining(
        dataset=Dataset.from_k8s(body) if body else None,
        jobs=await observe_jobs(kube, "TrainingJob", meta.namespace, meta.name),
        versions=versions,
        artifact_pvc_exists=await artifact_pvc_exists(kube, meta.namespace, artifact_pvc),
    )


async def observe_production(kube: Kube, mv: ModelVersion) -> list[ProductionVersion]:
    """The other versions of ``mv``'s model whose spec says Production."""
    found = []
    for other in await kube.list(resources.MODEL_VERSIONS, mv.metadata.namespace):
        spec, meta = other.get("spec", {}), other["metadata"]
        if meta["name"] == mv.metadata.name or spec.get("model") != mv.spec.model:
            continue
        if spec.get("stage") != "Production":
            continue
        history = other.get("status", {}).get("stageHistory") or []
        last = history[-1] if history else {}
        promoted = (
            datetime.fromisoformat(last["time"].replace("Z", "+00:00"))
            if last.get("stage") == "Production"
            else None
        )
        found.append(ProductionVersion(meta["name"], int(spec.get("version", 0)), promoted))
    return found


def _track(body: dict[str, Any]) -> TrackState:
    meta, status = body["metadata"], body.get("status", {})
    deadline = any(
        c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions") or []
    )
    return TrackState(
        version=meta.get("labels", {}).get(VERSION_LABEL),
        replicas=int(status.get("replicas", 0)),
        updated=int(status.get("updatedReplicas", 0)),
        ready=int(status.get("readyReplicas", 0)),
        available=int(status.get("availableReplicas", 0)),
        current=int(status.get("observedGeneration", 0)) >= int(meta.get("generation", 0)),
        deadline_exceeded=deadline,
    )


async def observe_deployment(
    kube: Kube, metrics: MetricsReader, dep: Deployment, now: datetime
) -> ObservedDeployment:
    meta = dep.metadata
    versions = []
    for body in await kube.list(resources.MODEL_VERSIONS, meta.namespace):
        try:
            versions.append(ModelVersion.from_k8s(body))
        except ValidationError:
            continue  # reported on that ModelVersion's own status
    owned = {DEPLOYMENT_LABEL: meta.name}
    tracks = {
        body["metadata"].get("labels", {}).get(TRACK_LABEL, ""): _track(body)
        for body in await kube.list(resources.APPS_DEPLOYMENTS, meta.namespace, labels=owned)
    }
    services = frozenset(
        body["metadata"]["name"]
        for body in await kube.list(resources.SERVICES, meta.namespace, labels=owned)
    )
    routing = dep.spec.traffic_routing
    route = None
    if routing is not None and routing.http_route is not None:
        route = await kube.get(resources.HTTP_ROUTES, meta.namespace, routing.http_route.name)
    sample = None
    color = wants_sample(dep, now)
    if color is not None and dep.status.canary_version is not None:
        sample = await sample_color(kube, metrics, dep, color, dep.status.canary_version, now)
    return ObservedDeployment(
        versions=versions,
        tracks=tracks,
        services=services,
        sample=sample,
        drift=await _observe_drift(kube, metrics, dep, now),
        route=route,
    )


async def sample_color(
    kube: Kube, metrics: MetricsReader, dep: Deployment, color: str, version: str, now: datetime
) -> MetricSample | str:
    """Metrics of ``version``'s Ready pods on ``color``, or why they could not be read."""
    meta, analysis = dep.metadata, dep.spec.analysis
    try:
        if analysis is not None and analysis.prometheus_url:
            return await metrics.sample_prometheus(
                analysis.prometheus_url, meta.namespace, meta.name, version, now
            )
        pods = await kube.list(
            resources.PODS, meta.namespace, labels={DEPLOYMENT_LABEL: meta.name, TRACK_LABEL: color}
        )
        return await metrics.sample_pods(
            [t for pod in pods if (t := _scrape_target(pod, version)) is not None], now
        )
    except SampleError as exc:
        return str(exc)


def _scrape_target(pod: dict[str, Any], version: str) -> tuple[str, int] | None:
    meta, status = pod["metadata"], pod.get("status") or {}
    if meta.get("deletionTimestamp") or meta.get("labels", {}).get(VERSION_LABEL) != version:
        return None
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if not ready or not status.get("podIP"):
        return None
    ports = [
        p.get("containerPort")
        for c in pod.get("spec", {}).get("containers", [])
        for p in c.get("ports") or []
        if p.get("name") == "http"
    ]
    return status["podIP"], int(ports[0] if ports else SERVER_PORT)


async def _observe_drift(
    kube: Kube, metrics: MetricsReader, dep: Deployment, now: datetime
) -> DriftInput:
    monitoring = dep.spec.monitoring
    if monitoring is None or monitoring.drift is None:
        return DriftInput()
    meta = dep.metadata
    runs = [
        RetrainingRun(
            name=body["metadata"]["name"],
            phase=(body.get("status") or {}).get("phase"),
            number=_int(body["metadata"].get("annotations", {}).get(NUMBER_ANNOTATION)),
        )
        for body in await kube.list(
            resources.TRAINING_JOBS, meta.namespace, labels={RETRAINING_LABEL: meta.name}
        )
    ]
    template = None
    if monitoring.retraining is not None:
        body = await kube.get(
            resources.TRAINING_JOBS, meta.namespace, monitoring.retraining.training_job_ref.name
        )
        try:
            template = TrainingJob.from_k8s(body) if body else None
        except ValidationError:
            template = None
    sample = None
    stable = dep.status.stable_version
    if wants_drift_sample(dep, now) and stable is not None:
        color = dep.status.active_color or "blue"
        sample = await sample_color(kube, metrics, dep, color, stable, now)
    return DriftInput(sample=sample, runs=runs, template=template)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
