"""The iris chain's steps, shared by the e2e modules: samples, training, waits on a Deployment.

Owns: how a test drives the iris sample chain on a cluster and reads its state back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.e2e import traffic
from tests.e2e.kubectl import JSON, Kubectl, condition, wait_for

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "samples" / "iris"
MODEL = "iris-classifier"
DEPLOYMENT = "iris"

# Generous: first pulls nothing, but a cold Python start on 2 shared cores is slow.
JOB_TIMEOUT = 420
SERVE_TIMEOUT = 300


def sample(name: str) -> JSON:
    doc: JSON = yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())
    return doc


def status(kubectl: Kubectl, kind: str, name: str, namespace: str) -> JSON:
    got: JSON = kubectl.get(kind, name, namespace).get("status", {})
    return got


def train(kubectl: Kubectl, namespace: str, name: str, **changes: Any) -> str:
    """Apply a TrainingJob (the sample, renamed, with ``changes`` to its spec); wait until it
    Succeeded and its ModelVersion is Ready; return that ModelVersion's name."""
    job = sample("trainingjob")
    job["metadata"]["name"] = name
    job["spec"].update(changes)
    kubectl.apply(job, namespace)
    return wait_registered(kubectl, namespace, name)


def wait_registered(kubectl: Kubectl, namespace: str, name: str) -> str:
    def finished() -> str | None:
        phase = status(kubectl, "trainingjob", name, namespace).get("phase")
        assert phase not in ("Failed", "Rejected"), f"TrainingJob {name} {phase}"
        return phase if phase == "Succeeded" else None

    wait_for(finished, timeout=JOB_TIMEOUT, what=f"TrainingJob {name} to succeed")
    version: str = status(kubectl, "trainingjob", name, namespace)["modelVersion"]
    wait_for(
        lambda: condition(kubectl.get("modelversion", version, namespace), "Ready") == "True",
        timeout=JOB_TIMEOUT,
        what=f"ModelVersion {version} to be Ready (artifact verified)",
    )
    return version


def deployment(kubectl: Kubectl, namespace: str) -> JSON:
    return kubectl.get("deployments.modelwerk.dev", DEPLOYMENT, namespace)


def wait_deployment(kubectl: Kubectl, namespace: str, what: str, predicate: Any) -> JSON:
    def check() -> JSON | None:
        dep = deployment(kubectl, namespace)
        return dep if predicate(dep.get("status", {})) else None

    result: JSON = wait_for(check, timeout=SERVE_TIMEOUT, what=what, interval=2)
    return result


def stable_url(kubectl: Kubectl, namespace: str) -> str:
    return traffic.service_url(kubectl, namespace, DEPLOYMENT, MODEL)


def serving_versions(kubectl: Kubectl, namespace: str) -> set[str]:
    """Versions of the serving pods that exist right now."""
    pods = kubectl.list("pods", namespace, "app.kubernetes.io/component=server")
    return {
        p["metadata"].get("labels", {}).get("modelwerk.dev/model-version", "?")
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    }


def wait_only(kubectl: Kubectl, namespace: str, version: str, what: str) -> None:
    """Wait until every serving pod left runs ``version``."""
    wait_for(
        lambda: serving_versions(kubectl, namespace) == {version},
        timeout=SERVE_TIMEOUT,
        what=what,
    )
