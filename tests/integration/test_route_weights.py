"""Exact canary weights through a real Gateway API HTTPRoute on the real control plane.

The HTTPRoute CRD is the upstream one (sigs.k8s.io/gateway-api, fetched through the Go module
proxy like the control-plane binaries); no Gateway controller runs here, so the test checks
what the operator owns: the route's backend weights and the Services behind them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.install import install_crds
from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.serving import (
    create_deployment,
    stable_selector,
    verified_version,
    wait_for_status,
)

GATEWAY_API = "sigs.k8s.io/gateway-api@v1.2.1"
ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes"


@pytest.fixture(scope="module")
def gateway_api(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    work = tmp_path_factory.mktemp("gateway-api")
    found = subprocess.run(
        ["go", "mod", "download", "-json", GATEWAY_API],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
        timeout=300,
    )
    source = Path(json.loads(found.stdout)["Dir"]) / "config/crd/standard"
    crds = work / "crds"
    crds.mkdir()
    shutil.copy(source / "gateway.networking.k8s.io_httproutes.yaml", crds)
    install_crds(control_plane, crds, lambda m: print(m, file=sys.stderr))
    yield


def _weights(rest: Rest, namespace: str) -> list[tuple[str, int | None]]:
    route = rest.get(ROUTES.format(namespace=namespace) + "/iris-route")
    return [(b["name"], b.get("weight")) for b in route["spec"]["rules"][0]["backendRefs"]]


def test_a_canary_moves_the_route_weights_and_promotion_resets_them(
    gateway_api: None,
    admin_rest: Rest,
    namespace: str,
    operator: InProcessOperator,
    node: StandInNode,
) -> None:
    node.auto(namespace, "app.kubernetes.io/component=verification", mode="run")
    node.auto(namespace, "app.kubernetes.io/component=server", mode="ready")
    v1 = verified_version(admin_rest, node, namespace, 1)
    v2 = verified_version(admin_rest, node, namespace, 2)
    admin_rest.create(
        ROUTES.format(namespace=namespace),
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "iris-route"},
            "spec": {
                "parentRefs": [{"name": "public"}],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                        "backendRefs": [{"name": "iris", "port": 80}],
                    }
                ],
            },
        },
    )
    path = create_deployment(
        admin_rest,
        namespace,
        modelVersion=v1,
        replicas=2,
        strategy={"canary": {"steps": [{"setWeight": 30}, {"pause": {}}]}},
        trafficRouting={"httpRoute": {"name": "iris-route"}},
    )
    wait_for_status(admin_rest, path, lambda s: s.get("phase") == "Healthy", what="v1 served")
    admin_rest.merge_patch(path, {"spec": {"modelVersion": v2}})
    current = wait_for_status(
        admin_rest, path, lambda s: s.get("canaryWeight") == 30, what="the 30 % step"
    )
    assert current["actualWeight"] == 30
    wait_until(
        lambda: _weights(admin_rest, namespace) == [("iris", 70), ("iris-canary", 30)],
        timeout=30,
        what="route weights 70/30",
    )
    assert stable_selector(admin_rest, namespace)["modelwerk.dev/track"] == "blue"
    assert stable_selector(admin_rest, namespace, "iris-canary")["modelwerk.dev/track"] == "green"
    route = admin_rest.get(ROUTES.format(namespace=namespace) + "/iris-route")
    assert route["spec"]["rules"][0]["matches"][0]["path"]["value"] == "/v2"
    admin_rest.merge_patch(
        path, {"metadata": {"annotations": {"modelwerk.dev/command": "promote@1"}}}
    )
    wait_for_status(admin_rest, path, lambda s: s.get("stableVersion") == v2, what="promotion")
    wait_until(
        lambda: _weights(admin_rest, namespace) == [("iris", 100), ("iris-canary", 0)],
        timeout=30,
        what="route weights back to 100/0",
    )
    assert stable_selector(admin_rest, namespace)["modelwerk.dev/track"] == "green"
