"""Deployment decisions (replace strategy): resolve the version, serve it, report honestly."""

from __future__ import annotations

from typing import Any

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1 import Deployment, ModelVersion
from modelwerk.logic.deployment import ObservedDeployment, TrackState, reconcile_deployment

from .conftest import NOW, WORKLOAD


def version(
    n: int, phase: str = "Ready", stage: str = "None", model: str = "iris-classifier"
) -> ModelVersion:
    sha = f"{n:02d}" * 32
    return ModelVersion.from_k8s(
        {
            "metadata": {"name": f"{model}-v{n}", "namespace": "ns"},
            "spec": {
                "model": model,
                "version": n,
                "task": "classification",
                "stage": stage,
                "artifact": {
                    "uri": f"pvc://modelwerk-artifacts/models/{model}/{sha}/model.joblib",
                    "sha256": sha,
                },
            },
            "status": {"phase": phase},
        }
    )


def deployment(status: dict[str, Any] | None = None, **spec: Any) -> Deployment:
    return Deployment.from_k8s(
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": "iris", "namespace": "ns", "uid": "d-1", "generation": 1},
            "spec": {"replicas": 2, **(spec or {"modelSelector": {"model": "iris-classifier"}})},
            "status": status or {},
        }
    )


def track(
    version_name: str, ready: int = 2, current: bool = True, deadline: bool = False
) -> TrackState:
    return TrackState(version_name, 2, ready, ready, ready, current, deadline)


def test_the_newest_ready_version_is_served_behind_the_stable_service() -> None:
    versions = [version(1), version(2), version(3, phase="Pending")]
    plan = reconcile_deployment(
        deployment(), ObservedDeployment(versions, {}), now=NOW, config=WORKLOAD
    )
    workload, service = plan.apply
    assert workload["metadata"]["labels"]["modelwerk.dev/model-version"] == "iris-classifier-v2"
    container = workload["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["modelwerk", "serve"]
    assert (
        "--sha256" in container["command"]
        and container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    )
    assert all(m["readOnly"] for m in container["volumeMounts"] if m["name"] == "artifacts")
    assert workload["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert service["spec"]["selector"] == {
        "modelwerk.dev/deployment": "iris",
        "modelwerk.dev/track": "stable",
    }
    assert plan.status.phase == "Progressing"


def test_ready_pods_of_the_target_make_it_healthy_and_record_history() -> None:
    observed = ObservedDeployment([version(1)], {"stable": track("iris-classifier-v1")})
    plan = reconcile_deployment(deployment(), observed, now=NOW, config=WORKLOAD)
    status = plan.status
    assert (status.phase, status.stable_version) == ("Healthy", "iris-classifier-v1")
    assert get_condition(status.conditions, "Available").status == "True"  # type: ignore[union-attr]
    assert get_condition(status.conditions, "Ready").status == "True"  # type: ignore[union-attr]
    assert status.history[0].version == "iris-classifier-v1"  # type: ignore[index]
    assert status.endpoints.stable == "http://iris.ns.svc:80"  # type: ignore[union-attr]


def test_a_missing_pinned_version_is_named_and_nothing_is_created() -> None:
    plan = reconcile_deployment(
        deployment(modelVersion="iris-classifier-v9"),
        ObservedDeployment([version(1)], {}),
        now=NOW,
        config=WORKLOAD,
    )
    assert plan.apply == ()
    ready = get_condition(plan.status.conditions, "Ready")
    assert ready is not None and ready.reason == "ModelVersionNotFound"
    assert "iris-classifier-v9 does not exist" in ready.message


def test_losing_the_target_keeps_serving_what_serves() -> None:
    observed = ObservedDeployment(
        [version(1, phase="Failed")], {"stable": track("iris-classifier-v1")}
    )
    plan = reconcile_deployment(
        deployment(modelVersion="iris-classifier-v1"), observed, now=NOW, config=WORKLOAD
    )
    assert (
        plan.apply
        and plan.apply[0]["metadata"]["labels"]["modelwerk.dev/model-version"]
        == "iris-classifier-v1"
    )
    assert plan.status.phase == "Degraded"


def test_a_stuck_rollout_is_degraded_after_the_deadline() -> None:
    observed = ObservedDeployment(
        [version(2)], {"stable": track("iris-classifier-v2", ready=0, deadline=True)}
    )
    plan = reconcile_deployment(deployment(), observed, now=NOW, config=WORKLOAD)
    assert plan.status.phase == "Degraded"
    assert get_condition(plan.status.conditions, "Ready").reason == "ProgressDeadlineExceeded"  # type: ignore[union-attr]


def test_unimplemented_strategies_are_reported_not_ignored() -> None:
    dep = deployment(
        modelVersion="iris-classifier-v1", strategy={"canary": {"steps": [{"setWeight": 50}]}}
    )
    plan = reconcile_deployment(dep, ObservedDeployment([version(1)], {}), now=NOW, config=WORKLOAD)
    assert plan.status.strategy == "Canary"
    assert "Canary rollouts are not implemented yet" in (plan.status.message or "")
