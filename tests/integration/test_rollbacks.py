"""Canaries rolled back for real failures, measured on real model servers: a version that
answers server errors (error rate) and a version fed drifted traffic (drift).

As in test_closed_loop.py, the stand-in node runs each serving pod's real ``modelwerk serve``
on its own loopback pod IP, the operator reads the pods' real ``/metrics``, and requests go
straight to the canary pods (no Service endpoints here).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sklearn.datasets import load_iris

from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.unstable_model import THRESHOLD, publish_unstable
from tests.cluster.wait import wait_until
from tests.integration.serving import (
    GROUP,
    create_deployment,
    stable_selector,
    tracks,
    wait_for_status,
)
from tests.integration.test_closed_loop import DRIFTED, V1, V2, _chain, _traffic
from tests.integration.test_training_chain import phase_is

IRIS_ROWS: list[list[float]] = load_iris().data.tolist()


def register(rest: Rest, namespace: str, name: str, version: int, **artifact: str) -> None:
    """A ModelVersion like v1 (same lineage and signature) with another number and, when
    given, another artifact; waits until the operator verified it."""
    v1 = rest.get(f"{GROUP}/namespaces/{namespace}/modelversions/{V1}")
    spec = copy.deepcopy(v1["spec"])
    spec["version"] = version
    if artifact:
        spec["artifact"].update(artifact)
        spec.pop("compiled", None)  # v1's ONNX model is not this artifact's (admission says so)
    rest.create(
        f"{GROUP}/namespaces/{namespace}/modelversions",
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": name},
            "spec": spec,
        },
    )
    wait_until(
        lambda: phase_is(rest, namespace, "modelversions", name, "Ready"),
        timeout=120,
        what=f"{name} verified",
    )


def canary(rest: Rest, namespace: str, analysis: dict[str, Any], **spec: Any) -> str:
    """A Deployment serving v1 whose next version goes through one analysis at 50 %."""
    path = create_deployment(
        rest,
        namespace,
        modelVersion=V1,
        replicas=1,
        strategy={"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
        analysis={"intervalSeconds": 2, "count": 3, "minRequests": 10, **analysis},
        **spec,
    )
    wait_for_status(
        rest, path, lambda s: s.get("phase") == "Healthy", timeout=120, what="v1 served"
    )
    return path


def rolled_back(rest: Rest, namespace: str, final: dict[str, Any], metric: str) -> dict[str, Any]:
    """The aborted run's last measurement of ``metric``, after checking the rollback itself."""
    run = final["analysisRuns"][-1]
    assert run["phase"] == "Failed" and run["name"] == "step-2", run
    assert final["stableVersion"] == V1 and final["abortedVersion"] == V2
    assert stable_selector(rest, namespace)["modelwerk.dev/track"] == "blue"
    wait_until(lambda: tracks(rest, namespace) == {"blue": (V1, 1)}, timeout=60, what="canary gone")
    measured = [m for m in run["measurements"] if m["metric"] == metric]
    assert measured, run
    last: dict[str, Any] = measured[-1]
    return last


def test_a_canary_that_answers_server_errors_is_rolled_back(
    admin_rest: Rest,
    namespace: str,
    operator: InProcessOperator,
    node: StandInNode,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _chain(admin_rest, node, namespace)
    path = canary(admin_rest, namespace, {"checks": [{"metric": "errorRate", "max": 0.05}]})
    # v2: v1's model behind a feature step that overflows on a fifth of iris' rows, published
    # into the namespace's artifact volume (the stand-in's directory for it).
    monkeypatch.setenv("MODELWERK_PVC_ROOT", str(node.claims_dir / namespace))
    v1 = admin_rest.get(f"{GROUP}/namespaces/{namespace}/modelversions/{V1}")
    card = v1["spec"]["artifact"]["uri"].rsplit("/", 1)[0] + "/model-card.json"
    register(admin_rest, namespace, V2, 2, **publish_unstable(card))

    admin_rest.merge_patch(path, {"spec": {"modelVersion": V2}})
    with _traffic(admin_rest, namespace, "green", *IRIS_ROWS) as codes:
        final = wait_for_status(
            admin_rest, path, lambda s: s.get("phase") == "Aborted", timeout=120, what="abort"
        )
    # The canary really served: most rows answered, the fragile ones failed with 500.
    assert codes.count(200) > 0 and codes.count(500) > 0, sorted(set(codes))
    assert set(codes) <= {200, 500}, sorted(set(codes))
    fragile = sum(any(v > THRESHOLD for v in row) for row in IRIS_ROWS) / len(IRIS_ROWS)
    error_rate = rolled_back(admin_rest, namespace, final, "errorRate")
    assert error_rate["phase"] == "Failed", error_rate
    # Every row is sent in turn, so the canary's error rate is close to the fragile share.
    assert 0.05 < error_rate["value"] < 2 * fragile, (error_rate, fragile)


def test_a_canary_fed_drifted_traffic_is_rolled_back(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    _chain(admin_rest, node, namespace)
    # A window of 300 rows and a bound the iris profile supports (about 160 rows needed);
    # until a pod's window holds them, rounds are inconclusive, not passed.
    path = canary(
        admin_rest,
        namespace,
        {
            "intervalSeconds": 3,
            "count": 4,
            "inconclusiveLimit": 10,
            "checks": [{"metric": "drift", "max": 0.5}, {"metric": "errorRate", "max": 0.05}],
        },
        monitoring={"drift": {"method": "psi", "threshold": 0.5, "window": 300}},
    )
    register(admin_rest, namespace, V2, 2)  # a sound model: only its traffic is wrong
    admin_rest.merge_patch(path, {"spec": {"modelVersion": V2}})
    with _traffic(admin_rest, namespace, "green", DRIFTED) as codes:
        final = wait_for_status(
            admin_rest, path, lambda s: s.get("phase") == "Aborted", timeout=180, what="abort"
        )
    assert codes and set(codes) == {200}, sorted(set(codes))  # it answered every request
    drift = rolled_back(admin_rest, namespace, final, "drift")
    assert drift["phase"] == "Failed" and drift["value"] > 0.5, drift
    errors = [m for m in final["analysisRuns"][-1]["measurements"] if m["metric"] == "errorRate"]
    assert errors and all(m["value"] == 0 for m in errors), errors
