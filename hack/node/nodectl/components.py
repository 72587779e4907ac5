"""kubelet and kube-proxy: their configuration files and command lines.

Owns: the KubeletConfiguration and KubeProxyConfiguration of the node. Choices, and why:

* cgroupfs driver, cgroup v1 allowed (``failCgroupV1: false``): these machines run cgroup v1
  without systemd, which is why the node stays on Kubernetes 1.34.
* No image garbage collection and near-zero disk eviction thresholds: images are imported,
  never pulled, so an evicted image could not come back, and a busy shared disk must not
  evict test pods.
* No cluster DNS: nothing in the e2e tier resolves names (pods get the host's resolv.conf).
* kube-proxy in iptables mode, NodePorts only on the node address (never on the machine's
  other interfaces or 127.0.0.1, which would need route_localnet), conntrack sysctls left
  alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from nodectl import layout


def write_kubelet_config(
    directory: Path, *, ca_file: Path, healthz_port: int, kubelet_port: int
) -> Path:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.NODE_IP,
        "port": kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{layout.CONTAINERD_SOCKET}",
        "clusterDomain": "cluster.local",
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "serializeImagePulls": False,
        "maxPods": 110,
        "podPidsLimit": 4096,
        "registerNode": True,
        "nodeStatusUpdateFrequency": "5s",
        "logging": {"format": "text"},
    }
    path = directory / "kubelet.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def kubelet_argv(binary: Path, config: Path, kubeconfig: Path) -> list[str]:
    return [
        str(binary),
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={layout.KUBELET_DIR}",
        f"--cert-dir={layout.KUBELET_DIR / 'pki'}",
        f"--hostname-override={layout.NODE_NAME}",
        f"--node-ip={layout.NODE_IP}",
        "--v=1",
    ]


def write_kube_proxy_config(
    directory: Path, *, kubeconfig: Path, healthz_port: int, metrics_port: int
) -> Path:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": layout.NODE_NAME,
        "clusterCIDR": layout.POD_CIDR,
        "bindAddress": layout.NODE_IP,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "nodePortAddresses": [f"{layout.NODE_IP}/32"],
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }
    path = directory / "kube-proxy.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def kube_proxy_argv(binary: Path, config: Path) -> list[str]:
    return [str(binary), f"--config={config}", "--v=1"]
