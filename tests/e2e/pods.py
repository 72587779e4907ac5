"""Short-lived pods of the runtime image that run a Python script, as any restricted workload.

Owns: the pod the e2e tier runs its own code in (traffic clients, artifact writers): the
runtime image, never pulled; the restricted Pod Security profile; optionally the namespace's
artifact volume, mounted where the operator mounts it in workload pods.
"""

from __future__ import annotations

import secrets
from typing import Any

from tests.e2e.kubectl import Kubectl, wait_for

RUNTIME_IMAGE = "modelwerk/runtime:0.1.0"
PVC_ROOT = "/var/run/modelwerk/pvc"  # builders/workload.py: where workload pods mount claims


def start(
    kubectl: Kubectl, namespace: str, prefix: str, script: str, *args: str, claim: str = ""
) -> str:
    """Start ``python3 -c script args…`` in a new pod; returns its name."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    container: dict[str, Any] = {
        "name": "script",
        "image": RUNTIME_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", script, *args],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    if claim:
        spec["volumes"] = [{"name": "store", "persistentVolumeClaim": {"claimName": claim}}]
        container["volumeMounts"] = [{"name": "store", "mountPath": f"{PVC_ROOT}/{claim}"}]
        container["env"] = [{"name": "MODELWERK_PVC_ROOT", "value": PVC_ROOT}]
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": f"e2e-{prefix}"}},
            "spec": spec,
        },
        namespace,
    )
    return name


def output(kubectl: Kubectl, namespace: str, pod: str, timeout: float = 300) -> str:
    """Wait for the pod to finish; its output (the pod is deleted afterwards)."""
    phase = wait_for(
        lambda: (
            kubectl.get("pod", pod, namespace).get("status", {}).get("phase")
            in ("Succeeded", "Failed")
            and kubectl.get("pod", pod, namespace)["status"]["phase"]
        ),
        timeout=timeout,
        what=f"pod {pod} to finish",
    )
    logs = kubectl.logs(pod, namespace, "script")
    assert phase == "Succeeded", f"pod {pod} {phase}:\n{logs}"
    kubectl.delete("pod", pod, namespace)
    return logs
