"""A modelwerk Deployment on the real control plane: the resolved ModelVersion is served by an
apps/v1 Deployment behind a Service, and the status says when it is available.

The stand-in node marks the server pods Ready (the model server itself is tested for real in
tests/unit/server; running it as a pod needs the node tier)."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.serving import GROUP, verified_version


def test_a_deployment_serves_the_newest_ready_version_behind_its_service(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    node.auto(namespace, "app.kubernetes.io/component=verification", mode="run")
    node.auto(namespace, "app.kubernetes.io/component=server", mode="ready")
    verified_version(admin_rest, node, namespace, 1)
    admin_rest.create(
        f"{GROUP}/namespaces/{namespace}/deployments",
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": "iris"},
            "spec": {
                "modelSelector": {"model": "iris-classifier"},
                "replicas": 2,
                "service": {"type": "NodePort", "nodePort": 30080},
            },
        },
    )
    url = f"{GROUP}/namespaces/{namespace}/deployments/iris"

    def healthy() -> dict[str, Any] | None:
        status = admin_rest.get(url).get("status", {})
        return status if status.get("phase") == "Healthy" else None

    status = wait_until(healthy, timeout=90, what="the Deployment to be Healthy")
    assert status["stableVersion"] == "iris-classifier-v1"
    assert status["readyReplicas"] == 2
    assert status["endpoints"]["stable"] == f"http://iris.{namespace}.svc:80"
    service = admin_rest.get(f"/api/v1/namespaces/{namespace}/services/iris")
    assert service["spec"]["selector"] == {
        "modelwerk.dev/deployment": "iris",
        "modelwerk.dev/track": "blue",
    }
    assert service["spec"]["ports"][0]["nodePort"] == 30080
    # A newer verified version is picked up and rolled out in place.
    verified_version(admin_rest, node, namespace, 2)
    wait_until(
        lambda: (s := healthy()) and s["stableVersion"] == "iris-classifier-v2",
        timeout=90,
        what="v2 to be served",
    )
    history = admin_rest.get(url)["status"]["history"]
    assert [h["version"] for h in history] == ["iris-classifier-v2", "iris-classifier-v1"]
    # kubectl scale works through the scale subresource; it counts the active color only
    # (its pods, once the rolled-over ones are gone: during the rollover it counts those too).
    active = admin_rest.get(url)["status"]["activeColor"]
    scale = wait_until(
        lambda: (s := admin_rest.get(url + "/scale"))["status"].get("replicas") == 2 and s,
        timeout=60,
        what="the scale subresource to count the two pods of the active color",
    )
    assert scale["spec"]["replicas"] == 2
    assert scale["status"]["selector"] == (
        f"modelwerk.dev/deployment=iris,modelwerk.dev/track={active}"
    )
    assert 'modelwerk-operator" cannot' not in operator.output


def test_a_tampered_artifact_never_becomes_ready(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    node.auto(namespace, "app.kubernetes.io/component=verification", mode="run")
    claimed = hashlib.sha256(b"the bytes that were trained").hexdigest()
    folder = (
        node.claims_dir / namespace / "modelwerk-artifacts" / "models" / "iris-classifier" / claimed
    )
    folder.mkdir(parents=True)
    (folder / "model.joblib").write_bytes(b"the bytes someone swapped in")
    admin_rest.create(
        f"{GROUP}/namespaces/{namespace}/modelversions",
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": "iris-classifier-v1"},
            "spec": {
                "model": "iris-classifier",
                "version": 1,
                "task": "classification",
                "artifact": {
                    "uri": f"pvc://modelwerk-artifacts/models/iris-classifier/{claimed}/model.joblib",
                    "sha256": claimed,
                },
            },
        },
    )
    url = f"{GROUP}/namespaces/{namespace}/modelversions/iris-classifier-v1"
    status = wait_until(
        lambda: (s := admin_rest.get(url).get("status", {})).get("phase") == "Failed" and s,
        timeout=60,
        what="verification to refuse the artifact",
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "HashMismatch")
    assert "the artifact was altered" in ready["message"]


def test_a_serving_pods_readiness_reaches_the_status_through_its_apps_deployment(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    """The operator does not watch serving pods (handlers.kinds.child_selector): a change of
    their readiness wakes the owner through the apps/v1 Deployment's status. Without that
    wake-up the status would only follow at the next resync, minutes later."""
    node.auto(namespace, "app.kubernetes.io/component=verification", mode="run")
    serving = node.auto(namespace, "app.kubernetes.io/component=server", mode="ready")
    verified_version(admin_rest, node, namespace, 1)
    admin_rest.create(
        f"{GROUP}/namespaces/{namespace}/deployments",
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": "iris"},
            "spec": {"modelVersion": "iris-classifier-v1", "replicas": 2},
        },
    )
    url = f"{GROUP}/namespaces/{namespace}/deployments/iris"

    def ready_replicas(n: int) -> bool:
        status = admin_rest.get(url).get("status", {})
        return status.get("phase") == "Healthy" and status.get("readyReplicas") == n

    wait_until(lambda: ready_replicas(2), timeout=90, what="2 ready replicas")
    serving.stop()  # from here on the test alone changes the pods
    pods = admin_rest.get(
        f"/api/v1/namespaces/{namespace}/pods", labelSelector="modelwerk.dev/deployment=iris"
    )["items"]
    name = pods[0]["metadata"]["name"]
    node.mark_running(namespace, name, ready=False)
    wait_until(lambda: ready_replicas(1), timeout=60, what="the lost readiness in the status")
    node.mark_running(namespace, name, ready=True)
    wait_until(lambda: ready_replicas(2), timeout=60, what="the readiness back in the status")
