"""A real Prometheus server on the host, scraping the cluster under test (the local node).

Owns: starting and always stopping that server, and reading from it. It runs the Prometheus
that hack/tools.py builds (3.13, Kubernetes discovery only) with the configuration tests/e2e/monitors.py generates
from manifests/components/monitoring, discovers targets through the cluster's API server as a
ServiceAccount with the read-only RBAC a Prometheus needs, and listens on the node's address,
which both the host and the pods reach: Prometheus scrapes the pods' IPs, and the operator pod
queries Prometheus (an analysis with ``prometheusUrl``).

That needs a cluster whose pods and API server share a network with this machine, as the
local node's do (``make e2e-node``); elsewhere (kind: the API server behind a port mapping on
127.0.0.1, pods in Docker's network) the tests that need it are skipped with that reason.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import shutil
import socket
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.cluster.hack import tool
from tests.cluster.process import ManagedProcess
from tests.e2e import monitors
from tests.e2e.kubectl import Kubectl, wait_for

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "modelwerk-e2e-monitoring"
ACCOUNT = "prometheus"
# What service discovery of pods, services and endpoints needs (kube-prometheus' rules).
RBAC_RULES = [
    {
        "apiGroups": [""],
        "resources": ["pods", "services", "endpoints"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["discovery.k8s.io"],
        "resources": ["endpointslices"],
        "verbs": ["get", "list", "watch"],
    },
]


class Unreachable(RuntimeError):
    """The cluster's pods cannot reach this machine (and the reverse): no host Prometheus."""


def host_address(kubectl: Kubectl) -> str:
    """The address of this machine on the cluster's network: where the API server listens,
    when that is not a loopback address (the local node listens on its bridge address)."""
    server = kubectl.run(
        "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
    )
    host = urlsplit(server.strip()).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise Unreachable(
            f"the API server is {server.strip()!r}, not an address of this machine"
        ) from None
    if address.is_loopback:
        raise Unreachable(
            f"the API server is on {host} (a port mapping, as kind's): its pods cannot reach a "
            "Prometheus on this machine, nor it their IPs"
        )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, 0))  # fails unless the address is one of this machine's
        except OSError as exc:
            raise Unreachable(f"{host} is not an address of this machine: {exc}") from None
    return host


class Prometheus:
    """A running server; ``url`` reaches it from this machine and from the cluster's pods."""

    def __init__(self, kubectl: Kubectl, address: str) -> None:
        self._kubectl = kubectl
        self._dir = Path(tempfile.mkdtemp(prefix="mw-e2e-prometheus-"))
        self._process: ManagedProcess | None = None
        self.address = address
        self.url = ""

    def start(self) -> None:
        binary = tool("prometheus")
        kubeconfig = self._service_account_kubeconfig()
        rules = self._dir / "rules.yaml"
        rules.write_text(yaml.safe_dump(monitors.rule_file(), sort_keys=False))
        config = self._dir / "prometheus.yaml"
        config.write_text(
            yaml.safe_dump(monitors.prometheus_config(str(kubeconfig), str(rules)), sort_keys=False)
        )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((self.address, 0))
            port = s.getsockname()[1]
        self.url = f"http://{self.address}:{port}"
        self._process = ManagedProcess(
            "prometheus",
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address={self.address}:{port}",
                "--log.level=warn",
            ],
            self._dir / "prometheus.log",
        )
        wait_for(self._ready, timeout=60, what=f"Prometheus at {self.url} to be ready")

    def _ready(self) -> bool:
        if self._process is not None and not self._process.alive():
            raise AssertionError(f"Prometheus exited:\n{self._process.tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _service_account_kubeconfig(self) -> Path:
        """A kubeconfig for the ServiceAccount ``prometheus``, bound to read-only discovery RBAC."""
        k = self._kubectl
        labels = {"app.kubernetes.io/part-of": "modelwerk-e2e"}
        k.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": NAMESPACE, "labels": labels},
                },
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": ACCOUNT, "namespace": NAMESPACE},
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": "modelwerk-e2e-prometheus", "labels": labels},
                    "rules": RBAC_RULES,
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": "modelwerk-e2e-prometheus", "labels": labels},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "modelwerk-e2e-prometheus",
                    },
                    "subjects": [
                        {"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}
                    ],
                },
            ]
        )
        token = k.run(
            "create", "token", ACCOUNT, f"--namespace={NAMESPACE}", "--duration=6h"
        ).strip()
        view = json.loads(k.run("config", "view", "--minify", "--raw", "-o", "json"))
        cluster = view["clusters"][0]["cluster"]
        ca = cluster.get("certificate-authority-data")
        if ca is None and cluster.get("certificate-authority"):
            ca = base64.b64encode(Path(cluster["certificate-authority"]).read_bytes()).decode()
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "cluster",
                    "cluster": {"server": cluster["server"], "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": ACCOUNT, "user": {"token": token}}],
            "contexts": [{"name": ACCOUNT, "context": {"cluster": "cluster", "user": ACCOUNT}}],
            "current-context": ACCOUNT,
        }
        path = self._dir / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig))
        path.chmod(0o600)
        return path

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        for kind, name in (
            ("clusterrolebinding", "modelwerk-e2e-prometheus"),
            ("clusterrole", "modelwerk-e2e-prometheus"),
            ("namespace", NAMESPACE),
        ):
            self._kubectl.delete(kind, name)
        shutil.rmtree(self._dir, ignore_errors=True)

    def log(self) -> str:
        return self._process.tail(60) if self._process is not None else "(not running)"

    # ------------------------------------------------------------------ reading
    def _get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            body = json.load(response)
        assert body.get("status") == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector: ``[{"metric": {...}, "value": [t, "v"]}, ...]``."""
        data = self._get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts: ``[{"labels": ..., "state": "firing", ...}]``."""
        found: list[dict[str, Any]] = self._get("/api/v1/alerts")["alerts"]
        return found

    def targets(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._get("/api/v1/targets", state="active")["activeTargets"]
        return found

    def wait_for_series(self, expr: str, what: str, timeout: float = 120) -> list[dict[str, Any]]:
        started = time.monotonic()
        result = wait_for(lambda: self.query(expr), timeout=timeout, what=what, interval=3)
        print(f"[prometheus] {what}: {time.monotonic() - started:.0f}s")
        return result
