"""Small builders for the pod specs tests create in restricted namespaces.

Owns: the securityContext that the restricted Pod Security Standard demands, so
tests state only what they are about (command, env, volumes).
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

RESTRICTED_POD_SECURITY: JSON = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER_SECURITY: JSON = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def container(name: str = "main", command: list[str] | None = None, **fields: Any) -> JSON:
    """A container passing the restricted PodSecurity profile; ``fields``: camelCase extras."""
    spec: JSON = {
        "name": name,
        "image": "modelwerk-test:latest",
        "securityContext": dict(RESTRICTED_CONTAINER_SECURITY),
    }
    if command is not None:
        spec["command"] = command
    spec.update(fields)
    return spec


def pod_spec(*containers: JSON, restart_policy: str = "Never", **fields: Any) -> JSON:
    """A pod spec with the restricted pod-level securityContext."""
    return {
        "restartPolicy": restart_policy,
        "securityContext": dict(RESTRICTED_POD_SECURITY),
        "containers": list(containers) or [container(command=["true"])],
        **fields,
    }


def pod(
    name: str, *containers: JSON, labels: dict[str, str] | None = None, **spec_fields: Any
) -> JSON:
    """A whole Pod manifest."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": pod_spec(*containers, **spec_fields),
    }


def job(
    name: str, *containers: JSON, labels: dict[str, str] | None = None, backoff_limit: int = 0
) -> JSON:
    """A Job manifest whose pods carry ``labels`` (restartPolicy Never)."""
    labels = labels or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec(*containers)},
        },
    }
