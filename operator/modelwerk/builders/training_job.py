"""The training Job of a TrainingJob run, and the ModelVersion a passing run registers."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.api.v1alpha1.model_version import ModelVersion, ModelVersionSpec
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.builders.labels import child_labels, child_name, managed_labels, owner_reference
from modelwerk.builders.workload import Workload, WorkloadConfig, build_job, build_pod_spec

TRAINING_JOB_LABEL = "modelwerk.dev/training-job"
RUN_LABEL = "modelwerk.dev/run"
MODEL_LABEL = "modelwerk.dev/model"


def run_fingerprint(tj: TrainingJob) -> str:
    """A run is one spec: re-applying it changes nothing, editing it starts a new run.

    >>> doc = {"metadata": {"name": "t"}, "spec": {"datasetRef": {"name": "d"},
    ...        "model": {"name": "m"}, "estimator": {"name": "SVC"}}}
    >>> run_fingerprint(TrainingJob.from_k8s(doc)) == run_fingerprint(TrainingJob.from_k8s(doc))
    True
    """
    return hashlib.sha256(json.dumps(tj.spec.to_k8s(), sort_keys=True).encode()).hexdigest()[:10]


def training_job_name(tj: TrainingJob, fingerprint: str) -> str:
    return child_name(tj.metadata.name, f"train-{fingerprint}")


def build_training_job(
    tj: TrainingJob, dataset: Dataset, fingerprint: str, config: WorkloadConfig
) -> dict[str, Any]:
    meta = tj.metadata
    ds = dataset.status
    labels = child_labels(tj, "training", **{TRAINING_JOB_LABEL: meta.name, RUN_LABEL: fingerprint})
    identity = {
        "apiVersion": tj.api_version,
        "kind": "TrainingJob",
        "metadata": {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid},
        "spec": tj.spec.to_k8s(),
    }
    env = {
        "MODELWERK_TRAININGJOB": json.dumps(identity, sort_keys=True),
        "MODELWERK_ARTIFACT_ROOT": f"pvc://{config.artifact_pvc}",
        "MODELWERK_DATASET_NAME": dataset.metadata.name,
        "MODELWERK_DATASET_VERSION": ds.version or "",
        "MODELWERK_DATASET_SNAPSHOT_URI": ds.snapshot_uri or "",
        "MODELWERK_DATASET_PROFILE_URI": ds.profile_uri or "",
        "MODELWERK_DATASET_TARGET": dataset.spec.target or "target",
    }
    workload = Workload(
        command=["modelwerk", "train"],
        env=env,
        claims=(config.artifact_pvc,),
        resources=tj.spec.resources,
    )
    return build_job(
        name=training_job_name(tj, fingerprint),
        namespace=meta.namespace,
        labels=labels,
        owner=owner_reference(tj),
        pod_spec=build_pod_spec(workload, config),
        active_deadline_seconds=tj.spec.active_deadline_seconds,
        backoff_limit=tj.spec.backoff_limit,
        ttl_seconds_after_finished=tj.spec.ttl_seconds_after_finished,
    )


def model_version_name(model: str, version: int) -> str:
    return f"{model}-v{version}"


def build_model_version(
    tj: TrainingJob, fingerprint: str, version: int, spec: ModelVersionSpec
) -> dict[str, Any]:
    """A registered ModelVersion: labelled with its run, deliberately not owned by the
    TrainingJob (the registry outlives training runs)."""
    return {
        "apiVersion": ModelVersion.model_fields["api_version"].default,
        "kind": "ModelVersion",
        "metadata": {
            "name": model_version_name(spec.model, version),
            "namespace": tj.metadata.namespace,
            "labels": managed_labels(
                **{
                    MODEL_LABEL: spec.model,
                    TRAINING_JOB_LABEL: tj.metadata.name,
                    RUN_LABEL: fingerprint,
                }
            ),
        },
        "spec": spec.to_k8s(),
    }
