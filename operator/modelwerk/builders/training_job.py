"""The training Job of a TrainingJob run, and the ModelVersion a passing run registers."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.api.v1alpha1.model_version import ModelVersion, ModelVersionSpec
from modelwerk.api.v1alpha1.search import Stage
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.builders.labels import child_labels, child_name, managed_labels, owner_reference
from modelwerk.builders.workload import (
    Indexed,
    Workload,
    WorkloadConfig,
    build_job,
    build_pod_spec,
)

MLFLOW_URI_ENV = "MODELWERK_MLFLOW_TRACKING_URI"
MLFLOW_EXPERIMENT_ENV = "MODELWERK_MLFLOW_EXPERIMENT"

TRAINING_JOB_LABEL = "modelwerk.dev/training-job"
RUN_LABEL = "modelwerk.dev/run"
MODEL_LABEL = "modelwerk.dev/model"
STAGE_LABEL = "modelwerk.dev/search-stage"
# The trainer's exit codes (modelwerk.runtime.trainer.errors) for errors that repeat on retry:
# training, data, spec. Restated here: the operator never imports runtime code.
EXIT_FAILED, EXIT_DATA, EXIT_CONFIG = 1, 2, 3


def run_fingerprint(tj: TrainingJob) -> str:
    """A run is one spec: re-applying it changes nothing, editing it starts a new run.

    >>> doc = {"metadata": {"name": "t"}, "spec": {"datasetRef": {"name": "d"},
    ...        "model": {"name": "m"}, "estimator": {"name": "SVC"}}}
    >>> run_fingerprint(TrainingJob.from_k8s(doc)) == run_fingerprint(TrainingJob.from_k8s(doc))
    True
    """
    # suspend says whether to run, not what: lifting it starts the run the spec describes.
    spec = {k: v for k, v in tj.spec.to_k8s().items() if k != "suspend"}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]


def training_job_name(tj: TrainingJob, fingerprint: str) -> str:
    return child_name(tj.metadata.name, f"train-{fingerprint}")


def search_job_name(tj: TrainingJob, fingerprint: str, stage: int) -> str:
    """One Indexed Job per search stage. At most 56 characters: an Indexed Job's pods are
    named ``<job>-<index>-<suffix>`` and their hostname ``<job>-<index>`` must fit in 63."""
    return child_name(tj.metadata.name, f"search-{fingerprint}-{stage}", max_length=56)


def build_training_job(
    tj: TrainingJob, dataset: Dataset, fingerprint: str, config: WorkloadConfig
) -> dict[str, Any]:
    """The Job that fits (the best candidate of a parallel search), evaluates and reports."""
    return build_job(
        name=training_job_name(tj, fingerprint),
        namespace=tj.metadata.namespace,
        labels=labels_of(tj, fingerprint, "training"),
        owner=owner_reference(tj),
        pod_spec=build_pod_spec(
            workload_of(tj, dataset, fingerprint, config, ["modelwerk", "train"]),
            config,
            tj.metadata.namespace,
        ),
        active_deadline_seconds=tj.spec.active_deadline_seconds,
        backoff_limit=tj.spec.backoff_limit,
        ttl_seconds_after_finished=tj.spec.ttl_seconds_after_finished,
    )


def build_search_job(
    tj: TrainingJob, dataset: Dataset, fingerprint: str, stage: Stage, config: WorkloadConfig
) -> dict[str, Any]:
    """Stage ``stage`` of a parallel search: an Indexed Job, one pod per share.

    Without a TTL: a finished stage's Job is the record that the stage ran, and the
    TrainingJob's deletion removes it.
    """
    search = tj.spec.search
    assert search is not None
    command = ["modelwerk", "train", "--search-stage", str(stage.number)]
    return build_job(
        name=search_job_name(tj, fingerprint, stage.number),
        namespace=tj.metadata.namespace,
        labels=labels_of(tj, fingerprint, "search", **{STAGE_LABEL: str(stage.number)}),
        owner=owner_reference(tj),
        pod_spec=build_pod_spec(
            workload_of(tj, dataset, fingerprint, config, command), config, tj.metadata.namespace
        ),
        active_deadline_seconds=tj.spec.active_deadline_seconds,
        backoff_limit=0,
        indexed=Indexed(
            completions=stage.indexes,
            backoff_limit_per_index=search.backoff_limit_per_index,
            max_failed_indexes=min(search.max_failed_indexes, stage.indexes),
            fail_index_exit_codes=(EXIT_FAILED, EXIT_DATA, EXIT_CONFIG),
        ),
    )


def labels_of(tj: TrainingJob, fingerprint: str, component: str, **extra: str) -> dict[str, str]:
    return child_labels(
        tj,
        component,
        **{TRAINING_JOB_LABEL: tj.metadata.name, RUN_LABEL: fingerprint, **extra},
    )


def workload_of(
    tj: TrainingJob,
    dataset: Dataset,
    fingerprint: str,
    config: WorkloadConfig,
    command: list[str],
) -> Workload:
    meta = tj.metadata
    ds = dataset.status
    identity = {
        "apiVersion": tj.api_version,
        "kind": "TrainingJob",
        "metadata": {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid},
        "spec": tj.spec.to_k8s(),
    }
    env = {
        "MODELWERK_TRAININGJOB": json.dumps(identity, sort_keys=True),
        "MODELWERK_DATASET_NAME": dataset.metadata.name,
        "MODELWERK_DATASET_VERSION": ds.version or "",
        "MODELWERK_DATASET_SNAPSHOT_URI": ds.snapshot_uri or "",
        "MODELWERK_DATASET_PROFILE_URI": ds.profile_uri or "",
        "MODELWERK_DATASET_TARGET": dataset.spec.target or "target",
        "MODELWERK_RUN": fingerprint,
    }
    secret = None
    tracking = tj.spec.tracking.mlflow if tj.spec.tracking else None
    if tracking is not None:
        ref = tracking.credentials_secret
        secret = ref.name if ref else None
    elif config.mlflow is not None:
        env[MLFLOW_URI_ENV] = config.mlflow.tracking_uri
        env[MLFLOW_EXPERIMENT_ENV] = config.mlflow.experiment
        secret = config.mlflow.credentials_secret
    return Workload(
        command=command,
        env=env,
        reads=(ds.snapshot_uri, ds.profile_uri),
        resources=tj.spec.resources,
        secret_env=secret,
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
