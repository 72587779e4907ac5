"""The pod template shared by every workload the operator starts (validation, training,
verification).

Pods run as a non-root numeric user with a read-only root filesystem, no privilege escalation,
no capabilities and the runtime's default seccomp profile: they pass the restricted Pod
Security Standard. They never talk to the API server, so no token is mounted. They report
their result as JSON in the termination message.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from modelwerk.api.v1alpha1.common import ResourceRequirements
from modelwerk.builders.artifact_store import ArtifactStore, claim_of
from modelwerk.builders.labels import managed_labels

PVC_ROOT = "/var/run/modelwerk/pvc"
SOURCE_ENV_PREFIX = "MODELWERK_SOURCE_"
"""The runtime's ``modelwerk.runtime.storage.SOURCE_PREFIX`` (builders cannot import it)."""
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
RUNTIME_USER = 65532

# The restricted Pod Security Standard, for every pod the operator creates.
POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": RUNTIME_USER,
    "runAsGroup": RUNTIME_USER,
    "fsGroup": RUNTIME_USER,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}

DEFAULT_STORE = ArtifactStore("pvc", "modelwerk-artifacts", per_namespace_prefix=False)
"""The embedded default: one ReadWriteOnce claim per namespace."""

DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"memory": "2Gi"},
}


@dataclass(frozen=True)
class MlflowDefault:
    """The operator-wide MLflow tracking server, for TrainingJobs that name none."""

    tracking_uri: str
    experiment: str = "modelwerk"
    credentials_secret: str | None = None


@dataclass(frozen=True)
class WorkloadConfig:
    """Operator settings that shape workload pods."""

    image: str
    image_pull_policy: str
    store: ArtifactStore = DEFAULT_STORE
    """The artifact store of the namespace the pods run in (the operator's, or the override)."""
    artifact_pvc_size: str = "5Gi"
    artifact_storage_class: str | None = None
    mlflow: MlflowDefault | None = None


@dataclass(frozen=True)
class Workload:
    command: list[str]
    env: dict[str, str]
    reads: tuple[str | None, ...] = ()
    """URIs the pod reads besides the store: the ``pvc://`` ones among them are mounted
    read-only (data sources, and artifacts recorded before the store moved)."""
    writes_store: bool = True
    """Mount a pvc:// store writable; a pod that only reads (verification) gets it read-only."""
    secret_env: str | None = None
    """A Secret whose keys become environment variables."""
    secret_env_prefix: str = ""
    """Prefix of those variables (a data source's: so they never replace the store's)."""
    secret_keys: tuple[tuple[str, str, str], ...] = ()
    """(variable, Secret, key): single Secret keys as variables, through ``secretKeyRef``, so
    the value never appears in the pod spec (a data source's connection URL)."""
    secret_env_optional: bool = False
    """Start the pod even when that Secret is missing: for credentials of a side task whose
    failure the pod reports, rather than a pod that waits for the Secret forever."""
    resources: ResourceRequirements | None = None
    labels: dict[str, str] = field(default_factory=dict)


def pvc_mount_path(claim: str) -> str:
    return f"{PVC_ROOT}/{claim}"


def claim_mounts(
    store: ArtifactStore, reads: tuple[str | None, ...], *, writable: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and mounts of the claims a pod needs: a pvc:// store's claim, then the claims
    of the ``pvc://`` URIs it reads. A pod on a remote store with nothing recorded on a claim
    mounts none, so it can run on any node."""
    claims = [c for c in (store.claim, *(claim_of(u) for u in reads)) if c]
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for index, claim in enumerate(dict.fromkeys(claims)):
        read_only = not (writable and claim == store.claim)
        name = f"pvc-{index}"
        volume: dict[str, Any] = {"claimName": claim}
        if read_only:
            volume["readOnly"] = True
        volumes.append({"name": name, "persistentVolumeClaim": volume})
        mounts.append({"name": name, "mountPath": pvc_mount_path(claim), "readOnly": read_only})
    return volumes, mounts


def resources_of(resources: ResourceRequirements | None) -> dict[str, Any]:
    if resources is None:
        return DEFAULT_RESOURCES
    return resources.to_k8s() or DEFAULT_RESOURCES


def build_pod_spec(workload: Workload, config: WorkloadConfig, namespace: str) -> dict[str, Any]:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(workload.env.items())]
    env += [
        {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for variable, secret, key in workload.secret_keys
    ]
    env += config.store.env(namespace)
    env += [
        {"name": "MODELWERK_PVC_ROOT", "value": PVC_ROOT},
        {"name": "MODELWERK_TERMINATION_MESSAGE_PATH", "value": TERMINATION_MESSAGE_PATH},
        {"name": "HOME", "value": "/tmp"},
    ]
    claims, claim_volume_mounts = claim_mounts(
        config.store, workload.reads, writable=workload.writes_store
    )
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}, *claims]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}, *claim_volume_mounts]
    container: dict[str, Any] = {
        "name": "main",
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": workload.command,
        "env": env,
        "resources": resources_of(workload.resources),
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }
    if workload.secret_env:
        ref: dict[str, Any] = {"name": workload.secret_env}
        if workload.secret_env_optional:
            ref["optional"] = True
        source: dict[str, Any] = {"secretRef": ref}
        if workload.secret_env_prefix:
            source["prefix"] = workload.secret_env_prefix
        container["envFrom"] = [source]
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": copy.deepcopy(POD_SECURITY),
        "containers": [container],
        "volumes": volumes,
    }


@dataclass(frozen=True)
class Indexed:
    """An Indexed Job: ``completions`` pods, index ``i`` in ``JOB_COMPLETION_INDEX``."""

    completions: int
    backoff_limit_per_index: int
    max_failed_indexes: int
    fail_index_exit_codes: tuple[int, ...] = ()
    """Exit codes that fail the index at once: the pod said the error would repeat."""


def build_job(
    *,
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner: dict[str, Any],
    pod_spec: dict[str, Any],
    active_deadline_seconds: int,
    backoff_limit: int,
    ttl_seconds_after_finished: int | None = None,
    indexed: Indexed | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "activeDeadlineSeconds": active_deadline_seconds,
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if indexed is not None:
        # backoffLimit counts every failure of every index; per-index limits replace it.
        del spec["backoffLimit"]
        rules: list[dict[str, Any]] = [
            # A pod evicted or preempted did nothing wrong: retry it without counting it.
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
        ]
        if indexed.fail_index_exit_codes:
            rules.append(
                {
                    "action": "FailIndex",
                    "onExitCodes": {
                        "operator": "In",
                        "values": list(indexed.fail_index_exit_codes),
                    },
                }
            )
        spec |= {
            "completionMode": "Indexed",
            "completions": indexed.completions,
            "parallelism": indexed.completions,
            "backoffLimitPerIndex": indexed.backoff_limit_per_index,
            "maxFailedIndexes": indexed.max_failed_indexes,
            "podFailurePolicy": {"rules": rules},
        }
    if ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner],
        },
        "spec": spec,
    }


def build_artifact_pvc(config: WorkloadConfig, namespace: str) -> dict[str, Any] | None:
    """The namespace's pvc:// store (None for a remote store); deliberately without an owner,
    so it outlives objects."""
    name = config.store.claim
    if name is None:
        return None
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": config.artifact_pvc_size}},
    }
    if config.artifact_storage_class:
        spec["storageClassName"] = config.artifact_storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": managed_labels(**{"app.kubernetes.io/component": "artifact-store"}),
        },
        "spec": spec,
    }
