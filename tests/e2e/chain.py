"""The iris chain's steps, shared by the e2e modules: samples, training, waits on a Deployment.

Owns: how a test drives the iris sample chain on a cluster and reads its state back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.e2e import traffic
from tests.e2e.kubectl import JSON, Kubectl, wait_for

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
    """Wait until TrainingJob ``name`` is Ready (its gates passed, a version registered) and
    that ModelVersion is Ready (artifact verified); return the version's name."""

    def failed() -> str | None:
        tj = status(kubectl, "trainingjob", name, namespace)
        bad = tj.get("phase") in ("Failed", "Rejected")
        return f"it is {tj.get('phase')}: {tj.get('message')}" if bad else None

    kubectl.wait(f"trainingjob/{name}", "Ready", namespace, timeout=JOB_TIMEOUT, failed=failed)
    version: str = status(kubectl, "trainingjob", name, namespace)["modelVersion"]
    kubectl.wait(f"modelversion/{version}", "Ready", namespace, timeout=JOB_TIMEOUT)
    return version


def deployment(kubectl: Kubectl, namespace: str) -> JSON:
    return kubectl.get("deployments.modelwerk.dev", DEPLOYMENT, namespace)


def wait_deployment(kubectl: Kubectl, namespace: str, what: str, predicate: Any) -> JSON:
    def check() -> JSON | None:
        dep = deployment(kubectl, namespace)
        return dep if predicate(dep.get("status", {})) else None

    result: JSON = wait_for(check, timeout=SERVE_TIMEOUT, what=what, interval=2)
    return result


def wait_under_load(
    kubectl: Kubectl,
    namespace: str,
    what: str,
    predicate: Any,
    *,
    url: str | None = None,
    shift: float = 0.0,
) -> JSON:
    """Keep a client pod sending requests (to the stable Service, else ``url``) while waiting
    for the Deployment's status to satisfy ``predicate``: what an analysis needs to measure."""
    target = url or stable_url(kubectl, namespace)
    load = traffic.start(kubectl, namespace, target, 6000, shift=shift, pause=0.02)
    try:
        return wait_deployment(kubectl, namespace, what, predicate)
    finally:
        kubectl.delete("pod", load, namespace)


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
