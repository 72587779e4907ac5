"""Reads what each kind's decision needs: its Jobs and their pods, referenced objects."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modelwerk.api.v1alpha1 import Dataset, Deployment, ModelVersion, TrainingJob
from modelwerk.api.v1alpha1.deployment import MetricSample
from modelwerk.builders.artifact_store import STORE_CONFIGMAP
from modelwerk.builders.labels import OWNER_KIND, OWNER_NAME
from modelwerk.builders.monitor import MONITOR_LABEL, MONITOR_PORT, capture_of, monitor_name
from modelwerk.builders.serving import DEPLOYMENT_LABEL, SERVER_PORT, TRACK_LABEL, VERSION_LABEL
from modelwerk.builders.training_job import RUN_LABEL, TRAINING_JOB_LABEL
from modelwerk.kube import resources
from modelwerk.kube.client import Kube
from modelwerk.kube.observe_retraining import observe_champion, observe_retraining
from modelwerk.kube.scrape import MetricsReader, SampleError
from modelwerk.logic.compatibility import Refusal, refusal_of
from modelwerk.logic.dataset import ObservedDataset
from modelwerk.logic.deployment import ObservedDeployment
from modelwerk.logic.drift import DriftInput, wants_drift_sample
from modelwerk.logic.experiment import look_due
from modelwerk.logic.experiment_figures import ExperimentFigures
from modelwerk.logic.jobs import JobOutcome, job_outcome
from modelwerk.logic.live import LiveInput, wants_live, with_live_accuracy
from modelwerk.logic.model_version import ProductionVersion
from modelwerk.logic.rollout import wants_sample
from modelwerk.logic.shadow import ShadowFigures
from modelwerk.logic.shadow_rollout import wants_figures as wants_shadow_figures
from modelwerk.logic.tracks import TrackState
from modelwerk.logic.tracks import other as other_color
from modelwerk.logic.training_job import ObservedTraining, RegisteredVersion
from modelwerk.logic.version_tags import training_job_to_observe


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


async def artifact_pvc_exists(kube: Kube, namespace: str, claim: str | None) -> bool:
    """Whether the store's claim exists; a remote store (no claim) needs none."""
    return claim is None or await kube.get(resources.PVCS, namespace, claim) is not None


async def observe_store_override(kube: Kube, namespace: str) -> dict[str, str] | None:
    """The data of the namespace's artifact store ConfigMap, None when it has none."""
    body = await kube.get(resources.CONFIG_MAPS, namespace, STORE_CONFIGMAP)
    if body is None:
        return None
    return {str(k): str(v) for k, v in (body.get("data") or {}).items()}


async def observe_dataset(
    kube: Kube, dataset: Dataset, artifact_pvc: str | None
) -> ObservedDataset:
    meta = dataset.metadata
    production = dataset.spec.source.production
    base = None
    if production is not None and production.base is not None:
        body = await kube.get(resources.DATASETS, meta.namespace, production.base.name)
        base = Dataset.from_k8s(body) if body else None
    return ObservedDataset(
        jobs=await observe_jobs(kube, "Dataset", meta.namespace, meta.name),
        artifact_pvc_exists=await artifact_pvc_exists(kube, meta.namespace, artifact_pvc),
        base=base,
    )


async def observe_training(
    kube: Kube, tj: TrainingJob, artifact_pvc: str | None
) -> ObservedTraining:
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
                sha256=(spec.get("artifact") or {}).get("sha256"),
            )
        )
    return ObservedTraining(
        dataset=Dataset.from_k8s(body) if body else None,
        jobs=await observe_jobs(kube, "TrainingJob", meta.namespace, meta.name),
        versions=versions,
        artifact_pvc_exists=await artifact_pvc_exists(kube, meta.namespace, artifact_pvc),
        champion=await observe_champion(kube, tj),
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


async def observe_trainer(kube: Kube, mv: ModelVersion) -> TrainingJob | None:
    """The TrainingJob in ``mv``'s lineage, when tagging its MLflow run needs its settings;
    None when not needed, gone or unreadable (the tag then goes without its credentials)."""
    name = training_job_to_observe(mv)
    if name is None:
        return None
    body = await kube.get(resources.TRAINING_JOBS, mv.metadata.namespace, name)
    if body is None:
        return None
    try:
        return TrainingJob.from_k8s(body)
    except ValidationError:
        return None


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
    service_bodies = await kube.list(resources.SERVICES, meta.namespace, labels=owned)
    services = frozenset(body["metadata"]["name"] for body in service_bodies)
    service_ips = {
        body["metadata"]["name"]: ip
        for body in service_bodies
        if (ip := (body.get("spec") or {}).get("clusterIP")) and ip != "None"
    }
    routing = dep.spec.traffic_routing
    route = None
    if routing is not None and routing.http_route is not None:
        route = await kube.get(resources.HTTP_ROUTES, meta.namespace, routing.http_route.name)
    sample = None
    color = wants_sample(dep, now)
    canary = dep.status.canary_version
    if color is not None and canary is not None:
        sample = await sample_color(kube, metrics, dep, color, canary, now)
    live = await _observe_live(kube, metrics, dep, now, fresh=isinstance(sample, MetricSample))
    if isinstance(sample, MetricSample) and canary is not None and capture_of(dep) is not None:
        sample = with_live_accuracy(sample, live.reading, canary)
    monitor = await kube.get(resources.APPS_DEPLOYMENTS, meta.namespace, monitor_name(dep))
    refusals: list[Refusal] = []
    if any(t.ready < t.replicas for t in tracks.values()):
        # Serving pods are not watched; only while some are unready is it worth asking why.
        for pod in await kube.list(resources.PODS, meta.namespace, labels=owned):
            if (refusal := refusal_of(pod, VERSION_LABEL)) is not None:
                refusals.append(refusal)
    return ObservedDeployment(
        versions=versions,
        tracks=tracks,
        services=services,
        service_ips=service_ips,
        sample=sample,
        drift=await _observe_drift(kube, metrics, dep, now),
        retraining=await observe_retraining(kube, dep),
        route=route,
        refusals=refusals,
        live=live,
        monitor=monitor is not None,
        figures=await _experiment_figures(kube, metrics, dep, now),
        shadow_figures=await _shadow_figures(kube, metrics, dep, now),
    )


async def _observe_live(
    kube: Kube, metrics: MetricsReader, dep: Deployment, now: datetime, *, fresh: bool
) -> LiveInput:
    """The aggregator's figures and the serving pods' capture counters, when due (or, with
    ``fresh``, the figures alone for an analysis)."""
    due = wants_live(dep, now)
    if capture_of(dep) is None or not (due or fresh):
        return LiveInput()
    namespace, name = dep.metadata.namespace, dep.metadata.name
    monitor = await _monitor(kube, dep)
    reading = await metrics.read_live(*monitor) if monitor else "the aggregator pod is not running"
    if not due:
        return LiveInput(reading=reading)
    serving = [
        target
        for pod in await kube.list(resources.PODS, namespace, labels={DEPLOYMENT_LABEL: name})
        if (target := _running(pod, SERVER_PORT)) is not None
    ]
    return LiveInput(reading=reading, pods=await metrics.capture_counts(serving))


async def _monitor(kube: Kube, dep: Deployment) -> tuple[str, int] | None:
    """(IP, port) of the Deployment's running aggregator pod."""
    meta = dep.metadata
    pods = await kube.list(resources.PODS, meta.namespace, labels={MONITOR_LABEL: meta.name})
    return next((t for pod in pods if (t := _running(pod, MONITOR_PORT)) is not None), None)


def _running(pod: dict[str, Any], default_port: int) -> tuple[str, int] | None:
    """(IP, http port) of a pod that is running and not being deleted."""
    meta, status = pod["metadata"], pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running":
        return None
    if not status.get("podIP"):
        return None
    return status["podIP"], _http_port(pod, default_port)


async def _shadow_figures(
    kube: Kube, metrics: MetricsReader, dep: Deployment, now: datetime
) -> ShadowFigures | str | None:
    """The stable pods' shadow counters when the shadow in progress is due a reading."""
    shadow = dep.status.shadow
    if shadow is None or not wants_shadow_figures(dep, now):
        return None
    meta = dep.metadata
    color = dep.status.active_color or "blue"
    pods = await kube.list(
        resources.PODS, meta.namespace, labels={DEPLOYMENT_LABEL: meta.name, TRACK_LABEL: color}
    )
    targets = [t for pod in pods if (t := _scrape_target(pod, shadow.stable_version)) is not None]
    try:
        figures = await metrics.shadow_figures(targets)
    except SampleError as exc:
        return str(exc)
    if capture_of(dep) is not None and (monitor := await _monitor(kube, dep)) is not None:
        pairs = await metrics.shadow_pairs(*monitor, shadow.stable_version, shadow.version)
        if not isinstance(pairs, str):  # else the pods' own pairs stand in (pairedFrom: process)
            figures.joined = pairs
    return figures


async def _experiment_figures(
    kube: Kube, metrics: MetricsReader, dep: Deployment, now: datetime
) -> ExperimentFigures | str | None:
    """Both arms' counters when the experiment in progress is due a look."""
    status, spec = dep.status, dep.spec.strategy.experiment
    if spec is None or status.paused or not look_due(status.experiment, spec, now):
        return None
    experiment = status.experiment
    assert experiment is not None
    meta = dep.metadata
    pods = await kube.list(resources.PODS, meta.namespace, labels={DEPLOYMENT_LABEL: meta.name})
    active = status.active_color or "blue"

    def targets(color: str, version: str) -> list[tuple[str, int]]:
        return [
            t
            for pod in pods
            if pod["metadata"].get("labels", {}).get(TRACK_LABEL) == color
            and (t := _scrape_target(pod, version)) is not None
        ]

    joined: tuple[str, int, float, str, str] | str | None = None
    if capture_of(dep) is not None and experiment.start_time is not None:
        monitor = await _monitor(kube, dep)
        joined = (
            (
                *monitor,
                experiment.start_time.timestamp(),
                experiment.version_a,
                experiment.version_b,
            )
            if monitor
            else "the aggregator pod is not running"
        )
    try:
        return await metrics.experiment_figures(
            targets(active, experiment.version_a),
            targets(other_color(active), experiment.version_b),
            joined,
        )
    except SampleError as exc:
        return str(exc)


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
    return status["podIP"], _http_port(pod, SERVER_PORT)


def _http_port(pod: dict[str, Any], default: int) -> int:
    ports = [
        p.get("containerPort")
        for c in pod.get("spec", {}).get("containers", [])
        for p in c.get("ports") or []
        if p.get("name") == "http"
    ]
    return int(ports[0] if ports else default)


async def _observe_drift(
    kube: Kube, metrics: MetricsReader, dep: Deployment, now: datetime
) -> DriftInput:
    monitoring = dep.spec.monitoring
    if monitoring is None or monitoring.drift is None:
        return DriftInput()
    sample = None
    stable = dep.status.stable_version
    if wants_drift_sample(dep, now) and stable is not None:
        color = dep.status.active_color or "blue"
        sample = await sample_color(kube, metrics, dep, color, stable, now)
    return DriftInput(sample=sample)
