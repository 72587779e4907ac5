"""Shared steps of the serving and rollout tests: verified versions, Deployments, reading back."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until

GROUP = "/apis/modelwerk.dev/v1alpha1"


def verified_version(rest: Rest, node: StandInNode, namespace: str, n: int) -> str:
    """A ModelVersion whose artifact really exists on the namespace's artifact volume."""
    payload = f"model bytes {n}".encode()
    sha = hashlib.sha256(payload).hexdigest()
    folder = (
        node.claims_dir / namespace / "modelwerk-artifacts" / "models" / "iris-classifier" / sha
    )
    folder.mkdir(parents=True)
    (folder / "model.joblib").write_bytes(payload)
    name = f"iris-classifier-v{n}"
    rest.create(
        f"{GROUP}/namespaces/{namespace}/modelversions",
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": name},
            "spec": {
                "model": "iris-classifier",
                "version": n,
                "task": "classification",
                "artifact": {
                    "uri": f"pvc://modelwerk-artifacts/models/iris-classifier/{sha}/model.joblib",
                    "sha256": sha,
                },
            },
        },
    )
    wait_until(
        lambda: (
            rest.get(f"{GROUP}/namespaces/{namespace}/modelversions/{name}")
            .get("status", {})
            .get("phase")
            == "Ready"
        ),
        timeout=60,
        what=f"{name} to be verified",
    )
    return name


def create_deployment(rest: Rest, namespace: str, name: str = "iris", **spec: Any) -> str:
    """Create a modelwerk Deployment; returns its API path."""
    rest.create(
        f"{GROUP}/namespaces/{namespace}/deployments",
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": spec,
        },
    )
    return f"{GROUP}/namespaces/{namespace}/deployments/{name}"


def status(rest: Rest, path: str) -> dict[str, Any]:
    return dict(rest.get(path).get("status") or {})


def wait_for_status(
    rest: Rest, path: str, predicate: Any, *, timeout: float = 90, what: str
) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def check() -> dict[str, Any] | None:
        current = status(rest, path)
        seen[:] = [current]
        return current if predicate(current) else None

    try:
        return wait_until(check, timeout=timeout, what=what)  # type: ignore[no-any-return]
    except TimeoutError as e:
        # "last: None" says nothing: the status the predicate last refused does.
        raise TimeoutError(f"{e}; status: {seen[0] if seen else 'never read'}") from None


def stable_selector(rest: Rest, namespace: str, name: str = "iris") -> dict[str, str]:
    return dict(rest.get(f"/api/v1/namespaces/{namespace}/services/{name}")["spec"]["selector"])


def tracks(rest: Rest, namespace: str, name: str = "iris") -> dict[str, tuple[str, int]]:
    """Color -> (model version, replicas) of the serving apps/v1 Deployments."""
    items = rest.get(
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        labelSelector=f"modelwerk.dev/deployment={name}",
    )["items"]
    return {
        d["metadata"]["labels"]["modelwerk.dev/track"]: (
            d["metadata"]["labels"]["modelwerk.dev/model-version"],
            d["spec"]["replicas"],
        )
        for d in items
        if not d["metadata"].get("deletionTimestamp")
    }
