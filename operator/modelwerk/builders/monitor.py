"""Inference capture in the pods: the serving pods' capture settings, and the aggregator.

The aggregator (``<deployment>-monitor``, one replica of ``modelwerk monitor`` in the runtime
image) joins the labels with the captured predictions of every replica and serves the live
figures the operator reads. Its pod carries ``modelwerk.dev/monitor-for`` rather than
``modelwerk.dev/deployment``: the stable Service selects serving pods by the latter, and must
never send inference requests to the aggregator.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from modelwerk.api.v1alpha1.deployment import Deployment
from modelwerk.api.v1alpha1.production import Capture
from modelwerk.builders.labels import child_labels, child_name, owner_reference
from modelwerk.builders.workload import (
    CONTAINER_SECURITY,
    POD_SECURITY,
    PVC_ROOT,
    TERMINATION_MESSAGE_PATH,
    WorkloadConfig,
    claim_mounts,
)

MONITOR_COMPONENT = "monitor"
"""``app.kubernetes.io/component`` of the aggregator's pod."""
MONITOR_LABEL = "modelwerk.dev/monitor-for"
MONITOR_PORT = 8080

DEFAULT_MONITOR_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"memory": "1Gi"},
}


def capture_of(dep: Deployment) -> Capture | None:
    """The Deployment's capture settings, when capture is on."""
    monitoring = dep.spec.monitoring
    capture = monitoring.capture if monitoring else None
    return capture if capture is not None and capture.enabled else None


def monitor_name(dep: Deployment) -> str:
    return child_name(dep.metadata.name, "monitor")


@dataclass(frozen=True)
class ServerCapture:
    """What a serving pod needs for capture besides the store every serving pod gets
    (``MODELWERK_ARTIFACT_ROOT``, credentials by reference, a writable claim on pvc)."""

    args: list[str]
    env: list[dict[str, Any]]


def server_capture(dep: Deployment, track: str, config: WorkloadConfig) -> ServerCapture | None:
    capture = capture_of(dep)
    if capture is None:
        return None
    args = [
        "--capture",
        "--namespace", dep.metadata.namespace,
        "--deployment", dep.metadata.name,
        "--track", track,
        "--capture-input-rate", f"{capture.input_sample_rate:g}",
        "--capture-flush-seconds", str(capture.flush_interval_seconds),
        "--capture-file-rows", str(capture.max_file_rows),
        "--capture-buffer-rows", str(capture.buffer_rows),
    ]  # fmt: skip
    if not capture.probabilities:
        args.append("--no-capture-probabilities")
    env: list[dict[str, Any]] = [
        {"name": "MODELWERK_SERVER_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    return ServerCapture(args, env)


def monitor_args(dep: Deployment, capture: Capture) -> list[str]:
    """The aggregator's command. Labels wait for their prediction's file long enough for two
    flushes of a writer and two reads of the store."""
    interval = min(capture.flush_interval_seconds, 10)
    grace = 2 * capture.flush_interval_seconds + 2 * interval + 30
    return [
        "modelwerk", "monitor",
        "--namespace", dep.metadata.namespace,
        "--deployment", dep.metadata.name,
        "--window-seconds", str(capture.window_seconds),
        "--horizon-seconds", str(capture.label_delay_seconds),
        "--grace-seconds", str(grace),
        "--interval-seconds", str(interval),
        "--retention-days", str(capture.retention_days),
        "--port", str(MONITOR_PORT),
    ]  # fmt: skip


def build_monitor(dep: Deployment, capture: Capture, config: WorkloadConfig) -> dict[str, Any]:
    """The aggregator's apps/v1 Deployment (owned by the modelwerk Deployment)."""
    meta = dep.metadata
    labels = child_labels(dep, MONITOR_COMPONENT, **{MONITOR_LABEL: meta.name})
    # The aggregator writes its joined partitions and deletes expired ones: the store writable.
    volumes, mounts = claim_mounts(config.store, (), writable=True)
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    container = {
        "name": "monitor",
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": monitor_args(dep, capture),
        "env": [
            *config.store.env(meta.namespace),
            {"name": "MODELWERK_PVC_ROOT", "value": PVC_ROOT},
            {"name": "HOME", "value": "/tmp"},
        ],
        "ports": [{"name": "http", "containerPort": MONITOR_PORT}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 6},
        "resources": copy.deepcopy(DEFAULT_MONITOR_RESOURCES),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *mounts],
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": monitor_name(dep),
            "namespace": meta.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(dep)],
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {MONITOR_LABEL: meta.name}},
            # One aggregator at a time: it deletes expired partitions.
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(MONITOR_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": copy.deepcopy(POD_SECURITY),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, *volumes],
                },
            },
        },
    }
