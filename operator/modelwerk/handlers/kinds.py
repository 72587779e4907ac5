"""Wiring of the four kinds: which events wake which object, and how each one decides.

Every event on one of our objects, and on any child labelled as ours (Jobs, their Pods,
serving Deployments, Services), only enqueues the owning object; the work queue then runs
the single reconcile path for it.
"""

from __future__ import annotations

from typing import Any

import kopf

from modelwerk import clock
from modelwerk.api import GROUP, VERSION
from modelwerk.api.base import Resource
from modelwerk.api.v1alpha1 import Dataset, Deployment, ModelVersion, TrainingJob
from modelwerk.builders.labels import MANAGED_BY, OWNER_KIND, OWNER_NAME
from modelwerk.handlers.context import Context
from modelwerk.handlers.reconcile import KindReconciler, Key
from modelwerk.kube import resources
from modelwerk.logic.dataset import reconcile_dataset
from modelwerk.logic.deployment import reconcile_deployment
from modelwerk.logic.model_version import reconcile_model_version
from modelwerk.logic.plan import Plan
from modelwerk.logic.training_job import reconcile_training_job


async def _decide_dataset(ctx: Context, obj: Resource) -> Plan:
    assert isinstance(obj, Dataset)
    return reconcile_dataset(obj, now=clock.now())


async def _decide_training_job(ctx: Context, obj: Resource) -> Plan:
    assert isinstance(obj, TrainingJob)
    return reconcile_training_job(obj, now=clock.now())


async def _decide_model_version(ctx: Context, obj: Resource) -> Plan:
    assert isinstance(obj, ModelVersion)
    return reconcile_model_version(obj, now=clock.now())


async def _decide_deployment(ctx: Context, obj: Resource) -> Plan:
    assert isinstance(obj, Deployment)
    return reconcile_deployment(obj, now=clock.now())


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
    else:
        ctx.queue.add(key)


def _register_kind(kind: str, plural: str) -> None:
    @kopf.on.event(GROUP, VERSION, plural, id=f"{plural}-enqueue")
    def _own_event(
        event: dict[str, Any], name: str, namespace: str, memo: Any, **_: Any
    ) -> None:
        _enqueue(memo, Key(kind, namespace, name), event.get("type"))


for _kind, _reconciler in RECONCILERS.items():
    _register_kind(_kind, _reconciler.resource.plural)


def _owner_key(labels: dict[str, str], namespace: str) -> Key | None:
    kind, name = labels.get(OWNER_KIND), labels.get(OWNER_NAME)
    if kind in RECONCILERS and name:
        return Key(kind, namespace, name)
    return None


_CHILDREN = [
    resources.JOBS,
    resources.PODS,
    resources.APPS_DEPLOYMENTS,
    resources.SERVICES,
]


def _register_child(rt: resources.ResourceType) -> None:
    @kopf.on.event(
        rt.group,
        rt.version,
        rt.plural,
        id=f"{rt.plural}-{rt.group or 'core'}-wakes-owner",
        labels={"app.kubernetes.io/managed-by": MANAGED_BY},
    )
    def _child_event(labels: dict[str, str], namespace: str, memo: Any, **_: Any) -> None:
        key = _owner_key(dict(labels), namespace)
        if key is not None:
            _enqueue(memo, key, None)


for _child in _CHILDREN:
    _register_child(_child)
