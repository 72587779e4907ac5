"""The pod template shared by every workload the operator starts (validation, training).

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
from modelwerk.builders.labels import managed_labels

PVC_ROOT = "/var/run/modelwerk/pvc"
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

DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"memory": "2Gi"},
}


@dataclass(frozen=True)
class WorkloadConfig:
    """Operator settings that shape workload pods."""

    image: str
    image_pull_policy: str
    artifact_pvc: str
    artifact_pvc_size: str = "5Gi"
    artifact_storage_class: str | None = None


@dataclass(frozen=True)
class Workload:
    command: list[str]
    env: dict[str, str]
    claims: tuple[str, ...]
    """PersistentVolumeClaims to mount under ``PVC_ROOT/<claim>``; the first is writable."""
    secret_env: str | None = None
    """A Secret whose keys become environment variables."""
    resources: ResourceRequirements | None = None
    labels: dict[str, str] = field(default_factory=dict)


def pvc_mount_path(claim: str) -> str:
    return f"{PVC_ROOT}/{claim}"


def _resources(resources: ResourceRequirements | None) -> dict[str, Any]:
    if resources is None:
        return DEFAULT_RESOURCES
    return resources.to_k8s() or DEFAULT_RESOURCES


def build_pod_spec(workload: Workload, config: WorkloadConfig) -> dict[str, Any]:
    env = [{"name": k, "value": v} for k, v in sorted(workload.env.items())]
    env += [
        {"name": "MODELWERK_PVC_ROOT", "value": PVC_ROOT},
        {"name": "MODELWERK_TERMINATION_MESSAGE_PATH", "value": TERMINATION_MESSAGE_PATH},
        {"name": "HOME", "value": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    for index, claim in enumerate(dict.fromkeys(workload.claims)):
        name = f"pvc-{index}"
        volumes.append({"name": name, "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": name, "mountPath": pvc_mount_path(claim), "readOnly": index > 0})
    container: dict[str, Any] = {
        "name": "main",
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": workload.command,
        "env": env,
        "resources": _resources(workload.resources),
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }
    if workload.secret_env:
        container["envFrom"] = [{"secretRef": {"name": workload.secret_env}}]
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": copy.deepcopy(POD_SECURITY),
        "containers": [container],
        "volumes": volumes,
    }


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
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "activeDeadlineSeconds": active_deadline_seconds,
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
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


def build_artifact_pvc(config: WorkloadConfig, namespace: str) -> dict[str, Any]:
    """The namespace's artifact store; deliberately without an owner, so it outlives objects."""
    name = config.artifact_pvc
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
