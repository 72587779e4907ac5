"""The serving workloads of a modelwerk Deployment: an apps/v1 Deployment per color, Services.

A color (``blue`` or ``green``) is one apps/v1 Deployment running the model server for one
ModelVersion. Services select pods by the ``modelwerk.dev/deployment`` and
``modelwerk.dev/track`` labels, so moving traffic is a selector or replica change, never a pod
restart: the stable Service selects the active color (or both during a canary split by replica
ratio), the preview and canary Services select the idle color.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from modelwerk.api.v1alpha1.deployment import Deployment
from modelwerk.api.v1alpha1.model_version import ModelVersion
from modelwerk.builders.artifact_store import is_remote
from modelwerk.builders.experiment import ArmRole, arm_env
from modelwerk.builders.labels import child_labels, child_name, owner_reference
from modelwerk.builders.monitor import server_capture
from modelwerk.builders.shadow import ShadowRole, shadow_env
from modelwerk.builders.workload import (
    CONTAINER_SECURITY,
    POD_SECURITY,
    PVC_ROOT,
    TERMINATION_MESSAGE_PATH,
    WorkloadConfig,
    claim_mounts,
)

DEPLOYMENT_LABEL = "modelwerk.dev/deployment"
TRACK_LABEL = "modelwerk.dev/track"
VERSION_LABEL = "modelwerk.dev/model-version"
SERVER_PORT = 8080
MODEL_CACHE = "/var/run/modelwerk/models"
"""emptyDir a serving pod downloads a remote model into, verified, before loading it."""
SERVER_COMPONENT = "server"
"""``app.kubernetes.io/component`` of the serving pods."""

DEFAULT_SERVER_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"memory": "1Gi"},
}


def track_name(dep: Deployment, track: str) -> str:
    return child_name(dep.metadata.name, track)


def selector(dep: Deployment, track: str | None = None) -> dict[str, str]:
    labels = {DEPLOYMENT_LABEL: dep.metadata.name}
    if track is not None:
        labels[TRACK_LABEL] = track
    return labels


def server_args(dep: Deployment, mv: ModelVersion) -> list[str]:
    server = dep.spec.server
    args = [
        "modelwerk", "serve",
        "--model-uri", mv.spec.artifact.uri,
        "--sha256", mv.spec.artifact.sha256,
        "--name", mv.spec.model,
        "--version", mv.metadata.name,
        "--port", str(SERVER_PORT),
        "--workers", str(server.workers),
        "--max-batch-size", str(server.max_batch_size),
        "--max-batch-delay-ms", f"{server.max_batch_delay_ms:g}",
    ]  # fmt: skip
    args += compiled_args(dep, mv)
    if server.allow_version_mismatch:
        args.append("--allow-version-mismatch")
    drift = dep.spec.monitoring.drift if dep.spec.monitoring else None
    if drift is not None:
        args += ["--drift-method", drift.method, "--drift-window", str(drift.window)]
    threshold = drift_threshold(dep)
    if threshold is not None:
        args += ["--drift-threshold", repr(threshold)]
    return args


def compiled_args(dep: Deployment, mv: ModelVersion) -> list[str]:
    """The backend flags: the verified compiled model is passed unless joblib is asked for; an
    ONNX artifact is named as such (the operator never asks joblib of one: ``logic.deployment``).

    The expected sha256 comes from the ModelVersion (immutable), never from the model card.
    """
    server = dep.spec.server
    args = ["--backend", server.backend]
    if mv.spec.artifact.format == "onnx":
        # the artifact is the ONNX model: no compilation to pass, the onnx backend serves it
        args += ["--artifact-format", "onnx", "--intra-op-threads", str(server.intra_op_threads)]
        return args
    compiled = mv.spec.compiled
    if server.backend != "joblib" and compiled is not None and compiled.verified:
        assert compiled.uri is not None and compiled.sha256 is not None  # validated
        args += ["--compiled-uri", compiled.uri, "--compiled-sha256", compiled.sha256]
        args += ["--intra-op-threads", str(server.intra_op_threads)]
    return args


def drift_threshold(dep: Deployment) -> float | None:
    """The lowest bound the pods' drift score is compared with: monitoring's threshold and the
    ``max`` of the analysis' drift checks. The pods hold each feature's score back until their
    window is large enough that sampling noise stays below it, so neither a retraining run nor
    a canary's analysis acts on a score read from too few rows.

    >>> from modelwerk.api.v1alpha1 import Deployment
    >>> spec = {"modelVersion": "m-v1", "monitoring": {"drift": {"threshold": 0.25}}}
    >>> body = {"metadata": {"name": "d", "namespace": "ns"}, "spec": spec}
    >>> drift_threshold(Deployment.from_k8s(body))
    0.25
    >>> spec["analysis"] = {"checks": [{"metric": "drift", "max": 0.1}]}
    >>> drift_threshold(Deployment.from_k8s(body))
    0.1
    """
    bounds = [
        check.max
        for check in (dep.spec.analysis.checks if dep.spec.analysis else [])
        if check.metric == "drift" and check.max is not None and check.max > 0
    ]
    drift = dep.spec.monitoring.drift if dep.spec.monitoring else None
    if drift is not None:
        bounds.append(drift.threshold)
    return min(bounds) if bounds else None


def build_track(
    dep: Deployment,
    mv: ModelVersion,
    track: str,
    replicas: int,
    config: WorkloadConfig,
    arm: ArmRole | None = None,
    shadow: ShadowRole | None = None,
    service_ips: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The apps/v1 Deployment serving ``mv`` on ``track`` (as one arm of an experiment, with
    ``arm``; copying requests to a candidate, with ``shadow``; ``service_ips`` are the cluster
    IPs of the Services they reach); a new version rolls pods over with no loss of capacity
    (maxUnavailable 0)."""
    meta = dep.metadata
    labels = child_labels(
        dep,
        SERVER_COMPONENT,
        **{DEPLOYMENT_LABEL: meta.name, TRACK_LABEL: track, VERSION_LABEL: mv.metadata.name},
    )
    capture = server_capture(dep, track, config)
    resources = dep.spec.server.resources
    container_resources = (resources.to_k8s() if resources else None) or DEFAULT_SERVER_RESOURCES
    # Serving pods write production data (captures, labels) to the store, and read the model.
    claims, claim_volume_mounts = claim_mounts(config.store, (mv.spec.artifact.uri,), writable=True)
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}, *claims]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}, *claim_volume_mounts]
    env = config.store.env(meta.namespace)
    if is_remote(mv.spec.artifact.uri):
        # A model bigger than the memory it unpickles into cannot be served anyway.
        memory = container_resources.get("limits", {}).get("memory")
        volumes.append({"name": "models", "emptyDir": {"sizeLimit": memory} if memory else {}})
        mounts.append({"name": "models", "mountPath": MODEL_CACHE})
        env.append({"name": "MODELWERK_MODEL_CACHE", "value": MODEL_CACHE})
    probe = {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 5}
    container = {
        "name": "server",
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": server_args(dep, mv) + (capture.args if capture else []),
        "env": [
            *env,
            {"name": "MODELWERK_PVC_ROOT", "value": PVC_ROOT},
            {"name": "HOME", "value": "/tmp"},
            *(capture.env if capture else []),
            *(arm_env(dep, arm, service_ips) if arm is not None else []),
            *(shadow_env(dep, shadow, service_ips) if shadow is not None else []),
        ],
        "ports": [{"name": "http", "containerPort": SERVER_PORT}],
        "readinessProbe": probe,
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "startupProbe": {**probe, "periodSeconds": 2, "failureThreshold": 90},
        # Endpoints drop a terminating pod asynchronously: keep answering meanwhile.
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "resources": container_resources,
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": track_name(dep, track),
            "namespace": meta.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(dep)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(dep, track)},
            "progressDeadlineSeconds": dep.spec.progress_deadline_seconds,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(SERVER_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": copy.deepcopy(POD_SECURITY),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def build_service(
    dep: Deployment, name: str, track: str | None, *, public: bool = False
) -> dict[str, Any]:
    """A Service in front of ``track`` (or of every track when ``track`` is None); only the
    public (stable) Service takes the user's type and node port."""
    meta = dep.metadata
    spec = dep.spec.service
    port: dict[str, Any] = {"name": "http", "port": spec.port, "targetPort": "http"}
    if public and spec.type == "NodePort" and spec.node_port:
        port["nodePort"] = spec.node_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": meta.namespace,
            "labels": child_labels(dep, "service", **{DEPLOYMENT_LABEL: meta.name}),
            "ownerReferences": [owner_reference(dep)],
        },
        "spec": {
            "type": spec.type if public else "ClusterIP",
            "selector": selector(dep, track),
            "ports": [port],
        },
    }


def preview_service_name(dep: Deployment) -> str:
    return child_name(dep.metadata.name, "preview")


def canary_service_name(dep: Deployment) -> str:
    return child_name(dep.metadata.name, "canary")
