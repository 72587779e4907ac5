"""Blue-green and canary rollouts on the real control plane, with the operator under its RBAC.

The stand-in node plays the kubelet: it marks server pods Ready only when a test lets it
(``mode="ready"`` for a label selector), so "the Service switches only after readiness" is
observed on real apps/v1 Deployments, ReplicaSets, Pods and Services.
"""

from __future__ import annotations

from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.serving import (
    create_deployment,
    stable_selector,
    status,
    tracks,
    verified_version,
    wait_for_status,
)

TRACK = "modelwerk.dev/track"
V1, V2 = "iris-classifier-v1", "iris-classifier-v2"


def _serving_pods_ready(node: StandInNode, namespace: str, color: str) -> None:
    node.auto(
        namespace,
        f"app.kubernetes.io/component=server,modelwerk.dev/track={color}",
        mode="ready",
    )


def _healthy_on_v1(rest: Rest, node: StandInNode, namespace: str, **spec: object) -> str:
    node.auto(namespace, "app.kubernetes.io/component=verification", mode="run")
    _serving_pods_ready(node, namespace, "blue")
    verified_version(rest, node, namespace, 1)
    verified_version(rest, node, namespace, 2)
    path = create_deployment(rest, namespace, modelVersion=V1, replicas=2, **spec)
    wait_for_status(rest, path, lambda s: s.get("phase") == "Healthy", what="v1 to be served")
    return path


def test_blue_green_switches_the_service_only_after_the_new_pods_are_ready(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    path = _healthy_on_v1(
        admin_rest, node, namespace, strategy={"blueGreen": {"scaleDownDelaySeconds": 3}}
    )
    admin_rest.merge_patch(path, {"spec": {"modelVersion": V2}})
    wait_until(
        lambda: tracks(admin_rest, namespace).get("green") == (V2, 2),
        timeout=60,
        what="the green color to run v2",
    )
    operator.restart()
    # Green pods exist but are not Ready: users still get blue, the preview Service shows green
    # (the restarted operator may first finish what its predecessor planned).
    wait_for_status(
        admin_rest,
        path,
        lambda s: s.get("phase") == "Progressing" and s.get("canaryVersion") == V2,
        what="the rollout to be in progress",
    )
    for _ in range(3):
        assert stable_selector(admin_rest, namespace)[TRACK] == "blue"
        assert status(admin_rest, path)["phase"] == "Progressing"
    assert stable_selector(admin_rest, namespace, "iris-preview")[TRACK] == "green"
    _serving_pods_ready(node, namespace, "green")
    current = wait_for_status(
        admin_rest, path, lambda s: s.get("stableVersion") == V2, what="the switch to v2"
    )
    assert current["activeColor"] == "green" and current["phase"] == "Healthy"
    assert stable_selector(admin_rest, namespace)[TRACK] == "green"
    # The old color stays for scaleDownDelaySeconds, then goes.
    wait_until(
        lambda: "blue" not in tracks(admin_rest, namespace),
        timeout=60,
        what="blue to be scaled down",
    )
    history = status(admin_rest, path)["history"]
    assert [(h["version"], h["outcome"]) for h in history] == [(V2, "Promoted"), (V1, "Promoted")]


def test_a_canary_goes_through_its_steps_and_survives_operator_restarts(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    path = _healthy_on_v1(
        admin_rest,
        node,
        namespace,
        strategy={
            "canary": {
                "steps": [
                    {"setWeight": 50},
                    {"pause": {"durationSeconds": 2}},
                    {"pause": {}},
                    {"setWeight": 100},
                ]
            }
        },
    )
    _serving_pods_ready(node, namespace, "green")
    admin_rest.merge_patch(path, {"spec": {"modelVersion": V2}})
    seen: list[tuple[int | None, str | None]] = []

    def at_step(index: int) -> dict[str, object]:
        current = wait_for_status(
            admin_rest,
            path,
            lambda s: (s.get("currentStepIndex") or 0) >= index or s.get("stableVersion") == V2,
            what=f"step {index + 1}",
        )
        seen.append((current.get("currentStepIndex"), current.get("phase")))
        operator.restart()  # at every step: the next decision starts from the status alone
        return current

    at_step(1)
    assert tracks(admin_rest, namespace) == {"blue": (V1, 1), "green": (V2, 1)}
    assert TRACK not in stable_selector(admin_rest, namespace), "50 % by replica ratio"
    current = at_step(2)
    assert current["phase"] == "Paused" and current["canaryWeight"] == 50
    assert current["actualWeight"] == 50
    # The indefinite pause waits for a person (the annotation protocol, as the plugin sends it).
    admin_rest.merge_patch(
        path, {"metadata": {"annotations": {"modelwerk.dev/command": "promote@1"}}}
    )
    final = wait_for_status(
        admin_rest, path, lambda s: s.get("stableVersion") == V2, what="full promotion"
    )
    assert final["activeColor"] == "green" and final["lastCommand"] == "promote@1"
    wait_until(
        lambda: tracks(admin_rest, namespace) == {"green": (V2, 2)},
        timeout=60,
        what="only green left",
    )
    assert stable_selector(admin_rest, namespace)[TRACK] == "green"
    services = admin_rest.get(
        f"/api/v1/namespaces/{namespace}/services", labelSelector="modelwerk.dev/deployment=iris"
    )["items"]
    assert sorted(s["metadata"]["name"] for s in services) == ["iris", "iris-canary"]
    replica_sets = admin_rest.get(
        f"/apis/apps/v1/namespaces/{namespace}/replicasets",
        labelSelector="modelwerk.dev/deployment=iris,modelwerk.dev/track=green",
    )["items"]
    assert len(replica_sets) == 1, "no pod template churn: restarts did not re-render anything"
    assert seen[0][0] is not None


def test_a_rollout_that_makes_no_progress_is_aborted_at_the_deadline(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    path = _healthy_on_v1(
        admin_rest,
        node,
        namespace,
        progressDeadlineSeconds=30,
        strategy={"canary": {"steps": [{"setWeight": 50}]}},
    )
    # Green pods never get Ready.
    admin_rest.merge_patch(path, {"spec": {"modelVersion": V2}})
    current = wait_for_status(
        admin_rest, path, lambda s: s.get("phase") == "Aborted", timeout=90, what="the abort"
    )
    assert current["abortedVersion"] == V2 and current["stableVersion"] == V1
    assert "no progress within 30s" in current["message"]
    wait_until(
        lambda: tracks(admin_rest, namespace) == {"blue": (V1, 2)},
        timeout=60,
        what="the canary to be removed",
    )
    assert stable_selector(admin_rest, namespace)[TRACK] == "blue"
    events = admin_rest.get(
        f"/api/v1/namespaces/{namespace}/events", fieldSelector="involvedObject.name=iris"
    )["items"]
    assert "RolloutAborted" in {e["reason"] for e in events}
