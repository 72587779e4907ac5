"""The one process that owns a running node cluster.

Owns: starting the pieces in order (host network, containerd, control plane, kubelet,
kube-proxy, storage), proving the node runs pods, reporting readiness through
``layout.STATUS``, and stopping everything in reverse order on SIGTERM or when a component
dies. Every component runs with PR_SET_PDEATHSIG: if this process is killed outright its
components die with it, and ``down`` sweeps up what they leave (shims, mounts, rules).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from tests.cluster import process
from tests.cluster.controlplane import CONTROLLERS, ControlPlane, free_port, write_kubeconfig
from tests.cluster.rest import Rest, RestError
from tests.cluster.wait import wait_until

from nodectl import components, host, layout, metrics, runtime
from nodectl.provisioner import Provisioner

# The control-plane tier leaves node-lifecycle out (its stand-in node has no heartbeats);
# a real kubelet needs it: it lifts the not-ready taint every new Node is born with.
NODE_CONTROLLERS = (
    *CONTROLLERS,
    "node-lifecycle-controller",
    "taint-eviction-controller",
    # HorizontalPodAutoscalers of the node tier read metrics.k8s.io from metrics-server
    "horizontal-pod-autoscaler-controller",
)


def _log(message: str) -> None:
    print(f"[node] {message}", flush=True)


def write_status(**fields: Any) -> None:
    layout.RUN.mkdir(parents=True, exist_ok=True)
    tmp = layout.STATUS.with_suffix(".tmp")
    tmp.write_text(json.dumps(fields, indent=2))
    os.replace(tmp, layout.STATUS)


def read_status() -> dict[str, Any]:
    try:
        status: dict[str, Any] = json.loads(layout.STATUS.read_text())
        return status
    except (OSError, ValueError):
        return {}


def pod_is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


class NodeCluster:
    def __init__(self, binaries: dict[str, Path], cache: Path) -> None:
        self.binaries = binaries
        self.cache = cache
        self.processes: dict[str, process.ManagedProcess] = {}
        self.control_plane: ControlPlane | None = None
        self.provisioner: Provisioner | None = None
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------------- start
    def start(self) -> None:
        started = time.monotonic()
        layout.LOG_DIR.mkdir(parents=True, exist_ok=True)
        host.prepare()
        _log(f"bridge {layout.BRIDGE} at {layout.NODE_IP}, forwarding on")

        config = runtime.write_config()
        self._spawn("containerd", runtime.containerd_argv(config), env=runtime.containerd_env())
        runtime.wait_serving()
        runtime.ensure_pause_image(self.cache)
        _log(f"containerd serving on {layout.CONTAINERD_SOCKET}")

        # The control plane's workdir (etcd data, PKI, logs) goes under the run directory, so
        # its processes are recognisably the node's and teardown finds them.
        (layout.RUN / "tmp").mkdir(parents=True, exist_ok=True)
        tempfile.tempdir = str(layout.RUN / "tmp")
        cp = metrics.AggregatingControlPlane(
            self.binaries,
            service_cidr=layout.SERVICE_CIDR,
            controllers=NODE_CONTROLLERS,
            address=layout.NODE_IP,
            progress=_log,
            start_timeout=90,
        )
        admin = cp.workdir / "pki" / "admin"
        cp.apiserver_flags.update(
            {
                "--authorization-mode": "Node,RBAC",
                "--enable-admission-plugins": "NodeRestriction",
                # Publishes the node address as the `kubernetes` Service's endpoint, so pods
                # reach the API server through its ClusterIP like anywhere else.
                "--endpoint-reconciler-type": "lease",
                "--kubelet-client-certificate": f"{admin}.crt",
                "--kubelet-client-key": f"{admin}.key",
                "--kubelet-preferred-address-types": "InternalIP",
            }
        )
        self.control_plane = cp
        cp.start()
        self.timings["control_plane_seconds"] = cp.startup_seconds

        self._start_node_components(cp)
        rest = Rest.from_kubeconfig(cp.admin_kubeconfig)
        wait_until(lambda: self._node_ready(rest), timeout=120, interval=0.2, what="Node Ready")
        self.timings["node_ready_seconds"] = time.monotonic() - started
        _log(f"node {layout.NODE_NAME} Ready after {self.timings['node_ready_seconds']:.1f}s")

        self.provisioner = Provisioner(rest)
        self.provisioner.start()
        self.timings["pod_start_seconds"] = self._smoke_pod(rest)
        _log(f"a pod started in {self.timings['pod_start_seconds']:.1f}s")
        self._check_no_pull(rest)
        _log(f"image pulls go nowhere (every registry leads to {layout.NO_REGISTRY})")
        self.timings["metrics_server_seconds"] = self._start_metrics_server(cp, rest)
        _log(f"metrics.k8s.io served after {self.timings['metrics_server_seconds']:.1f}s")

        shutil.copyfile(cp.admin_kubeconfig, layout.KUBECONFIG)
        layout.KUBECONFIG.chmod(0o600)

    def _start_node_components(self, cp: ControlPlane) -> None:
        config = layout.CONFIG_DIR
        kubelet_cert = cp.pki.client_cert(
            "kubelet", f"system:node:{layout.NODE_NAME}", ("system:nodes",)
        )
        proxy_cert = cp.pki.client_cert("kube-proxy", "system:kube-proxy")
        kubelet_kubeconfig = write_kubeconfig(
            config / "kubelet.kubeconfig",
            cp.server,
            cp.ca_file,
            user=f"system:node:{layout.NODE_NAME}",
            cert=kubelet_cert.cert,
            key=kubelet_cert.key,
        )
        proxy_kubeconfig = write_kubeconfig(
            config / "kube-proxy.kubeconfig",
            cp.server,
            cp.ca_file,
            user="system:kube-proxy",
            cert=proxy_cert.cert,
            key=proxy_cert.key,
        )
        ca = config / "ca.crt"
        shutil.copyfile(cp.ca_file, ca)
        layout.KUBELET_DIR.mkdir(parents=True, exist_ok=True)
        kubelet_config = components.write_kubelet_config(
            config, ca_file=ca, healthz_port=free_port(), kubelet_port=free_port()
        )
        self._spawn(
            "kubelet",
            components.kubelet_argv(self.binaries["kubelet"], kubelet_config, kubelet_kubeconfig),
        )
        proxy_config = components.write_kube_proxy_config(
            config, kubeconfig=proxy_kubeconfig, healthz_port=free_port(), metrics_port=free_port()
        )
        self._spawn(
            "kube-proxy", components.kube_proxy_argv(self.binaries["kube-proxy"], proxy_config)
        )

    def _start_metrics_server(self, cp: ControlPlane, rest: Rest) -> float:
        started = time.monotonic()
        port = free_port()
        metrics.install(rest, cp, port)
        self._spawn("metrics-server", metrics.argv(self.binaries["metrics-server"], cp, port))

        def serving() -> bool:
            self.check_alive()
            return metrics.serving(rest)

        wait_until(serving, timeout=120, interval=1, what="metrics.k8s.io to report the node")
        return time.monotonic() - started

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = layout.LOG_DIR / f"{name}.log"
        self.processes[name] = process.ManagedProcess(name, argv, log, env=env)

    def _node_ready(self, rest: Rest) -> bool:
        self.check_alive()
        try:
            node = rest.get(f"/api/v1/nodes/{layout.NODE_NAME}")
        except RestError:
            return False
        ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in node.get("status", {}).get("conditions", [])
        )
        return ready and not node["spec"].get("taints")

    def _smoke_pod(self, rest: Rest) -> float:
        """Start one pod (the pause image, restricted profile) and time it to Ready."""
        path = "/api/v1/namespaces/default/pods"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "node-smoke"},
            "spec": {
                "containers": [
                    {
                        "name": "pause",
                        "image": layout.PAUSE_IMAGE,
                        "imagePullPolicy": "Never",
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "runAsNonRoot": True,
                            "runAsUser": 65535,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                    }
                ],
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": False,
            },
        }
        started = time.monotonic()
        rest.create(path, pod)

        def ready() -> bool:
            self.check_alive()
            return pod_is_ready(rest.get(f"{path}/node-smoke"))

        wait_until(
            ready,
            timeout=60,
            what="the smoke-test pod to be Ready",
        )
        elapsed = time.monotonic() - started
        rest.delete(f"{path}/node-smoke", {"gracePeriodSeconds": 0})
        return elapsed

    def _check_no_pull(self, rest: Rest) -> None:
        """Prove that a pull cannot reach a registry: it must fail against the closed port."""
        path = "/api/v1/namespaces/default/pods"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "node-no-pull"},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "docker.io/library/busybox:1.36",
                        "imagePullPolicy": "Always",
                    }
                ],
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": False,
            },
        }
        rest.create(path, pod)

        def refused() -> str:
            statuses = rest.get(f"{path}/node-no-pull").get("status", {}).get("containerStatuses")
            message: str = ((statuses or [{}])[0].get("state", {}).get("waiting") or {}).get(
                "message", ""
            )
            return message

        try:
            message = wait_until(refused, timeout=60, what="the pull attempt to fail")
            if layout.NO_REGISTRY not in message:
                raise RuntimeError(f"a pull did not go to {layout.NO_REGISTRY}: {message}")
        finally:
            rest.delete(f"{path}/node-no-pull", {"gracePeriodSeconds": 0})

    # ----------------------------------------------------------------------- running
    def check_alive(self) -> None:
        dead = [p for p in self.processes.values() if not p.alive()]
        if self.control_plane is not None:
            dead += [p for p in self.control_plane.processes.values() if not p.alive()]
        if dead:
            raise RuntimeError(
                "; ".join(
                    f"{p.name} exited with {p.popen.returncode}; log {p.log_path}:\n{p.tail(20)}"
                    for p in dead
                )
            )

    def pids(self) -> dict[str, int]:
        pids = {name: p.pid for name, p in self.processes.items()}
        if self.control_plane is not None:
            pids |= {name: p.pid for name, p in self.control_plane.processes.items()}
        return pids

    # -------------------------------------------------------------------------- stop
    def stop(self) -> None:
        """Reverse order: pods, node components, containerd, control plane, then the host."""
        if self.provisioner is not None:
            self.provisioner.stop()
        for name in ("metrics-server", "kube-proxy", "kubelet"):
            if name in self.processes:
                self.processes.pop(name).stop()
        if "containerd" in self.processes:
            if runtime.serving():
                try:
                    runtime.kill_all_containers()
                except Exception as e:  # the sweep below still kills what is left
                    _log(f"could not stop every container through containerd: {e}")
            self.processes.pop("containerd").stop()
        if self.control_plane is not None:
            try:
                self.control_plane.stop()
            except Exception as e:
                _log(f"control plane: {e}")
        host.restore(kube_proxy=self.binaries.get("kube-proxy"))


def supervise(binaries: dict[str, Path], cache: Path) -> int:
    """Run the cluster until SIGTERM/SIGINT (or a component dies); always tear down."""
    process.install_signal_handlers()
    layout.RUN.mkdir(parents=True, exist_ok=True)
    layout.SUPERVISOR_PID.write_text(str(os.getpid()))
    cluster = NodeCluster(binaries, cache)
    code = 0
    try:
        write_status(state="starting", pid=os.getpid())
        cluster.start()
        write_status(
            state="ready",
            pid=os.getpid(),
            server=cluster.control_plane.server if cluster.control_plane else "",
            kubeconfig=str(layout.KUBECONFIG),
            pids=cluster.pids(),
            **cluster.timings,
        )
        while True:
            cluster.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        _log("stopping")
    except Exception as e:
        code = 1
        _log(f"failed: {e}")
        traceback.print_exc()
        write_status(state="failed", pid=os.getpid(), error=str(e))
    finally:
        cluster.stop()
        _log("stopped")
    return code
