"""Wiring of the four kinds: which events wake which object, and how each one decides.

Every event on one of our objects, and on any child labelled as ours (Jobs, their Pods,
serving Deployments, Services), only enqueues the owning object; the work queue then runs
the single reconcile path for it. The event handlers are coroutines: kopf runs plain functions
in a thread pool, and the work queue (asyncio) may only be touched from the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import kopf

from modelwerk.api import GROUP, VERSION
from modelwerk.api.base import Resource
from modelwerk.api.v1alpha1 import Dataset, Deployment, ModelVersion, TrainingJob
from modelwerk.api.v1alpha1.deployment import DeploymentStatus
from modelwerk.builders.artifact_store import ArtifactStore
from modelwerk.builders.labels import COMPONENT, MANAGED_SELECTOR, OWNER_KIND, OWNER_NAME
from modelwerk.builders.monitor import MONITOR_COMPONENT
from modelwerk.builders.serving import SERVER_COMPONENT
from modelwerk.builders.workload import MlflowDefault, WorkloadConfig
from modelwerk.experiment_metrics import forget_experiment, record_experiment, record_shadow
from modelwerk.handlers.context import Context
from modelwerk.handlers.reconcile import Key, KindReconciler
from modelwerk.kube import resources
from modelwerk.kube.observe import (
    observe_dataset,
    observe_deployment,
    observe_jobs,
    observe_production,
    observe_store_override,
    observe_trainer,
    observe_training,
)
from modelwerk.logic.artifact_store import StoreProblem, blocked, resolve_store, usable
from modelwerk.logic.dataset import reconcile_dataset
from modelwerk.logic.deployment import reconcile_deployment
from modelwerk.logic.model_version import ObservedModelVersion, reconcile_model_version
from modelwerk.logic.plan import Plan
from modelwerk.logic.training_job import reconcile_training_job
from modelwerk.metrics import (
    forget_deployment,
    record_model_version,
    record_rollout,
    record_training,
)


def _workload(ctx: Context, store: ArtifactStore) -> WorkloadConfig:
    s = ctx.settings
    return WorkloadConfig(
        image=s.runtime_image,
        image_pull_policy=s.image_pull_policy,
        store=store,
        artifact_pvc_size=s.artifact_pvc_size,
        artifact_storage_class=s.artifact_storage_class,
        mlflow=MlflowDefault(
            tracking_uri=s.mlflow_tracking_uri,
            experiment=s.mlflow_experiment,
            credentials_secret=s.mlflow_credentials_secret,
        )
        if s.mlflow_tracking_uri
        else None,
    )


async def _in_store(
    ctx: Context,
    obj: Dataset | TrainingJob | ModelVersion | Deployment,
    now: datetime,
    decide: Callable[[WorkloadConfig], Awaitable[Plan]],
) -> Plan:
    """Decide with the namespace's artifact store, or report why it cannot be used."""
    override = await observe_store_override(ctx.kube, obj.metadata.namespace)
    store = resolve_store(ctx.settings.store(), override)
    generation = obj.metadata.generation
    if isinstance(store, StoreProblem):  # running serving pods are left alone
        return blocked(obj.status, store, generation=generation, now=now)
    return usable(await decide(_workload(ctx, store)), store, generation=generation, now=now)


async def _decide_dataset(ctx: Context, obj: Resource, now: datetime) -> Plan:
    assert isinstance(obj, Dataset)

    async def decide(config: WorkloadConfig) -> Plan:
        observed = await observe_dataset(ctx.kube, obj, config.store.claim)
        return reconcile_dataset(obj, observed, now=now, config=config)

    return await _in_store(ctx, obj, now, decide)


async def _decide_training_job(ctx: Context, obj: Resource, now: datetime) -> Plan:
    assert isinstance(obj, TrainingJob)

    async def decide(config: WorkloadConfig) -> Plan:
        observed = await observe_training(ctx.kube, obj, config.store.claim)
        plan = reconcile_training_job(obj, observed, now=now, config=config)
        record_training(obj, plan)
        return plan

    return await _in_store(ctx, obj, now, decide)


async def _decide_model_version(ctx: Context, obj: Resource, now: datetime) -> Plan:
    assert isinstance(obj, ModelVersion)
    meta = obj.metadata

    async def decide(config: WorkloadConfig) -> Plan:
        observed = ObservedModelVersion(
            jobs=await observe_jobs(ctx.kube, "ModelVersion", meta.namespace, meta.name),
            other_production=await observe_production(ctx.kube, obj),
            training_job=await observe_trainer(ctx.kube, obj),
        )
        plan = reconcile_model_version(obj, observed, now=now, config=config)
        record_model_version(obj, plan)
        return plan

    return await _in_store(ctx, obj, now, decide)


async def _decide_deployment(ctx: Context, obj: Resource, now: datetime) -> Plan:
    assert isinstance(obj, Deployment)

    async def decide(config: WorkloadConfig) -> Plan:
        observed = await observe_deployment(ctx.kube, ctx.metrics, obj, now)
        plan = reconcile_deployment(obj, observed, now=now, config=config)
        record_rollout(obj, plan)
        if isinstance(plan.status, DeploymentStatus):
            ns, name = obj.metadata.namespace, obj.metadata.name
            record_experiment(ns, name, obj.status.experiment, plan.status.experiment)
            record_shadow(ns, name, plan.status.shadow)
        return plan

    return await _in_store(ctx, obj, now, decide)


RECONCILERS: dict[str, KindReconciler] = {
    "Dataset": KindReconciler(Dataset, resources.DATASETS, _decide_dataset),
    "TrainingJob": KindReconciler(TrainingJob, resources.TRAINING_JOBS, _decide_training_job),
    "ModelVersion": KindReconciler(ModelVersion, resources.MODEL_VERSIONS, _decide_model_version),
    "Deployment": KindReconciler(Deployment, resources.DEPLOYMENTS, _decide_deployment),
}


def _enqueue(memo: Any, key: Key, event_type: str | None) -> None:
    ctx: Context | None = getattr(memo, "ctx", None)
    if ctx is None:  # events can arrive while start-up is still running
        return
    if event_type == "DELETED":
        ctx.queue.forget(key)
        if key.kind == "Deployment":
            forget_deployment(key.namespace, key.name)
            forget_experiment(key.namespace, key.name)
    else:
        ctx.queue.add(key)


def _register_kind(kind: str, plural: str) -> None:
    @kopf.on.event(GROUP, VERSION, plural, id=f"{plural}-enqueue")
    async def _own_event(
        event: kopf.RawEvent, name: str, namespace: str | None, memo: Any, spec: kopf.Spec, **_: Any
    ) -> None:
        assert namespace is not None  # every modelwerk kind is namespaced
        _enqueue(memo, Key(kind, namespace, name), event.get("type"))
        ctx: Context | None = getattr(memo, "ctx", None)
        if ctx is None:
            return
        if event.get("type") == "DELETED":
            ctx.dependents.forget(kind, namespace, name)
        else:
            ctx.dependents.seen(kind, namespace, name, spec)
        for other_kind, other_namespace, other in ctx.dependents.of_change(
            kind, namespace, name, spec
        ):
            _enqueue(memo, Key(other_kind, other_namespace, other), None)


for _kind, _reconciler in RECONCILERS.items():
    _register_kind(_kind, _reconciler.resource.plural)


def _owner_key(labels: dict[str, str], namespace: str) -> Key | None:
    kind, name = labels.get(OWNER_KIND), labels.get(OWNER_NAME)
    if kind in RECONCILERS and name:
        return Key(kind, namespace, name)
    return None


CHILD_RESOURCES = [
    resources.JOBS,
    resources.PODS,
    resources.APPS_DEPLOYMENTS,
    resources.SERVICES,
]


def child_selector(rt: resources.ResourceType) -> str:
    """The label selector the API server applies to a child watch.

    Only what the operator manages; and of the pods only those of Jobs, whose termination
    messages carry the results the decisions read (not serving or aggregator pods). A serving pod's readiness reaches its owner
    through its apps/v1 Deployment, whose status (ready, available, updated replicas) is what
    the decision reads, so an event of the pod itself would only cost a reconcile more, and
    the pods held in the watch are a quarter of all watched objects with 1,000 Deployments
    (bench/operator/results.md). Metrics scraping lists the pods it needs when it needs them.
    """
    selector = ",".join(f"{k}={v}" for k, v in MANAGED_SELECTOR.items())
    if rt == resources.PODS:
        selector += f",{COMPONENT} notin ({SERVER_COMPONENT},{MONITOR_COMPONENT})"
    return selector


def _register_child(rt: resources.ResourceType) -> None:
    @kopf.on.event(
        rt.group,
        rt.version,
        rt.plural,
        id=f"{rt.plural}-{rt.group or 'core'}-wakes-owner",
        labels=MANAGED_SELECTOR,
    )
    async def _child_event(labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any) -> None:
        key = _owner_key(dict(labels), namespace) if namespace else None
        if key is not None:
            _enqueue(memo, key, None)


for _child in CHILD_RESOURCES:
    _register_child(_child)
