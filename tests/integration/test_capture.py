"""Production data against the real control plane: real serving pods (4 replicas x 2 worker
processes, run by the stand-in node) capture into the namespace's artifact volume, labels go
to any pod, the real aggregator pod joins them, and the operator publishes the figures.

There is no kube-proxy here, so requests are spread over the Ready pods the way a Service
would (a random pod, a new connection each time, so either worker process answers); the e2e
tier sends them through the real stable Service.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.serving import GROUP, create_deployment, wait_for_status
from tests.integration.test_closed_loop import COLUMNS, V1, V2, _chain, _serving
from tests.integration.test_training_chain import phase_is

CAPTURE = {
    "capture": {
        "inputSampleRate": 1.0,
        "flushIntervalSeconds": 1,
        "intervalSeconds": 5,
    }
}
IRIS = load_iris()


def _pods(rest: Rest, namespace: str, color: str | None = None) -> list[tuple[str, str]]:
    selector = "modelwerk.dev/deployment=iris" + (f",modelwerk.dev/track={color}" if color else "")
    pods = rest.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)["items"]
    return [(p["metadata"]["name"], p["status"]["podIP"]) for p in pods if _serving(p)]


def _post(ip: str, path: str, body: dict[str, Any] | list[Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{ip}:8080{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


class Client:
    """Users of the model: predict a row, later post its true class, each time to any pod."""

    def __init__(self, rest: Rest, namespace: str, color: str | None = None) -> None:
        self.rest, self.namespace, self.color = rest, namespace, color
        self.random = random.Random(14)
        self.answers: list[tuple[str, str, int, int]] = []  # (id, version, predicted, truth)
        self.labelled = 0
        self.refused = 0
        self.errors: Counter[str] = Counter()  # what the refused requests got, for the failure

    def _any_pod(self) -> str:
        return self.random.choice(_pods(self.rest, self.namespace, self.color))[1]

    def one(self, i: int) -> None:
        row = IRIS.data[i % len(IRIS.data)]
        truth = int(IRIS.target[i % len(IRIS.data)])
        body = {
            "inputs": [
                {"name": c, "shape": [1], "datatype": "FP64", "data": [float(v)]}
                for c, v in zip(COLUMNS, row, strict=True)
            ]
        }
        stage = "infer"
        try:
            answer = _post(self._any_pod(), "/v2/models/iris-classifier/infer", body)
            rid = answer["id"]
            predicted = int(answer["outputs"][0]["data"][0])
            self.answers.append((rid, answer["model_version"], predicted, truth))
            stage = "feedback"
            _post(
                self._any_pod(), "/v2/models/iris-classifier/feedback", {"id": rid, "label": truth}
            )
            self.labelled += 1
        except (urllib.error.URLError, OSError) as exc:
            self.refused += 1  # a pod deleted between listing and sending
            self.errors[f"{stage}: {type(exc).__name__}: {exc}"[:160]] += 1

    def send(self, count: int, start: int = 0) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(self.one, range(start, start + count)))

    def offline_accuracy(self, version: str) -> tuple[float, int]:
        rows = [(p, t) for _, v, p, t in self.answers if v == version]
        return float(np.mean([p == t for p, t in rows])), len(rows)


def _live(status: dict[str, Any], version: str) -> dict[str, Any]:
    live = status.get("liveMetrics") or {}
    return next((v for v in live.get("versions", []) if v["version"] == version), {})


def _caught_up(client: Client, version: str) -> Any:
    def check(status: dict[str, Any]) -> bool:
        labels = (status.get("liveMetrics") or {}).get("labels", {})
        return labels.get("matched", 0) >= client.labelled and labels.get("pending", 1) == 0

    return check


def _serving_v1(rest: Rest, node: StandInNode, namespace: str, **spec: Any) -> str:
    """v1 trained by the real chain and served with capture on; the Deployment's path."""
    _chain(rest, node, namespace)
    node.auto(namespace, "app.kubernetes.io/component=monitor", mode="serve")
    path = create_deployment(rest, namespace, modelVersion=V1, monitoring=CAPTURE, **spec)
    wait_for_status(
        rest, path, lambda s: s.get("phase") == "Healthy", timeout=180, what="v1 served"
    )
    return path


def test_live_accuracy_joins_labels_from_every_replica_and_survives_restarts(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    path = _serving_v1(admin_rest, node, namespace, replicas=4, server={"workers": 2})
    wait_until(lambda: len(_pods(admin_rest, namespace)) == 4, timeout=120, what="4 Ready pods")
    client = Client(admin_rest, namespace)
    client.send(240)
    status = wait_for_status(
        admin_rest, path, _caught_up(client, V1), timeout=120, what="every label joined"
    )
    offline, rows = client.offline_accuracy(V1)
    live = _live(status, V1)
    labels = status["liveMetrics"]["labels"]
    assert rows == client.labelled == 240 and client.refused == 0
    assert labels["matched"] == 240 and labels["unmatched"] == 0 and labels["duplicates"] == 0
    assert live["matched"] == 240 and abs(live["accuracy"] - offline) < 0.005
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["CaptureDegraded"]["status"] == "False"
    assert status["capture"]["pods"] == 4 and status["capture"]["droppedRows"] == 0
    # Labels for ids nobody answered are unmatched, never errors.
    _post(_pods(admin_rest, namespace)[0][1], "/v2/models/iris-classifier/feedback",
          [{"id": f"unknown-{i}", "label": 0} for i in range(3)])  # fmt: skip

    # A serving pod deleted mid-traffic: what it flushed (and, on SIGTERM, what it held) stays.
    victim = _pods(admin_rest, namespace)[0][0]
    with ThreadPoolExecutor(1) as pool:
        traffic = pool.submit(client.send, 160, 240)
        admin_rest.delete(f"/api/v1/namespaces/{namespace}/pods/{victim}")
        traffic.result()
    # The operator and the aggregator restart: both rebuild what they show from the store.
    operator.restart()
    monitor = admin_rest.get(
        f"/api/v1/namespaces/{namespace}/pods", labelSelector="modelwerk.dev/monitor-for=iris"
    )["items"][0]["metadata"]["name"]
    admin_rest.delete(f"/api/v1/namespaces/{namespace}/pods/{monitor}")
    status = wait_for_status(
        admin_rest,
        path,
        lambda s: (
            _caught_up(client, V1)(s)
            and s["liveMetrics"]["labels"]["unmatched"] >= 3
            and s["liveMetrics"]["measuredTime"] > status["liveMetrics"]["measuredTime"]
        ),
        timeout=240,
        what="the restarted aggregator to join every label again",
    )
    offline, rows = client.offline_accuracy(V1)
    labels = status["liveMetrics"]["labels"]
    assert rows == client.labelled and client.labelled >= 390
    assert labels["matched"] >= 0.99 * client.labelled
    assert labels["unmatched"] == 3
    assert abs(_live(status, V1)["accuracy"] - offline) < 0.005
    # Every flushed capture file is still there and nothing outside the Deployment's prefix.
    store = node.claims_dir / namespace / "modelwerk-artifacts"
    written = [p.relative_to(store).as_posix() for p in store.rglob("*.parquet")]
    captured = [w for w in written if w.startswith(f"captures/{namespace}/iris/{V1}/date=")]
    labelled = [w for w in written if w.startswith(f"labels/{namespace}/iris/date=")]
    assert captured and labelled
    # (runs/: the training run's trial table)
    assert all(w.startswith(("datasets/", "runs/", "captures/", "labels/")) for w in written), [
        w for w in written if not w.startswith(("datasets/", "runs/", "captures/", "labels/"))
    ]


def _wrong_version(rest: Rest, node: StandInNode, namespace: str) -> None:
    """v2: a real model that is wrong, trained on iris with every class shifted by one."""
    v1 = rest.get(f"{GROUP}/namespaces/{namespace}/modelversions/{V1}")
    store = node.claims_dir / namespace / "modelwerk-artifacts"
    old = Path(v1["spec"]["artifact"]["uri"].removeprefix("pvc://modelwerk-artifacts/"))
    card = json.loads((store / old.parent / "model-card.json").read_text())
    pipeline = joblib.load(store / old)
    last = pipeline.steps[-1][0]
    model = copy.deepcopy(pipeline).set_params(
        **{last: RandomForestClassifier(n_estimators=10, random_state=0)}
    )
    model.fit(pd.DataFrame(IRIS.data, columns=COLUMNS), (IRIS.target + 1) % 3)
    staging = store / "staging.joblib"
    joblib.dump(model, staging)
    sha = hashlib.sha256(staging.read_bytes()).hexdigest()
    folder = store / "models" / "iris-classifier" / sha
    folder.mkdir(parents=True)
    staging.rename(folder / "model.joblib")
    uri = f"pvc://modelwerk-artifacts/models/iris-classifier/{sha}/model.joblib"
    card["artifact"].update(
        {"uri": uri, "sha256": sha, "sizeBytes": (folder / "model.joblib").stat().st_size}
    )
    (folder / "model-card.json").write_text(json.dumps(card))
    spec = copy.deepcopy(v1["spec"])
    spec.update({"version": 2, "artifact": {**spec["artifact"], "uri": uri, "sha256": sha}})
    spec.pop("compiled", None)  # v1's ONNX model is not this artifact's
    rest.create(
        f"{GROUP}/namespaces/{namespace}/modelversions",
        {"apiVersion": "modelwerk.dev/v1alpha1", "kind": "ModelVersion", "metadata": {"name": V2}, "spec": spec},
    )  # fmt: skip
    wait_until(
        lambda: phase_is(rest, namespace, "modelversions", V2, "Ready"),
        timeout=120,
        what="the wrong v2 verified",
    )


def test_a_canary_wrong_on_labelled_traffic_is_aborted_by_the_accuracy_check(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    path = _serving_v1(
        admin_rest,
        node,
        namespace,
        replicas=2,
        strategy={"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
        analysis={
            "intervalSeconds": 5,
            "count": 3,
            "minRequests": 20,
            "inconclusiveLimit": 20,
            "checks": [{"metric": "accuracy", "min": 0.8}],
        },
    )
    _wrong_version(admin_rest, node, namespace)
    admin_rest.merge_patch(path, {"spec": {"modelVersion": V2}})
    wait_until(lambda: _pods(admin_rest, namespace, "green"), timeout=120, what="a v2 pod")
    client = Client(admin_rest, namespace)
    sent = 0
    while True:
        client.send(40, sent)
        sent += 40
        current = admin_rest.get(path)["status"]
        if current.get("phase") == "Aborted" or sent >= 2000:
            break
    assert current["phase"] == "Aborted" and current["stableVersion"] == V1, current
    run = current["analysisRuns"][-1]
    failed = [m for m in run["measurements"] if m["phase"] == "Failed"]
    assert failed and failed[-1]["metric"] == "accuracy" and failed[-1]["value"] < 0.2
    offline, rows = client.offline_accuracy(V2)
    assert rows >= 20 and offline < 0.2, "v2 really is wrong on the labelled rows"
