"""metrics-server on the node: the resource-metrics API (``metrics.k8s.io``) an HPA reads.

Owns: the API server's aggregation-layer flags, metrics-server's identity and RBAC, its
APIService, and running it as a host process like the other node components.

How the pieces fit:

* The API server proxies ``/apis/metrics.k8s.io`` to metrics-server as the aggregation layer:
  it presents the ``front-proxy-client`` certificate (``--proxy-client-cert-file``) and passes
  the caller's identity in ``X-Remote-*`` headers, which metrics-server trusts only from a
  client certificate that ``--requestheader-client-ca-file`` signed and whose name is in
  ``--requestheader-allowed-names``. The node has one CA; restricting the allowed name to
  ``front-proxy-client``, a certificate issued to the API server alone, keeps other client
  certificates of that CA from asserting identities. (kubeadm uses a separate front-proxy CA.)
* ``--enable-aggregator-routing``: the API server dials the Service's endpoint directly (the
  node address) instead of its ClusterIP, so it does not depend on kube-proxy's rules for
  traffic the host itself originates.
* metrics-server listens on the node address with a serving certificate from the cluster CA,
  so the APIService verifies it (``caBundle``) instead of skipping verification. It scrapes
  the kubelet's ``/metrics/resource``; the kubelet serves a self-signed certificate here (no
  serving-certificate bootstrap on this node), hence ``--kubelet-insecure-tls`` on that one
  hop, which never leaves the host.
"""

from __future__ import annotations

import base64
import importlib.util
import sys
from pathlib import Path
from typing import Any

from tests.cluster.controlplane import ControlPlane, write_kubeconfig
from tests.cluster.rest import Rest, RestError

from nodectl import layout

REPO_ROOT = Path(__file__).resolve().parents[3]
NAMESPACE = "kube-system"
NAME = "metrics-server"
USER = "system:metrics-server"
FRONT_PROXY = "front-proxy-client"
GROUP_VERSION = ("metrics.k8s.io", "v1beta1")


def metrics_server_binary() -> Path:
    """From hack/tools.py: $METRICS_SERVER, the cache, or a build of the pinned module."""
    name = "modelwerk_tools"  # the name tests/cluster/hack.py loads it by: one module
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "hack" / "tools.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up while being made
        spec.loader.exec_module(module)
    binary: Path = sys.modules[name].ensure("metrics-server")
    return binary


def aggregation_flags(cp: ControlPlane) -> dict[str, str]:
    """API server flags of the aggregation layer (call after the PKI exists)."""
    proxy = cp.pki.client_cert(FRONT_PROXY, FRONT_PROXY)
    return {
        "--requestheader-client-ca-file": str(cp.pki.ca.cert),
        "--requestheader-allowed-names": FRONT_PROXY,
        "--requestheader-username-headers": "X-Remote-User",
        "--requestheader-group-headers": "X-Remote-Group",
        "--requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "--proxy-client-cert-file": str(proxy.cert),
        "--proxy-client-key-file": str(proxy.key),
        "--enable-aggregator-routing": "true",
    }


class AggregatingControlPlane(ControlPlane):
    """The control plane with the aggregation layer on: its flags need the PKI, which exists
    only once the start has begun."""

    def _start_apiserver(self, etcd_url: str, port: int) -> None:
        self.apiserver_flags.update(aggregation_flags(self))
        super()._start_apiserver(etcd_url, port)


def argv(binary: Path, cp: ControlPlane, port: int) -> list[str]:
    client = cp.pki.client_cert(NAME, USER)
    serving = cp.pki.server_cert(
        f"{NAME}-serving",
        NAME,
        dns=(f"{NAME}.{NAMESPACE}.svc", f"{NAME}.{NAMESPACE}.svc.cluster.local"),
        ips=(layout.NODE_IP,),
    )
    kubeconfig = write_kubeconfig(
        layout.CONFIG_DIR / f"{NAME}.kubeconfig",
        cp.server,
        cp.ca_file,
        user=USER,
        cert=client.cert,
        key=client.key,
    )
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={layout.NODE_IP}",
        f"--secure-port={port}",
        f"--tls-cert-file={serving.cert}",
        f"--tls-private-key-file={serving.key}",
        f"--requestheader-client-ca-file={cp.pki.ca.cert}",
        f"--requestheader-allowed-names={FRONT_PROXY}",
        "--kubelet-preferred-address-types=InternalIP",
        # The kubelet listens on a free port, not 10250 (metrics-server's default), and says
        # which one in the Node's status.
        "--kubelet-use-node-status-port",
        "--kubelet-insecure-tls",
        "--metric-resolution=15s",  # must exceed the kubelet request timeout (10 s)
        "--v=1",
    ]


def install(rest: Rest, cp: ControlPlane, port: int) -> None:
    """RBAC, a selector-less Service on the node address, and the APIService."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    _ensure(
        rest,
        f"{rbac}/clusterroles",
        {
            "metadata": {"name": USER},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {
                    "apiGroups": [""],
                    "resources": ["pods", "nodes", "namespaces", "configmaps"],
                    "verbs": ["get", "list", "watch"],
                },
            ],
        },
    )
    for role, kind, path in (
        (USER, "ClusterRole", f"{rbac}/clusterrolebindings"),
        ("system:auth-delegator", "ClusterRole", f"{rbac}/clusterrolebindings"),
        (
            "extension-apiserver-authentication-reader",
            "Role",
            f"{rbac}/namespaces/{NAMESPACE}/rolebindings",
        ),
    ):
        _ensure(
            rest,
            path,
            {
                "metadata": {"name": f"{NAME}:{role}"[:63].rstrip(":")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}
                ],
            },
        )
    _ensure(
        rest,
        f"/api/v1/namespaces/{NAMESPACE}/services",
        {
            "metadata": {"name": NAME},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
        },
    )
    _ensure(
        rest,
        f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices",
        {
            "metadata": {"name": NAME, "labels": {"kubernetes.io/service-name": NAME}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [layout.NODE_IP], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        },
    )
    group, version = GROUP_VERSION
    _ensure(
        rest,
        "/apis/apiregistration.k8s.io/v1/apiservices",
        {
            "metadata": {"name": f"{version}.{group}"},
            "spec": {
                "group": group,
                "version": version,
                "service": {"namespace": NAMESPACE, "name": NAME, "port": 443},
                "caBundle": base64.b64encode(cp.pki.ca.cert.read_bytes()).decode(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    )


def serving(rest: Rest) -> bool:
    """The API answers with this node's usage (metrics-server scraped the kubelet once)."""
    group, version = GROUP_VERSION
    try:
        node = rest.get(f"/apis/{group}/{version}/nodes/{layout.NODE_NAME}")
    except RestError:
        return False
    return bool(node.get("usage"))


def _ensure(rest: Rest, path: str, body: dict[str, Any]) -> None:
    try:
        rest.create(path, body)
    except RestError as exc:
        if exc.status != 409:  # already there from an earlier start of the same cluster
            raise
