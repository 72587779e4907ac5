"""Reads what retraining needs: the runs a Deployment started, its template and the
template's Dataset; and the champion a TrainingJob's model must beat."""

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
from modelwerk.logic.champion import ChampionTarget
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


async def observe_champion(kube: Kube, tj: TrainingJob) -> ChampionTarget | str | None:
    """spec.champion resolved to a ModelVersion's artifact; a string says why it cannot be,
    None that there is none (the Deployment serves nothing yet)."""
    gate, namespace = tj.spec.champion, tj.metadata.namespace
    if gate is None:
        return None
    name = gate.model_version
    if gate.deployment is not None:
        dep = await kube.get(resources.DEPLOYMENTS, namespace, gate.deployment)
        if dep is None:
            return f"Deployment {gate.deployment} (spec.champion.deployment) not found"
        name = (dep.get("status") or {}).get("stableVersion")
        if not name:
            return None
    assert name is not None
    mv = await kube.get(resources.MODEL_VERSIONS, namespace, name)
    artifact = ((mv or {}).get("spec") or {}).get("artifact") or {}
    if not artifact.get("uri") or not artifact.get("sha256"):
        return f"ModelVersion {name} (the champion) not found"
    return ChampionTarget(version=name, uri=artifact["uri"], sha256=artifact["sha256"])
