"""A/B experiments with real model servers: the stand-in node runs each serving pod's real
command with the environment the operator gave it (and the real aggregator pod), the operator
reads the pods' real ``/metrics`` and the aggregator's join, and simulated users label the
predictions.

The stand-in node has no Services (no cluster DNS, no kube-proxy), so the test plays the stable
Service *and* the forward: each request goes straight to a pod of the arm its key hashes to
(computed with the server's own function; that a pod forwards a request for the other arm is
proven between real servers in tests/unit/server/test_experiment.py). Every response must
still name that arm and its version, so the pods' own assignment is checked on every request.
Users label B's answers right more often than A's.

Capture is on, each arm has several worker processes (A: 2 pods x 2 workers, B: 1 x 2), and
every label goes to a random pod of *either* arm: a process that served the prediction gets
about one label in six. The primary metric must still count every label, because it comes from
the aggregator's join of all replicas' captures and labels (issue 14's defect, for experiments).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest

from modelwerk.runtime.server.experiment import assign
from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest, RestError
from tests.cluster.wait import wait_until
from tests.integration.serving import create_deployment, stable_selector, tracks, wait_for_status
from tests.integration.test_capture import CAPTURE
from tests.integration.test_closed_loop import COLUMNS, TYPICAL, V1, V2, _chain, _pod_ips
from tests.integration.test_closed_loop import _register_again as register_v2


def _post(ip: str, path: str, body: dict[str, Any], key: str | None) -> tuple[dict[str, Any], Any]:
    headers = {"Content-Type": "application/json"} | ({"x-user-id": key} if key else {})
    request = urllib.request.Request(
        f"http://{ip}:8080/v2/models/iris-classifier/{path}",
        data=json.dumps(body).encode(),
        headers=headers,
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read()), response.headers


@contextmanager
def _users(
    rest: Rest,
    namespace: str,
    salt: str,
    accuracy: dict[str, float],
    seen: list[str],
    labelled: list[tuple[float, str]],
) -> Iterator[None]:
    """Users u0..u199 ask and label: an answer of arm X is labelled right with probability
    ``accuracy[X]`` (the label is the prediction, or another class). The label goes, without
    the key, to any pod of either arm; ``labelled`` gets (time of the prediction, arm)."""
    stop = threading.Event()
    rng = random.Random(11)
    row = {
        "inputs": [
            {"name": c, "shape": [1], "datatype": "FP64", "data": [v]}
            for c, v in zip(COLUMNS, TYPICAL, strict=True)
        ]
    }

    def run() -> None:
        colors = {"a": "blue", "b": "green"}
        while not stop.is_set():
            key = f"u{rng.randrange(200)}"
            arm = assign(salt, key, 0.5)
            pods = _pod_ips(rest, namespace, colors[arm])
            if not pods:
                stop.wait(0.2)
                continue
            _, ip = rng.choice(pods)
            try:
                asked = time.time()
                answer, headers = _post(ip, "infer", row, key)
                seen.append(
                    f"{key}:{headers['x-modelwerk-arm']}:{headers['x-modelwerk-model-version']}"
                )
                predicted = answer["outputs"][0]["data"][0]
                right = rng.random() < accuracy[arm]
                label = predicted if right else (predicted + 1) % 3
                anywhere = _pod_ips(rest, namespace, "blue") + _pod_ips(rest, namespace, "green")
                _post(
                    rng.choice(anywhere)[1], "feedback", {"id": answer["id"], "label": label}, None
                )
                labelled.append((asked, headers["x-modelwerk-arm"]))
            except OSError:
                continue  # a pod going away mid-request, as the experiment ends

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def test_b_is_declared_the_winner_and_promoted(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    _chain(admin_rest, node, namespace)
    node.auto(namespace, "app.kubernetes.io/component=monitor", mode="serve")
    path = create_deployment(
        admin_rest,
        namespace,
        modelVersion=V1,
        replicas=2,
        server={"workers": 2},
        monitoring=CAPTURE,
        strategy={
            "experiment": {
                "key": {"header": "x-user-id"},
                "intervalSeconds": 5,
                "minSamplePerArm": 150,
                "metric": {"name": "accuracy", "minimumDetectableEffect": 0.15},
                "guardrails": [{"metric": "errorRate", "maxIncrease": 0.05}],
            }
        },
    )
    wait_for_status(
        admin_rest, path, lambda s: s.get("phase") == "Healthy", timeout=120, what="v1 served"
    )
    register_v2(admin_rest, namespace)
    admin_rest.merge_patch(path, {"spec": {"modelVersion": V2}})
    started = wait_for_status(
        admin_rest,
        path,
        lambda s: (s.get("experiment") or {}).get("decision") == "Running",
        timeout=120,
        what="both arms serving",
    )
    assert set(stable_selector(admin_rest, namespace)) == {"modelwerk.dev/deployment"}
    assert started["actualWeight"] == 50
    salt = started["experiment"]["salt"]
    seen: list[str] = []
    labelled: list[tuple[float, str]] = []
    with _users(admin_rest, namespace, salt, {"a": 0.6, "b": 0.95}, seen, labelled):
        final = wait_for_status(
            admin_rest,
            path,
            lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == V2,
            timeout=300,
            what="B declared the winner and promoted",
        )
    experiment = final["experiment"]
    assert experiment["decision"] == "Promoted"
    assert experiment["reason"].startswith("BWins: accuracy: B is better")
    a, b = experiment["arms"]
    assert a["observations"] >= 150 and b["observations"] >= 150
    # Every label counts, wherever it landed: those of predictions from the experiment's first
    # whole minute on, posted 5 s or more before the last look (captures flush every second,
    # the aggregator reads every second), are all in the figures; the processes that served
    # the predictions got about one in six of them.
    start = _epoch(experiment["startTime"])
    last_look = _epoch(experiment["lastLookTime"])
    counted = [
        arm
        for asked, arm in labelled
        if asked >= 60 * math.ceil(start / 60) and asked < last_look - 5
    ]
    for status, arm in ((a, "a"), (b, "b")):
        assert status["observations"] >= counted.count(arm) > 0, (status, counted.count(arm))
    assert b["estimate"] > a["estimate"]
    assert experiment["primary"]["ciLow"] > 0
    # Units are the distinct users of each arm, counted from every replica's captures (200
    # users, each in one arm), so the sample-ratio check was enforced on them. B won before
    # the units were a grace old (34 s here), so the aggregator is asked once they are.
    assert experiment["unitsAreRequests"] is False and experiment["unitSampleRate"] == 1.0
    users = {arm: {k for k, arm_, _ in (e.split(":") for e in seen) if arm_ == arm} for arm in "ab"}
    monitor = admin_rest.get(
        f"/api/v1/namespaces/{namespace}/pods", labelSelector="app.kubernetes.io/component=monitor"
    )["items"][0]

    def units() -> dict[str, int] | None:
        url = f"http://{monitor['status']['podIP']}:8080/live?since={start}"
        with urllib.request.urlopen(url, timeout=5) as response:
            doc = json.loads(response.read())["experiment"]
        found = {
            e["arm"]: e["units"] for e in doc["arms"] if e["version"] == (V1, V2)[e["arm"] == "b"]
        }
        return found if doc["complete"] and all(found.get(arm) for arm in "ab") else None

    counted_units = wait_until(units, timeout=90, what="the arms' units a grace old")
    for arm in "ab":
        assert 0 < counted_units[arm] <= len(users[arm]), (counted_units, len(users[arm]))
    assert counted_units["a"] + counted_units["b"] <= 200
    # every answer during the experiment came from the key's arm and that arm's version
    # (after the promotion the plain servers answer without an arm)
    during = [entry.split(":") for entry in seen if entry.split(":")[1] != "None"]
    assert len(during) >= 120
    for key, arm, version in during:
        assert arm == assign(salt, key, 0.5) and version == (V1 if arm == "a" else V2)
    wait_for_status(
        admin_rest,
        path,
        lambda s: tracks(admin_rest, namespace) == {"green": (V2, 2)},
        timeout=60,
        what="arm A removed",
    )
    events = admin_rest.get(
        f"/api/v1/namespaces/{namespace}/events", fieldSelector="involvedObject.name=iris"
    )["items"]
    assert {"ExperimentStarted", "ExperimentBWins", "Promoted"} <= {e["reason"] for e in events}


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_label_metrics_other_than_accuracy_are_refused_without_capture(
    admin_rest: Rest, namespace: str
) -> None:
    """The API server runs the rule (the CEL twin of the model's validator)."""
    with pytest.raises(RestError) as refused:
        create_deployment(
            admin_rest,
            namespace,
            modelVersion=V1,
            strategy={"experiment": {"metric": {"name": "reward", "rewardType": "binary"}}},
        )
    assert refused.value.status == 422 and "need monitoring.capture" in str(refused.value)
