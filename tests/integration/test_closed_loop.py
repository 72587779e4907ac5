"""Analysis, drift and retraining with real model servers: the stand-in node runs each serving pod's real
command (``modelwerk serve`` on the artifact the real trainer wrote) on its own loopback pod IP,
and the operator reads the pods' real ``/metrics``.

The chain (Dataset → TrainingJob → ModelVersion) runs for real first; the second version is the
same artifact registered again, which is all a rollout needs to tell two versions apart.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.serving import (
    GROUP,
    create_deployment,
    stable_selector,
    tracks,
    wait_for_status,
)
from tests.integration.test_training_chain import FAST, apply, phase_is

V1, V2 = "iris-classifier-v1", "iris-classifier-v2"
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
TYPICAL = [5.8, 3.0, 4.3, 1.3]
DRIFTED = [7.9, 4.4, 6.9, 2.5]  # the training maximum of every feature, every time


def _chain(rest: Rest, node: StandInNode, namespace: str) -> None:
    jobs = "app.kubernetes.io/component in (validation,training,verification)"
    node.auto(namespace, jobs, mode="run")
    node.auto(namespace, "app.kubernetes.io/component=server", mode="serve")
    apply(rest, namespace, "Dataset")
    apply(rest, namespace, "TrainingJob", **FAST)
    wait_until(
        lambda: phase_is(rest, namespace, "modelversions", V1, "Ready"),
        timeout=300,
        what="v1 trained and verified",
    )


def _register_again(rest: Rest, namespace: str) -> None:
    """v2: the same artifact under the next version number."""
    v1 = rest.get(f"{GROUP}/namespaces/{namespace}/modelversions/{V1}")
    spec = copy.deepcopy(v1["spec"])
    spec["version"] = 2
    rest.create(
        f"{GROUP}/namespaces/{namespace}/modelversions",
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": V2},
            "spec": spec,
        },
    )
    wait_until(
        lambda: phase_is(rest, namespace, "modelversions", V2, "Ready"),
        timeout=120,
        what="v2 verified",
    )


def _serving(pod: dict[str, Any] | None) -> bool:
    """Ready and not terminating: what a Service's endpoints send requests to."""
    return (
        pod is not None
        and not pod["metadata"].get("deletionTimestamp")
        and bool(pod.get("status", {}).get("podIP"))
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod["status"].get("conditions", [])
        )
    )


def _pod_ips(rest: Rest, namespace: str, color: str) -> list[tuple[str, str]]:
    """(name, IP) of the serving pods of ``color``."""
    pods = rest.get(
        f"/api/v1/namespaces/{namespace}/pods",
        labelSelector=f"modelwerk.dev/deployment=iris,modelwerk.dev/track={color}",
    )["items"]
    return [(p["metadata"]["name"], p["status"]["podIP"]) for p in pods if _serving(p)]


def _infer(ip: str, row: list[float]) -> int:
    body = json.dumps(
        {
            "inputs": [
                {"name": c, "shape": [1], "datatype": "FP64", "data": [v]}
                for c, v in zip(COLUMNS, row, strict=True)
            ]
        }
    ).encode()
    request = urllib.request.Request(
        f"http://{ip}:8080/v2/models/iris-classifier/infer",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as answer:  # an answer all the same (a 5xx is a failure)
        return int(answer.code)


@contextmanager
def _traffic(rest: Rest, namespace: str, color: str, *rows: list[float]) -> Iterator[list[int]]:
    """Requests to every Ready pod of ``color`` in the background, as clients would send,
    with ``rows`` in turn."""
    codes: list[int] = []
    stop = threading.Event()
    turn = itertools.cycle(rows)

    def send() -> None:
        while not stop.is_set():
            for name, ip in _pod_ips(rest, namespace, color):
                try:
                    codes.append(_infer(ip, next(turn)))
                except OSError:
                    # A pod deleted between the listing and the request (its server stops at
                    # once here) is one a Service would no longer send to; any other pod that
                    # does not answer is a failure.
                    pod = rest.get_or_none(f"/api/v1/namespaces/{namespace}/pods/{name}")
                    if _serving(pod):
                        codes.append(0)
            stop.wait(0.02)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield codes
    finally:
        stop.set()
        thread.join(timeout=10)


def test_a_canary_whose_analysis_fails_rolls_back_with_all_traffic_on_stable(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    _chain(admin_rest, node, namespace)
    path = create_deployment(
        admin_rest,
        namespace,
        modelVersion=V1,
        replicas=1,
        strategy={"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
        analysis={
            "intervalSeconds": 2,
            "count": 2,
            "minRequests": 5,
            # A real bound on the real latency histogram that no server can meet.
            "checks": [
                {"metric": "errorRate", "max": 0.01},
                {"metric": "latency", "quantile": 0.5, "max": 1e-6},
            ],
        },
    )
    wait_for_status(
        admin_rest, path, lambda s: s.get("phase") == "Healthy", timeout=120, what="v1 served"
    )
    _register_again(admin_rest, namespace)
    admin_rest.merge_patch(path, {"spec": {"modelVersion": V2}})
    with _traffic(admin_rest, namespace, "green", TYPICAL) as codes:
        final = wait_for_status(
            admin_rest,
            path,
            lambda s: s.get("phase") == "Aborted",
            timeout=120,
            what="the analysis to fail",
        )
    assert codes and set(codes) == {200}, "the canary served real requests"
    run = final["analysisRuns"][-1]
    assert run["phase"] == "Failed" and run["name"] == "step-2"
    latency = [m for m in run["measurements"] if m["metric"] == "latency"]
    assert latency and latency[-1]["phase"] == "Failed" and latency[-1]["value"] > 1e-6
    errors = [m for m in run["measurements"] if m["metric"] == "errorRate"]
    assert errors and errors[-1]["phase"] == "Successful" and errors[-1]["value"] == 0
    assert final["stableVersion"] == V1 and final["abortedVersion"] == V2
    assert stable_selector(admin_rest, namespace)["modelwerk.dev/track"] == "blue"
    wait_until(
        lambda: tracks(admin_rest, namespace) == {"blue": (V1, 1)}, timeout=60, what="canary gone"
    )


def _more_iris(node: StandInNode, namespace: str) -> str:
    """A second version of the iris data on the artifact volume: iris and 30 more labelled
    rows (iris' own, slightly moved), as if labelled production rows had been added."""
    from modelwerk.runtime.data.load import load_builtin

    frame = load_builtin("iris")
    extra = frame.sample(30, random_state=7).copy()
    extra[COLUMNS] = (extra[COLUMNS] * 1.02).round(2)
    directory = node.claims_dir / namespace / "modelwerk-artifacts" / "data"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "iris-more.csv").write_text(pd.concat([frame, extra]).to_csv(index=False))
    return "pvc://modelwerk-artifacts/data/iris-more.csv"


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def test_retraining_waits_for_new_data_then_runs_once_and_the_champion_gate_rejects(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    _chain(admin_rest, node, namespace)
    path = create_deployment(
        admin_rest,
        namespace,
        modelSelector={"model": "iris-classifier"},
        replicas=1,
        monitoring={
            # iris' profile has 150 rows, noisy enough itself that PSI 0.2 needs about 1500
            # live rows per window before noise stays under it: a window of 100 never does
            "drift": {"method": "psi", "threshold": 0.2, "window": 100, "intervalSeconds": 5},
            "retraining": {
                "trainingJobRef": {"name": "iris-rf"},
                "minIntervalSeconds": 3600,
                # no model beats the served one by 50 accuracy points: the gate must reject
                "gate": {"margin": 0.5},
            },
        },
    )
    wait_for_status(
        admin_rest, path, lambda s: s.get("phase") == "Healthy", timeout=120, what="v1 served"
    )
    told = wait_for_status(
        admin_rest,
        path,
        lambda s: _condition(s, "DriftDetected").get("reason") == "WindowTooSmall",
        timeout=60,
        what="DriftDetected saying the window is too small",
    )
    assert _condition(told, "DriftDetected")["status"] == "Unknown"
    assert "the window holds 100" in _condition(told, "DriftDetected")["message"]
    # A threshold and window the profile supports (about 160 rows); the pods restart with them.
    admin_rest.merge_patch(
        path, {"spec": {"monitoring": {"drift": {"threshold": 0.5, "window": 200}}}}
    )
    runs_url = f"{GROUP}/namespaces/{namespace}/trainingjobs"

    def runs() -> list[dict[str, Any]]:
        return admin_rest.get(runs_url, labelSelector="modelwerk.dev/retraining-for=iris")["items"]

    with _traffic(admin_rest, namespace, "blue", DRIFTED):
        # 1. Drift on the data v1 was trained on: nothing starts, the Deployment says why.
        waiting = wait_for_status(
            admin_rest,
            path,
            lambda s: _condition(s, "Retraining").get("reason") == "WaitingForNewData",
            timeout=120,
            what="Retraining=False WaitingForNewData",
        )
        assert _condition(waiting, "DriftDetected")["status"] == "True"
        assert waiting["drift"]["score"] > 0.5 and waiting["drift"]["feature"] in COLUMNS
        message = _condition(waiting, "Retraining")["message"]
        assert message.startswith("drift persists") and "waiting for new labelled data" in message
        held = waiting["retraining"]["lastSuppressed"]
        assert (held["trigger"], held["suppressed"]) == ("drift", "WaitingForNewData")
        wait_until(
            lambda: (
                admin_rest.get(path)["status"]["drift"]["measuredTime"]
                > waiting["drift"]["measuredTime"]
            ),
            timeout=30,
            what="another drift reading",
        )
        assert runs() == []

        # 2. A new Dataset version: exactly one run, recorded with its trigger.
        dataset_path = f"{GROUP}/namespaces/{namespace}/datasets/iris"
        old = admin_rest.get(dataset_path)["status"]["version"]
        admin_rest.merge_patch(
            dataset_path,
            {"spec": {"source": {"builtin": None, "uri": _more_iris(node, namespace)}}},
        )
        new = wait_until(
            lambda: (
                (s := admin_rest.get(dataset_path).get("status", {})).get("phase") == "Ready"
                and s.get("version") not in (None, old)
                and s["version"]
            ),
            timeout=120,
            what="the new Dataset version",
        )
        wait_until(lambda: runs(), timeout=60, what="a retraining run")
    (run,) = runs()
    meta = run["metadata"]
    assert meta["name"] == "iris-retrain-1"
    assert meta["labels"]["modelwerk.dev/retraining-trigger"] == "drift"
    assert meta["annotations"]["modelwerk.dev/retraining-dataset-version"] == new
    assert "PSI" in meta["annotations"]["modelwerk.dev/retraining-reason"]
    assert run["spec"]["champion"]["deployment"] == "iris"
    last = admin_rest.get(path)["status"]["retraining"]["lastRun"]
    assert (last["trigger"], last["trainingJob"], last["datasetVersion"]) == (
        "drift",
        "iris-retrain-1",
        new,
    )

    # 3. The challenger does not beat the served version by the margin: Rejected, both figures.
    rejected = wait_until(
        lambda: phase_is(admin_rest, namespace, "trainingjobs", "iris-retrain-1", "Rejected"),
        timeout=300,
        what="the retraining run rejected by the champion gate",
    )
    assert rejected["datasetVersion"] == new and rejected["championVersion"] == V1
    verdict = rejected["champion"]
    assert verdict["version"] == V1 and verdict["passed"] is False
    assert 0 < verdict["champion"] <= 1 and 0 < verdict["challenger"] <= 1
    assert verdict["holdoutRows"] == 45  # the template holds out 25 % of the 180 rows
    message = rejected["message"]
    assert f"{verdict['challenger']:.4g}" in message and f"{verdict['champion']:.4g}" in message
    assert "does not beat champion iris-classifier-v1" in message
    assert admin_rest.get_or_none(f"{GROUP}/namespaces/{namespace}/modelversions/{V2}") is None, (
        "a rejected challenger registers nothing"
    )
    # The new version has been trained on now: still one run, waiting for newer data.
    wait_for_status(
        admin_rest,
        path,
        lambda s: _condition(s, "Retraining").get("reason") == "WaitingForNewData",
        timeout=120,
        what="waiting for newer data",
    )
    assert len(runs()) == 1
    events = admin_rest.get(
        f"/api/v1/namespaces/{namespace}/events", fieldSelector="involvedObject.name=iris"
    )["items"]
    assert {"DriftDetected", "Retraining", "RetrainingSuppressed"} <= {e["reason"] for e in events}
