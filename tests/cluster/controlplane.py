"""A real Kubernetes control plane for tests, in the spirit of controller-runtime's envtest.

Owns: running etcd, kube-apiserver, kube-controller-manager and kube-scheduler
as local processes on free 127.0.0.1 ports inside one temp directory, waiting
until they serve, writing kubeconfigs, and tearing everything down again.

There is no kubelet here: pods are scheduled but nothing runs them unless a
test drives them (see ``tests.cluster.node``). The node-lifecycle controller is
deliberately not run, so a stand-in Node without heartbeats stays Ready.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import ipaddress
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tests.cluster import process
from tests.cluster.pki import Pki, create_pki

Progress = Callable[[str], None]

REPO_ROOT = Path(__file__).resolve().parents[2]
AUDITED_NAMESPACE = "modelwerk-system"
"""Writes by ServiceAccounts of this namespace (the operator's) go to the audit log."""

# Controllers the operator's behaviour depends on (names as of 1.34).
# Not run: node-lifecycle (would taint the heartbeat-less stand-in node and
# evict its pods), node-ipam, cloud and CSR controllers, HPA.
CONTROLLERS: tuple[str, ...] = (
    "job-controller",
    "cronjob-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "disruption-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "ttl-after-finished-controller",
    "pod-garbage-collector-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
    "clusterrole-aggregation-controller",
    "resourcequota-controller",
)


class ControlPlaneError(RuntimeError):
    """The control plane failed to start; the message carries the components' log tails."""


def ensure_binaries(progress: Progress) -> dict[str, Path]:
    """The control-plane binaries via ``hack/kube/build.py`` (envtest assets, cache, or a build)."""
    spec = importlib.util.spec_from_file_location(
        "modelwerk_kube_build", REPO_ROOT / "hack" / "kube" / "build.py"
    )
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    binaries: dict[str, Path] = build.ensure_binaries(build.CONTROL_PLANE, progress=progress)
    return binaries


def free_port() -> int:
    """A currently unused TCP port on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(
    path: Path,
    server: str,
    ca_file: Path,
    *,
    user: str,
    token: str | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    namespace: str | None = None,
) -> Path:
    """Write a self-contained kubeconfig (data embedded) for one user; JSON is valid YAML."""
    credentials: dict[str, str] = {}
    if token is not None:
        credentials["token"] = token
    if cert is not None and key is not None:
        credentials["client-certificate-data"] = _b64(cert)
        credentials["client-key-data"] = _b64(key)
    context: dict[str, str] = {"cluster": "modelwerk-test", "user": user}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "modelwerk-test",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_file)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": context}],
        "current-context": user,
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


WORKDIR_PREFIX = "modelwerk-cp-"


def _remove_stale_workdirs() -> None:
    """Delete workdirs of sessions that died without teardown (e.g. SIGKILL): etcd's WAL alone is
    ~100 MB. A workdir still has its OWNER file only while its session may be running."""
    for owner in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*/OWNER"):
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue
        if not process.pid_exists(pid):
            shutil.rmtree(owner.parent, ignore_errors=True)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler on 127.0.0.1.

    Use as a context manager or call :meth:`start` / :meth:`stop`. After start:
    ``server`` (https URL), ``admin_kubeconfig`` (system:masters) and ``pki``.
    ``binaries`` maps component name to executable (see ``hack/kube/build.py``).
    """

    def __init__(
        self,
        binaries: Mapping[str, Path],
        *,
        service_cidr: str = "10.0.0.0/24",
        controllers: Sequence[str] = CONTROLLERS,
        start_timeout: float = 60.0,
        keep_workdir: bool = False,
        progress: Progress = _stderr,
        address: str = "127.0.0.1",
        apiserver_flags: Mapping[str, str] | None = None,
    ) -> None:
        self.binaries = dict(binaries)
        self.service_cidr = service_cidr
        self.controllers = tuple(controllers)
        self.start_timeout = start_timeout
        self.keep_workdir = keep_workdir or os.environ.get("MODELWERK_KEEP_CLUSTER_DIR") == "1"
        self.progress = progress
        # A real node (hack/node) needs the API server on an address pods can reach, and a few
        # API server flags of its own: these override the defaults below flag by flag.
        self.address = address
        self.apiserver_flags = dict(apiserver_flags or {})
        self.processes: dict[str, process.ManagedProcess] = {}
        _remove_stale_workdirs()
        self.workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        (self.workdir / "OWNER").write_text(str(os.getpid()))
        self.server = ""
        self.startup_seconds = 0.0
        self._started_pids: list[int] = []
        self._ssl: ssl.SSLContext | None = None

    # ----------------------------------------------------------------- paths
    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    @property
    def ca_file(self) -> Path:
        return self.pki.ca.cert

    @property
    def all_pids(self) -> list[int]:
        """Every PID this control plane ever started (for leak checks after stop)."""
        return list(self._started_pids)

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start all components and wait until each serves; raise ControlPlaneError otherwise."""
        process.install_signal_handlers()
        started = time.monotonic()
        try:
            self._start()
        except BaseException as e:
            logs = self._log_tails()
            self.stop(remove_workdir=False)
            if isinstance(e, ControlPlaneError):
                message = (
                    f"control plane start-up failed: {e}\n(logs kept in {self.workdir})\n{logs}"
                )
                self.progress(message)
                raise ControlPlaneError(message) from e
            raise
        self.startup_seconds = time.monotonic() - started
        self.progress(
            f"[cluster] control plane ready in {self.startup_seconds:.1f}s at {self.server} "
            f"(workdir {self.workdir})"
        )

    def stop(self, *, remove_workdir: bool = True) -> None:
        """Stop the components in reverse start order (idempotent); drop the workdir unless kept."""
        for name in reversed(list(self.processes)):
            self.processes[name].stop()
        self.processes.clear()
        left = process.wait_gone(self._started_pids, timeout=5)
        if left:
            raise ControlPlaneError(f"control-plane processes survived teardown: {left}")
        if remove_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            (self.workdir / "OWNER").unlink(missing_ok=True)  # kept on purpose, not stale

    def _start(self) -> None:
        network = ipaddress.ip_network(self.service_cidr)
        extra_ips = () if self.address == "127.0.0.1" else (self.address,)
        self.pki: Pki = create_pki(self.workdir / "pki", str(network[1]), extra_ips=extra_ips)
        self._ssl = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        self._ssl.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))

        etcd_url = self._start_etcd()
        api_port = free_port()
        self.server = f"https://{self.address}:{api_port}"
        self._start_apiserver(etcd_url, api_port)
        write_kubeconfig(
            self.admin_kubeconfig,
            self.server,
            self.pki.ca.cert,
            user="admin",
            cert=self.pki.admin.cert,
            key=self.pki.admin.key,
        )
        self._wait("kube-apiserver /readyz", lambda: self._get(f"{self.server}/readyz") == "ok")

        # Controller-manager and scheduler start in parallel: neither needs the other.
        cm_port, sched_port = free_port(), free_port()
        self._start_controller_manager(cm_port)
        self._start_scheduler(sched_port)
        for name, port in (("kube-controller-manager", cm_port), ("kube-scheduler", sched_port)):
            healthz = f"https://127.0.0.1:{port}/healthz"
            self._wait(f"{name} /healthz", functools.partial(self._ok, healthz))
        # The ServiceAccount controller creating `default` proves the controllers run
        # (and pods are only admitted once their namespace has that ServiceAccount).
        self._wait(
            "ServiceAccount default/default",
            lambda: self._exists("/api/v1/namespaces/default/serviceaccounts/default"),
        )

    def _spawn(
        self, name: str, argv: list[str], overrides: Mapping[str, str] | None = None
    ) -> None:
        if overrides:
            flags = [a for a in argv[1:] if a.split("=", 1)[0] not in overrides]
            argv = [argv[0], *flags, *(f"{k}={v}" for k, v in overrides.items())]
        log = self.workdir / f"{name}.log"
        self.processes[name] = proc = process.ManagedProcess(name, argv, log)
        self._started_pids.append(proc.pid)

    def _start_etcd(self) -> str:
        client, peer = free_port(), free_port()
        data = self.workdir / "etcd"
        self._spawn(
            "etcd",
            [
                str(self.binaries["etcd"]),
                "--name=default",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",  # throw-away data: skip fsync, much faster on shared disks
                "--log-level=warn",
            ],
        )
        url = f"http://127.0.0.1:{client}"
        self._wait("etcd /health", lambda: '"health":"true"' in self._get(f"{url}/health"))
        return url

    def _start_apiserver(self, etcd_url: str, port: int) -> None:
        pki = self.pki
        self._spawn(
            "kube-apiserver",
            [
                str(self.binaries["kube-apiserver"]),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.apiserver.cert}",
                f"--tls-private-key-file={pki.apiserver.key}",
                f"--client-ca-file={pki.ca.cert}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.sa_public_key}",
                f"--service-account-signing-key-file={pki.sa_private_key}",
                f"--service-cluster-ip-range={self.service_cidr}",
                # Let PodSecurity admission (on by default, with the other default
                # plugins) be what rejects privileged pods, not this global switch.
                "--allow-privileged=true",
                # The endpoint reconciler would try to publish 127.0.0.1 as the
                # `kubernetes` Service endpoint, which validation rejects (loopback).
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                # Writes by the operator's ServiceAccount are audited, so tests can tell from
                # the API server's own record which operator process wrote what.
                f"--audit-policy-file={self._write_audit_policy()}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
            ],
            self.apiserver_flags,
        )

    def _write_audit_policy(self) -> Path:
        path = self.workdir / "audit-policy.json"
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [
                {
                    "level": "Metadata",
                    "userGroups": [f"system:serviceaccounts:{AUDITED_NAMESPACE}"],
                    "verbs": ["create", "update", "patch", "delete", "deletecollection"],
                },
                {"level": "None"},
            ],
        }
        path.write_text(json.dumps(policy))
        return path

    def audit_events(self) -> list[dict[str, object]]:
        """Audit events so far: every write by a ServiceAccount of the operator's namespace.

        The user's ``extra["authentication.kubernetes.io/credential-id"]`` tells tokens of
        the same ServiceAccount apart (one per operator process in the HA tests).
        """
        if not self.audit_log.exists():
            return []
        lines = self.audit_log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def _component_kubeconfig(self, name: str, cert: Path, key: Path) -> Path:
        return write_kubeconfig(
            self.workdir / f"{name}.kubeconfig",
            self.server,
            self.pki.ca.cert,
            user=name,
            cert=cert,
            key=key,
        )

    def _start_controller_manager(self, port: int) -> None:
        pki = self.pki
        kubeconfig = self._component_kubeconfig(
            "kube-controller-manager", pki.controller_manager.cert, pki.controller_manager.key
        )
        self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries["kube-controller-manager"]),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'controller-manager-certs'}",
                "--leader-elect=false",  # single instance; leader election only delays start-up
                # Each controller acts as its own ServiceAccount with the bootstrap
                # RBAC roles, as in kubeadm clusters: permission gaps show up here too.
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki.sa_private_key}",
                f"--root-ca-file={pki.ca.cert}",
                f"--service-cluster-ip-range={self.service_cidr}",
                f"--controllers={','.join(self.controllers)}",
            ],
        )

    def _start_scheduler(self, port: int) -> None:
        kubeconfig = self._component_kubeconfig(
            "kube-scheduler", self.pki.scheduler.cert, self.pki.scheduler.key
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.binaries["kube-scheduler"]),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                "--leader-elect=false",
            ],
        )

    # ---------------------------------------------------------------- helpers
    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        kubeconfig: Path | None = None,
        timeout: float = 60,
    ) -> str:
        """Run ``kubectl`` against this cluster (admin by default); stdout, or raise on failure."""
        return process.run_checked(
            ["kubectl", f"--kubeconfig={kubeconfig or self.admin_kubeconfig}", *args],
            input=input,
            timeout=timeout,
        )

    def _get(self, url: str, *, verify: bool = True) -> str:
        """GET ``url``; the body on 200, "" on any error (callers poll)."""
        context = None
        if url.startswith("https://"):
            context = self._ssl if verify else ssl._create_unverified_context()
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                body: bytes = response.read()
                return body.decode()
        except (OSError, urllib.error.URLError):
            return ""

    def _ok(self, url: str) -> bool:
        # verify=False: controller-manager and scheduler serve self-signed certificates.
        return self._get(url, verify=False) == "ok"

    def _exists(self, api_path: str) -> bool:
        return bool(self._get(f"{self.server}{api_path}"))

    def _wait(self, what: str, ready: Callable[[], bool]) -> None:
        """Poll ``ready`` until true; fail fast if a component died, or after ``start_timeout``."""
        deadline = time.monotonic() + self.start_timeout
        while not ready():
            dead = [p for p in self.processes.values() if not p.alive()]
            if dead:
                raise ControlPlaneError(
                    f"waiting for {what}: "
                    + ", ".join(f"{p.name} exited with {p.popen.returncode}" for p in dead)
                )
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"timed out after {self.start_timeout:.0f}s waiting for {what}"
                )
            time.sleep(0.1)

    def _log_tails(self) -> str:
        parts = []
        for name in self.processes:
            parts.append(
                f"----- {name} ({self.processes[name].log_path}) -----\n"
                + self.processes[name].tail()
            )
        return "\n".join(parts)
