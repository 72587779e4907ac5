"""A real HorizontalPodAutoscaler on a modelwerk Deployment, fed by a real metrics-server.

On the local node (hack/node starts metrics-server behind the aggregation layer and runs the
controller-manager's HPA controller): load raises the Deployment's replicas through its scale
subresource, and a canary that starts while it is scaled keeps the rollout invariants: the
split follows spec.replicas, the scale selector counts the pods answering production requests,
and promotion leaves only the new version at the autoscaled size.

The tests run in file order and build on each other.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.e2e import traffic
from tests.e2e.chain import (
    DEPLOYMENT,
    JOB_TIMEOUT,
    SERVE_TIMEOUT,
    deployment,
    sample,
    stable_url,
    status,
    train,
    wait_deployment,
    wait_only,
    wait_registered,
)
from tests.e2e.kubectl import JSON, Kubectl, condition, wait_for

HPA = "iris"
MAX_REPLICAS = 3
state: dict[str, Any] = {}


def needs(*keys: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        pytest.fail(f"an earlier step did not complete: {missing}")


def split(replicas: int, weight: int) -> tuple[int, int]:
    """(canary, stable) pods, as the operator's ``split_replicas`` documents it."""
    canary = max(1, math.ceil(replicas * weight / 100))
    return canary, max(1, replicas - canary)


def tracks(kubectl: Kubectl, namespace: str) -> dict[str, JSON]:
    found = kubectl.list("deployments.apps", namespace, f"modelwerk.dev/deployment={DEPLOYMENT}")
    return {d["metadata"]["labels"]["modelwerk.dev/track"]: d for d in found}


def test_a_model_version_is_registered_with_its_compilation(
    kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(sample("dataset"), namespace)
    wait_for(
        lambda: condition(kubectl.get("dataset", "iris", namespace), "Ready") == "True",
        timeout=JOB_TIMEOUT,
        what="Dataset iris to be Ready",
    )
    job = sample("trainingjob")
    job["spec"].pop("search")  # a single fit is enough here
    job["spec"]["features"] = {"scaling": "none"}
    kubectl.apply(job, namespace)
    version = wait_registered(kubectl, namespace, "iris-rf")
    compiled = kubectl.get("modelversion", version, namespace)["spec"]["compiled"]
    # the forest compiles (features in float64, trees in float32, as scikit-learn does)
    assert compiled["verified"] is True, compiled
    assert compiled["labelAgreement"] == 1.0 and compiled["rows"] == 150
    state["v1"] = version


def test_load_raises_the_replicas_through_the_scale_subresource(
    kubectl: Kubectl, namespace: str
) -> None:
    needs("v1")
    dep = sample("deployment")
    dep["spec"].pop("replicas")  # the HPA owns it (spec.replicas defaults to 1)
    dep["spec"].pop("monitoring")
    dep["spec"]["service"] = {"type": "ClusterIP", "port": 80}
    dep["spec"]["strategy"] = {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}
    dep["spec"]["server"] = {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}}
    kubectl.apply(dep, namespace)
    wait_for(
        lambda: condition(deployment(kubectl, namespace), "Available") == "True",
        timeout=SERVE_TIMEOUT,
        what="Deployment iris to be Available",
        interval=2,
    )
    kubectl.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": HPA},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "modelwerk.dev/v1alpha1",
                    "kind": "Deployment",
                    "name": DEPLOYMENT,
                },
                "minReplicas": 1,
                "maxReplicas": MAX_REPLICAS,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 30},
                        },
                    }
                ],
            },
        },
        namespace,
    )
    # metrics reach the HPA through metrics.k8s.io: it reports a current utilization
    wait_for(
        lambda: kubectl.get("hpa", HPA, namespace).get("status", {}).get("currentMetrics"),
        timeout=180,
        what="the HPA to read CPU metrics of the serving pods",
        interval=5,
    )
    url = stable_url(kubectl, namespace)
    clients = [traffic.start(kubectl, namespace, url, 20_000) for _ in range(2)]
    state["clients"] = clients
    scaled = wait_deployment(
        kubectl,
        namespace,
        "the HPA to scale the Deployment up",
        lambda s: (s.get("replicas") or 0) >= 2 and s.get("readyReplicas") == s.get("replicas"),
    )
    n = scaled["spec"]["replicas"]
    assert 2 <= n <= MAX_REPLICAS
    hpa = kubectl.get("hpa", HPA, namespace)["status"]
    assert hpa["desiredReplicas"] >= 2, hpa
    active = scaled["status"]["activeColor"]
    assert scaled["status"]["selector"] == (
        f"modelwerk.dev/deployment={DEPLOYMENT},modelwerk.dev/track={active}"
    )
    assert tracks(kubectl, namespace)[active]["spec"]["replicas"] == n
    state["scaled"] = n


def test_a_canary_started_while_scaled_keeps_every_invariant(
    kubectl: Kubectl, namespace: str
) -> None:
    needs("scaled")
    v2 = train(
        kubectl,
        namespace,
        "iris-rf-v2",
        search=None,
        features={"scaling": "none"},
        split={"testSize": 0.25, "seed": 11},
    )
    # the Deployment follows the model: v2 rolls out as a canary, paused at 50 %
    paused = wait_deployment(
        kubectl,
        namespace,
        "the canary to pause at 50 %",
        lambda s: s.get("canaryVersion") == v2 and s.get("phase") == "Paused",
    )
    n = paused["spec"]["replicas"]
    st = paused["status"]
    canary, stable = split(n, 50)
    by_color = tracks(kubectl, namespace)
    assert by_color[st["activeColor"]]["spec"]["replicas"] == stable
    idle = "green" if st["activeColor"] == "blue" else "blue"
    assert by_color[idle]["spec"]["replicas"] == canary
    # both colors answer production requests now, and the scale subresource counts both
    assert st["selector"] == f"modelwerk.dev/deployment={DEPLOYMENT}"
    assert st["replicas"] == canary + stable
    scale = kubectl.run(
        "get", "--raw",
        f"/apis/modelwerk.dev/v1alpha1/namespaces/{namespace}/deployments/{DEPLOYMENT}/scale",
    )  # fmt: skip
    assert '"selector":"modelwerk.dev/deployment=iris"' in scale.replace(" ", "")
    kubectl.run(
        "annotate", "deployments.modelwerk.dev", DEPLOYMENT, "-n", namespace,
        "modelwerk.dev/command=promote-full@e2e", "--overwrite",
    )  # fmt: skip
    done = wait_deployment(
        kubectl,
        namespace,
        "the promoted canary to be stable",
        lambda s: s.get("stableVersion") == v2 and s.get("phase") == "Healthy",
    )
    wait_only(kubectl, namespace, v2, "only v2 pods to be left")
    n = done["spec"]["replicas"]
    assert tracks(kubectl, namespace)[done["status"]["activeColor"]]["spec"]["replicas"] == n
    for pod in state.pop("clients"):
        result = traffic.result(kubectl, namespace, pod, timeout=SERVE_TIMEOUT)
        assert result.errors == {}, result.errors
        assert set(result.versions) <= {state["v1"], v2}
    assert status(kubectl, "hpa", HPA, namespace).get("currentReplicas") is not None
