"""Reads what the retraining decision needs: the runs a Deployment started, its template and
the template's Dataset."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from modelwerk.api.v1alpha1 import Dataset, Deployment, TrainingJob
from modelwerk.builders.retraining import (
    DATASET_VERSION_ANNOTATION,
    NUMBER_ANNOTATION,
    RETRAINING_LABEL,
)
from modelwerk.kube import resources
from modelwerk.kube.client import Kube
from modelwerk.logic.retraining import RetrainingInput, RetrainingRun


async def observe_retraining(kube: Kube, dep: Deployment) -> RetrainingInput:
    monitoring = dep.spec.monitoring
    if monitoring is None or monitoring.retraining is None:
        return RetrainingInput()
    meta = dep.metadata
    runs = [
        _run(body)
        for body in await kube.list(
            resources.TRAINING_JOBS, meta.namespace, labels={RETRAINING_LABEL: meta.name}
        )
    ]
    body = await kube.get(
        resources.TRAINING_JOBS, meta.namespace, monitoring.retraining.training_job_ref.name
    )
    try:
        template = TrainingJob.from_k8s(body) if body else None
    except ValidationError:
        template = None
    dataset = None
    if template is not None:
        found = await kube.get(resources.DATASETS, meta.namespace, template.spec.dataset_ref.name)
        try:
            dataset = Dataset.from_k8s(found) if found else None
        except ValidationError:
            dataset = None
    return RetrainingInput(runs=runs, template=template, dataset=dataset)


def _run(body: dict[str, Any]) -> RetrainingRun:
    annotations = body["metadata"].get("annotations") or {}
    status = body.get("status") or {}
    return RetrainingRun(
        name=body["metadata"]["name"],
        phase=status.get("phase"),
        number=_int(annotations.get(NUMBER_ANNOTATION)),
        dataset_version=status.get("datasetVersion") or annotations.get(DATASET_VERSION_ANNOTATION),
    )


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
