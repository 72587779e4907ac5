"""A standalone shadow with real model servers and capture on: the stable pods copy every
request to the candidate through its Service (played by ``tests.cluster.services``, the
stand-in node has no kube-proxy), both versions capture each request under the same id, and
simulated users post labels to any stable pod.

The stable version runs 2 pods x 2 worker processes, so a label reaches the process that
copied its request (and remembers both answers) about one time in four. What must hold:

* every label scores the capture of its request in *each* version: the live figures count the
  labelled requests once for the stable version and once for the shadow (a join by request id
  alone credited the first capture only, and the shadow's figures stayed empty);
* McNemar's pairs come from the aggregator's join of all replicas (``pairedFrom: capture``):
  every labelled request is a pair, where the copying processes saw about a quarter of them.
"""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.services import ServiceProxies
from tests.cluster.wait import wait_until
from tests.integration.serving import create_deployment, wait_for_status
from tests.integration.test_capture import CAPTURE
from tests.integration.test_closed_loop import COLUMNS, TYPICAL, V1, V2, _chain, _pod_ips
from tests.integration.test_closed_loop import _register_again as register_v2

LABELLED = 120


@pytest.fixture
def proxies(admin_rest: Rest, node: StandInNode) -> Iterator[ServiceProxies]:
    services = ServiceProxies(admin_rest)
    node.env_hooks.append(services.rewrite)
    try:
        yield services
    finally:
        node.env_hooks.remove(services.rewrite)
        services.close()


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def _copying(rest: Rest, namespace: str) -> list[tuple[str, str]]:
    """The stable pods that copy to the shadow (their template has its URL)."""
    pods = rest.get(
        f"/api/v1/namespaces/{namespace}/pods",
        labelSelector="modelwerk.dev/deployment=iris,modelwerk.dev/track=blue",
    )["items"]
    names = {
        p["metadata"]["name"]
        for p in pods
        if any(e["name"] == "MODELWERK_SHADOW_URL" for e in p["spec"]["containers"][0]["env"])
    }
    serving = _pod_ips(rest, namespace, "blue")
    return [(n, ip) for n, ip in serving if n in names] if len(serving) == len(pods) else []


def _metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def test_a_shadow_is_scored_from_the_join_of_every_replica(
    admin_rest: Rest,
    namespace: str,
    operator: InProcessOperator,
    node: StandInNode,
    proxies: ServiceProxies,
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
    )
    wait_for_status(
        admin_rest, path, lambda s: s.get("phase") == "Healthy", timeout=120, what="v1 served"
    )
    register_v2(admin_rest, namespace)
    admin_rest.merge_patch(
        path, {"spec": {"shadow": {"modelVersion": V2, "percent": 100, "intervalSeconds": 2}}}
    )
    wait_for_status(
        admin_rest,
        path,
        lambda s: (s.get("shadow") or {}).get("phase") == "Running",
        timeout=120,
        what="the shadow mirroring",
    )
    stable = wait_until(
        lambda: len(found := _copying(admin_rest, namespace)) == 2 and found,
        timeout=120,
        what="both stable pods copying",
    )
    rng = random.Random(5)
    row = {
        "inputs": [
            {"name": c, "shape": [1], "datatype": "FP64", "data": [v]}
            for c, v in zip(COLUMNS, TYPICAL, strict=True)
        ]
    }
    base = "/v2/models/iris-classifier"
    for i in range(LABELLED):
        rid = f"shadowed-{i}"
        answer = _post(f"http://{rng.choice(stable)[1]}:8080{base}/infer", {**row, "id": rid})
        predicted = answer["outputs"][0]["data"][0]
        label = predicted if rng.random() < 0.7 else (predicted + 1) % 3
        _post(f"http://{rng.choice(stable)[1]}:8080{base}/feedback", {"id": rid, "label": label})

    def settled(s: dict[str, Any]) -> bool:
        shadow = s.get("shadow") or {}
        live = {
            v["version"]: v["matched"] for v in (s.get("liveMetrics") or {}).get("versions", [])
        }
        return (
            shadow.get("pairedFrom") == "capture"
            and shadow.get("copies", 0) >= LABELLED
            and live.get(V1) == LABELLED
            and live.get(V2) == LABELLED - shadow.get("failed", 0) - shadow.get("dropped", 0)
        )

    final = wait_for_status(
        admin_rest, path, settled, timeout=120, what="every label scored in both versions"
    )
    shadow = final["shadow"]
    assert shadow["failed"] == 0 and shadow["dropped"] == 0, shadow
    # v2 is v1's artifact: the pairs are all concordant, and there are as many as labels
    assert (shadow["stableOnlyRight"], shadow["shadowOnlyRight"]) == (0, 0)
    monitor = admin_rest.get(
        f"/api/v1/namespaces/{namespace}/pods", labelSelector="app.kubernetes.io/component=monitor"
    )["items"][0]
    (pair,) = json.loads(_get(f"http://{monitor['status']['podIP']}:8080/live"))["pairs"]
    assert {pair["first"], pair["second"]} == {V1, V2}
    assert pair["bothRight"] + pair["bothWrong"] == LABELLED
    assert pair["firstOnly"] == pair["secondOnly"] == 0
    # the copying processes themselves paired only the labels that reached them
    in_process = sum(
        _metric(_get(f"http://{ip}:8080/metrics"), "modelwerk_shadow_paired_rows_total")
        for _, ip in stable
    )
    assert in_process < LABELLED
