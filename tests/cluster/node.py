"""A kubelet stand-in: one Node whose pods a test drives by hand or runs locally.

Owns: registering a Ready Node, and playing the kubelet's part for pods on it:

* ``bind`` (if the scheduler did not), ``mark_running``, ``terminate`` (exit
  code + termination message) -- enough for the Job and Deployment controllers;
* ``run``: run the pod's real command locally (see ``podrun``) and report the
  real exit code and termination message through the pod status;
* ``serve``: run a long-lived server pod on its own loopback address (its pod IP)
  and report it Ready while its readiness probe answers (see ``ServedPod``);
* ``auto``: a background driver that does one of those for every new pod
  matching a namespace + label selector;
* a reaper: pods on this node that get deleted are finished (their local
  process killed, status terminal) and force-deleted, as a kubelet would --
  otherwise they would stay Terminating forever and block namespace deletion.

Talks to the API as admin via ``rest.Rest`` (the kubelet's RBAC is not what
these tests are about).
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tests.cluster import podrun, process
from tests.cluster.rest import JSON, Rest, RestError

NODE_IP = "192.0.2.10"  # TEST-NET-1: looks like a real address, never routed to
POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")
MESSAGE_LIMIT = 4096  # the kubelet truncates termination messages to 4 KiB
FALLBACK_LOG_BYTES = 2048  # ... and FallbackToLogsOnError takes the log tail
POLL = 0.25  # seconds between the background loop's list calls

PROBE_PERIOD = 0.25  # seconds between readiness probes of a served pod
STOP_GRACE = 10.0  # longest a deleted served pod gets between SIGTERM and SIGKILL

AutoMode = Literal["run", "succeed", "ready", "serve"]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, status: bool, reason: str | None = None) -> JSON:
    condition = {
        "type": kind,
        "status": "True" if status else "False",
        "lastTransitionTime": _now(),
    }
    if reason:
        condition["reason"] = reason
    return condition


def _pod_path(namespace: str, name: str, sub: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}{sub}"


class PodRunTimeout(TimeoutError):
    """A locally run pod exceeded its timeout; it was killed and reported failed (exit 137)."""


@dataclass
class RunResult:
    """The outcome of :meth:`StandInNode.run`."""

    namespace: str
    pod: str
    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    message: str  # what was reported as the termination message
    command: podrun.LocalCommand

    def host_path(self, container_path: str) -> Path:
        """Host location of a path inside the container (e.g. a file written to a PVC)."""
        return self.command.host_path(container_path)

    def describe(self) -> str:
        return (
            f"{self.namespace}/{self.pod}: {' '.join(self.argv)} exited {self.exit_code}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}\n"
            f"--- message ---\n{self.message}"
        )


class StandInNode:
    """A Node without kubelet; see the module docstring. Call :meth:`close` to stop its thread."""

    def __init__(
        self, rest: Rest, workdir: Path, *, name: str = "standin-node", run_timeout: float = 300
    ) -> None:
        self.rest = rest
        self.name = name
        self.workdir = workdir
        # One directory per namespace/claim, shared by all pods for the whole session.
        self.claims_dir = workdir / "claims"
        self.run_timeout = run_timeout
        self._ips = itertools.count(2)
        self._processes: dict[str, subprocess.Popen[bytes]] = {}  # pod uid -> running local process
        self._served: dict[str, ServedPod] = {}  # pod uid -> a pod of mode "serve"
        self._loopback = _loopback_addresses()
        self._reaped: set[str] = set()
        self._drivers: list[AutoDriver] = []
        self.env_hooks: list[Callable[[JSON, dict[str, str]], None]] = []
        """Called with each served pod and its environment before it starts (may change it:
        ``tests.cluster.services`` points Service URLs at local forwarders)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="standin-pod")
        self._thread = threading.Thread(target=self._loop, name="standin-node", daemon=True)

    # ------------------------------------------------------------ the Node
    def register(self) -> None:
        """Create the Node, make it Ready and untainted, and start the background loop."""
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
        }
        try:
            self.rest.create("/api/v1/nodes", node)
        except RestError as e:
            if e.status != 409:
                raise
        # TaintNodesByCondition admission adds node.kubernetes.io/not-ready on
        # create; the node-lifecycle controller (not run) would lift it.
        self.rest.merge_patch(f"/api/v1/nodes/{self.name}", {"spec": {"taints": None}})
        resources = {"cpu": "16", "memory": "64Gi", "pods": "250", "ephemeral-storage": "200Gi"}
        ready = _condition("Ready", True, "KubeletReady")
        ready["lastHeartbeatTime"] = ready["lastTransitionTime"]
        self.rest.merge_patch(
            f"/api/v1/nodes/{self.name}/status",
            {
                "status": {
                    "capacity": resources,
                    "allocatable": resources,
                    "conditions": [ready]
                    + [
                        _condition(kind, False, f"KubeletHas{suffix}")
                        for kind, suffix in (
                            ("MemoryPressure", "SufficientMemory"),
                            ("DiskPressure", "NoDiskPressure"),
                            ("PIDPressure", "SufficientPID"),
                        )
                    ],
                    "addresses": [
                        {"type": "InternalIP", "address": NODE_IP},
                        {"type": "Hostname", "address": self.name},
                    ],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                    "nodeInfo": {
                        "machineID": "standin",
                        "systemUUID": "standin",
                        "bootID": "standin",
                        "kernelVersion": os.uname().release,
                        "osImage": "modelwerk stand-in",
                        "containerRuntimeVersion": "standin://1",
                        "kubeletVersion": "v1.34.4",
                        "kubeProxyVersion": "",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                    },
                }
            },
        )
        if not self._thread.is_alive():
            self._thread.start()

    def close(self) -> None:
        """Stop auto drivers and the background loop; kill local processes still running."""
        self.stop_auto()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with self._lock:
            procs = list(self._processes.values())
            served = list(self._served.values())
        for proc in procs:
            _kill(proc)
        for pod in served:
            pod.join(timeout=STOP_GRACE + 5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -------------------------------------------------------- pod driving
    def get_pod(self, namespace: str, name: str) -> JSON:
        return self.rest.get(_pod_path(namespace, name))

    def wait_for_pod(
        self,
        namespace: str,
        label_selector: str = "",
        *,
        name: str | None = None,
        timeout: float = 60,
        predicate: Callable[[JSON], bool] = lambda p: True,
    ) -> JSON:
        """Wait for a pod (by name, else the first matching the selector) to pass ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            if name:
                pod = self.rest.get_or_none(_pod_path(namespace, name))
                pods = [pod] if pod else []
            else:
                pods = self.rest.get(
                    f"/api/v1/namespaces/{namespace}/pods", labelSelector=label_selector
                )["items"]
            for pod in pods:
                if predicate(pod):
                    return pod
            if time.monotonic() > deadline:
                what = name or f"selector {label_selector!r}"
                raise TimeoutError(
                    f"no pod {what} in {namespace} matched within {timeout}s; saw "
                    f"{[(p['metadata']['name'], p.get('status', {}).get('phase')) for p in pods]}"
                )
            time.sleep(POLL)

    def bind(self, namespace: str, name: str) -> JSON:
        """Bind the pod to this node unless the scheduler already did; return the pod."""
        pod = self.get_pod(namespace, name)
        if not pod["spec"].get("nodeName"):
            binding = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.name},
            }
            try:
                self.rest.create(_pod_path(namespace, name, "/binding"), binding)
            except RestError as e:
                if e.status != 409:  # 409: the scheduler won the race
                    raise
            pod = self.get_pod(namespace, name)
        if pod["spec"].get("nodeName") != self.name:
            raise RuntimeError(
                f"pod {namespace}/{name} is bound to {pod['spec'].get('nodeName')!r},"
                f" not {self.name}"
            )
        return pod

    def mark_running(
        self, namespace: str, name: str, *, ready: bool = True, ip: str | None = None
    ) -> JSON:
        """Bind if needed and report all containers running (and Ready, unless ``ready=False``).

        The pod keeps the IP it has; a new pod gets ``ip`` or one from ``POD_NETWORK``.
        """
        pod = self.bind(namespace, name)
        status = pod.get("status") or {}
        ip = status.get("podIP") or ip or str(POD_NETWORK[next(self._ips)])
        started = status.get("startTime") or _now()
        containers = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": ready,
                "started": True,
                "restartCount": 0,
                "containerID": f"standin://{pod['metadata']['uid']}/{c['name']}",
                "state": {"running": {"startedAt": started}},
            }
            for c in pod["spec"]["containers"]
        ]
        return self._patch_status(
            pod,
            {
                "phase": "Running",
                "hostIP": NODE_IP,
                "hostIPs": [{"ip": NODE_IP}],
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "startTime": started,
                "conditions": self._conditions(ready=ready),
                "containerStatuses": containers,
            },
        )

    def terminate(
        self,
        namespace: str,
        name: str,
        exit_code: int = 0,
        message: str = "",
        *,
        reason: str | None = None,
        final: bool = False,
        init_statuses: list[JSON] | None = None,
        started: bool = True,
    ) -> JSON:
        """Report the first container terminated with ``exit_code`` and ``message``
        (``started=False``: it never started, an init container failed; ``init_statuses``:
        the ``initContainerStatuses`` to report with it).

        The phase becomes Succeeded/Failed when the restartPolicy lets the pod end
        (Never; OnFailure on success) or ``final``; otherwise the container shows
        as restarting (CrashLoopBackOff with lastState), as with a kubelet.
        """
        pod = self.get_pod(namespace, name)
        if not (pod.get("status") or {}).get("podIP"):
            pod = self.mark_running(namespace, name, ready=False)
        status = pod["status"]
        policy = pod["spec"].get("restartPolicy", "Always")
        ends = final or policy == "Never" or (policy == "OnFailure" and exit_code == 0)
        previous = {c["name"]: c for c in status.get("containerStatuses") or []}
        containers = []
        for index, c in enumerate(pod["spec"]["containers"]):
            code = exit_code if index == 0 else 0
            terminated = {
                "exitCode": code,
                "reason": reason or ("Completed" if code == 0 else "Error"),
                "startedAt": status.get("startTime") or _now(),
                "finishedAt": _now(),
                "containerID": f"standin://{pod['metadata']['uid']}/{c['name']}",
            }
            if index == 0 and message:
                terminated["message"] = message
            entry = {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": previous.get(c["name"], {}).get("restartCount", 0),
                "containerID": terminated["containerID"],
            }
            if not started:
                entry["state"] = {"waiting": {"reason": "PodInitializing"}}
            elif ends or code == 0:
                entry["state"] = {"terminated": terminated}
            else:
                entry["restartCount"] += 1
                entry["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
                entry["lastState"] = {"terminated": terminated}
            containers.append(entry)
        phase = ("Succeeded" if exit_code == 0 else "Failed") if ends else "Running"
        update: JSON = {
            "phase": phase,
            "conditions": self._conditions(
                ready=False, reason="PodCompleted" if ends else "ContainersNotReady"
            ),
            "containerStatuses": containers,
        }
        if init_statuses:
            update["initContainerStatuses"] = init_statuses
        return self._patch_status(pod, update)

    def run(self, namespace: str, name: str, *, timeout: float | None = None) -> RunResult:
        """Run the pod's containers locally and report the outcome through the pod status.

        Init containers run first, in order; one that fails ends the pod (Failed, its status
        under ``initContainerStatuses``). Native sidecars (init containers with
        ``restartPolicy: Always``) start in order and run beside the main container; once it
        exits they get SIGTERM, as from a kubelet, and up to the pod's grace period before
        SIGKILL. The first container is the main one (others are not run).

        Raises ``PodRunTimeout`` (after reporting exit 137) if it runs longer than ``timeout``.
        """
        pod = self.mark_running(namespace, name)
        uid = pod["metadata"]["uid"]
        pod_dir = self.workdir / "pods" / f"{namespace}_{name}_{uid[:8]}"
        limit = timeout or self.run_timeout
        grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        init_statuses: list[JSON] = []
        sidecars: list[tuple[JSON, podrun.LocalCommand, subprocess.Popen[bytes]]] = []
        container = pod["spec"]["containers"][0]
        try:
            for init in pod["spec"].get("initContainers") or []:
                command = podrun.prepare(pod, pod_dir, self.claims_dir, self._read, init)
                if init.get("restartPolicy") == "Always":
                    proc = self._spawn(f"{uid}/{init['name']}", command, pod_dir, init["name"])
                    sidecars.append((init, command, proc))
                    self._await_startup(pod, pod_dir, init)
                    continue
                ended = self._run_container(
                    f"{uid}/{init['name']}", init, command, pod_dir, limit, init["name"]
                )
                init_statuses.append(_init_status(init, ended.exit_code, ended.message))
                if ended.exit_code != 0:
                    init_statuses += self._stop_sidecars(sidecars, pod_dir, grace)
                    sidecars = []
                    result = ended.result(namespace, name, command)
                    print(f"[standin] init container failed: {result.describe()}", file=sys.stderr)
                    self.terminate(
                        namespace,
                        name,
                        ended.exit_code,
                        "",
                        final=True,
                        init_statuses=init_statuses,
                        started=False,
                    )
                    return result
            command = podrun.prepare(pod, pod_dir, self.claims_dir, self._read)
            ended = self._run_container(uid, container, command, pod_dir, limit, "main")
        finally:
            init_statuses += self._stop_sidecars(sidecars, pod_dir, grace)
        result = ended.result(namespace, name, command)
        if ended.exit_code != 0:
            # Shown by pytest for a failing test (captured stderr).
            print(f"[standin] {result.describe()}", file=sys.stderr)
        if (
            self.rest.get_or_none(_pod_path(namespace, name)) is not None
        ):  # deleted meanwhile: nothing to report
            self.terminate(
                namespace,
                name,
                ended.exit_code,
                ended.message,
                init_statuses=init_statuses or None,
            )
        if ended.timed_out:
            raise PodRunTimeout(
                f"pod {namespace}/{name} ran longer than {limit}s\n{result.describe()}"
            )
        return result

    def _await_startup(self, pod: JSON, pod_dir: Path, sidecar: JSON) -> None:
        """A sidecar's exec startup probe, run until it passes: the kubelet starts the next
        container only then. Without a probe a sidecar counts as started at once."""
        probe = sidecar.get("startupProbe") or {}
        if "exec" not in probe:
            return
        check = podrun.prepare(
            pod,
            pod_dir,
            self.claims_dir,
            self._read,
            sidecar | {"command": probe["exec"]["command"], "args": []},
        )
        period = float(probe.get("periodSeconds", 10))
        for _ in range(int(probe.get("failureThreshold", 3))):
            done = subprocess.run(check.argv, env=check.env, cwd=check.cwd, check=False)
            if done.returncode == 0:
                return
            time.sleep(min(period, 0.2))  # poll faster than the kubelet: tests wait less
        raise podrun.UnsupportedPodSpec(
            f"sidecar {sidecar['name']!r} never passed its startupProbe"
        )

    def _spawn(
        self, key: str, command: podrun.LocalCommand, pod_dir: Path, tag: str
    ) -> subprocess.Popen[bytes]:
        with (
            open(pod_dir / _log("stdout", tag), "wb") as out,
            open(pod_dir / _log("stderr", tag), "wb") as err,
        ):
            proc = subprocess.Popen(
                command.argv,
                env=command.env,
                cwd=command.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        with self._lock:
            self._processes[key] = proc
        return proc

    def _run_container(
        self,
        key: str,
        container: JSON,
        command: podrun.LocalCommand,
        pod_dir: Path,
        limit: float,
        tag: str,
    ) -> _Ended:
        proc = self._spawn(key, command, pod_dir, tag)
        try:
            code = proc.wait(timeout=limit)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill(proc)
            code, timed_out = proc.wait(), True
        finally:
            with self._lock:
                self._processes.pop(key, None)
        ended = self._ended(container, command, pod_dir, tag, code)
        if timed_out:
            ended.message = ended.message or f"stand-in: killed after {limit}s timeout"
            ended.timed_out = True
        return ended

    def _ended(
        self, container: JSON, command: podrun.LocalCommand, pod_dir: Path, tag: str, code: int
    ) -> _Ended:
        exit_code = _exit_code(code)
        stdout = (pod_dir / _log("stdout", tag)).read_text(errors="replace")
        stderr = (pod_dir / _log("stderr", tag)).read_text(errors="replace")
        message = command.termination_log.read_bytes()[:MESSAGE_LIMIT].decode(errors="replace")
        message = _termination_message(container, exit_code, stdout + stderr, message)
        return _Ended(exit_code, stdout, stderr, message)

    def _stop_sidecars(
        self,
        sidecars: list[tuple[JSON, podrun.LocalCommand, subprocess.Popen[bytes]]],
        pod_dir: Path,
        grace: float,
    ) -> list[JSON]:
        """SIGTERM in reverse order, as the kubelet stops sidecars after the main container."""
        statuses = []
        for container, command, proc in reversed(sidecars):
            process.signal_group(proc.pid, signal.SIGTERM)
            try:
                code = proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _kill(proc)
                code = proc.wait()
            with self._lock:
                self._processes = {k: v for k, v in self._processes.items() if v is not proc}
            ended = self._ended(container, command, pod_dir, container["name"], code)
            statuses.append(_init_status(container, ended.exit_code, ended.message))
        return list(reversed(statuses))

    def serve(self, namespace: str, name: str) -> ServedPod:
        """Run the pod's first container as a server on a loopback address of its own.

        The address (``127.x.y.z``: all of 127/8 reaches ``lo`` on Linux) becomes the pod IP and
        ``--host <ip>`` is appended to the command, so pods listening on the same port do not
        collide. The pod is Running at once and Ready while its readiness probe (HTTP GET on
        that IP, else the startup probe; without probes: while the process runs) answers
        2xx/3xx, as with a kubelet. A process that exits shows as terminated (a restarting
        container for ``restartPolicy: Always``) and is not restarted; deleting the pod stops
        it (SIGTERM, then SIGKILL) before the pod is removed.
        """
        pod = self.bind(namespace, name)
        container = pod["spec"]["containers"][0]
        probe = _http_probe(container)
        ip = self._free_loopback(probe[1] if probe else _first_port(container))
        pod = self.mark_running(namespace, name, ready=False, ip=ip)
        ip = pod["status"]["podIP"]
        uid = pod["metadata"]["uid"]
        pod_dir = self.workdir / "pods" / f"{namespace}_{name}_{uid[:8]}"
        command = podrun.prepare(pod, pod_dir, self.claims_dir, self._read)
        for hook in list(self.env_hooks):
            hook(pod, command.env)
        served = ServedPod(self, pod, pod_dir, command, [*command.argv, "--host", ip], probe)
        with self._lock:
            self._served[uid] = served
        served.start()
        return served

    # ------------------------------------------------------------ auto mode
    def auto(self, namespace: str, label_selector: str = "", mode: AutoMode = "run") -> AutoDriver:
        """Handle each new pending pod matching the selector in the background.

        ``mode``: "run" its command, "succeed" (exit 0 at once), "ready" (Running and Ready)
        or "serve" (run it as a server on its own loopback IP, see :meth:`serve`).
        """
        driver = AutoDriver(self, namespace, label_selector, mode)
        with self._lock:
            self._drivers.append(driver)
        return driver

    def stop_auto(self) -> None:
        """Stop all auto drivers (called after each test by the ``node`` fixture)."""
        with self._lock:
            drivers, self._drivers = self._drivers, []
        for driver in drivers:
            driver.stopped = True

    # ------------------------------------------------------------ internals
    def _conditions(self, *, ready: bool, reason: str | None = None) -> list[JSON]:
        return [
            _condition("PodReadyToStartContainers", True),
            _condition("Initialized", True),
            _condition("Ready", ready, reason if not ready else None),
            _condition("ContainersReady", ready, reason if not ready else None),
            _condition("PodScheduled", True),
        ]

    def _patch_status(self, pod: JSON, status: JSON) -> JSON:
        meta = pod["metadata"]
        return self.rest.merge_patch(
            _pod_path(meta["namespace"], meta["name"], "/status"), {"status": status}
        )

    def _read(self, kind: str, namespace: str, name: str) -> JSON | None:
        plural = {"ConfigMap": "configmaps", "Secret": "secrets"}[kind]
        return self.rest.get_or_none(f"/api/v1/namespaces/{namespace}/{plural}/{name}")

    def _loop(self) -> None:
        """Background: reap deleted pods, feed auto drivers. Errors are printed, never fatal."""
        while not self._stop.wait(POLL):
            try:
                self._reap()
                with self._lock:
                    drivers = list(self._drivers)
                for driver in drivers:
                    driver.poll()
            except Exception as e:  # the API may be going away at session end
                if not self._stop.is_set():
                    print(f"[standin] background loop: {e!r}", file=sys.__stderr__)

    def _reap(self) -> None:
        pods = self.rest.get("/api/v1/pods", fieldSelector=f"spec.nodeName={self.name}")["items"]
        for pod in pods:
            meta = pod["metadata"]
            if not meta.get("deletionTimestamp") or meta["uid"] in self._reaped:
                continue
            with self._lock:
                # The main container's process, and its sidecars' ("<uid>/<container>").
                procs = [
                    p
                    for key, p in self._processes.items()
                    if key == meta["uid"] or key.startswith(f"{meta['uid']}/")
                ]
                served = self._served.get(meta["uid"])
            if served is not None and served.alive():
                served.delete()  # it stops its server gracefully, then removes the pod
                self._reaped.add(meta["uid"])
                continue
            for proc in procs:
                _kill(proc)
            if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                # Like the kubelet: the pod ends (SIGKILLed containers) before it goes.
                self._ignore_gone(
                    self.terminate, meta["namespace"], meta["name"], 137, reason="Error", final=True
                )
            self._force_delete(pod)
            self._reaped.add(meta["uid"])

    def _force_delete(self, pod: JSON) -> None:
        meta = pod["metadata"]
        self._ignore_gone(
            self.rest.delete,
            _pod_path(meta["namespace"], meta["name"]),
            {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
        )

    @staticmethod
    def _ignore_gone(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """``call``, unless the pod is gone already (404) or is another pod by now (409)."""
        try:
            call(*args, **kwargs)
        except RestError as e:
            if e.status not in (404, 409):
                raise

    def _free_loopback(self, port: int | None) -> str:
        """The next loopback address whose ``port`` nothing listens on (another test session
        on this machine may be serving pods, too)."""
        while True:
            with self._lock:
                ip = next(self._loopback)
            if port is None:
                return ip
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((ip, port))
                except OSError:
                    continue
            return ip


class AutoDriver:
    """Runs, completes or readies each new pending pod of a namespace + selector (``node.auto``)."""

    def __init__(
        self, node: StandInNode, namespace: str, label_selector: str, mode: AutoMode
    ) -> None:
        self.node = node
        self.namespace = namespace
        self.label_selector = label_selector
        self.mode = mode
        self.stopped = False
        self.results: dict[str, RunResult] = {}  # pod name -> outcome (mode "run")
        self.served: dict[str, ServedPod] = {}  # pod name -> its server (mode "serve")
        self.errors: dict[str, BaseException] = {}
        self._seen: set[str] = set()
        self._done = threading.Condition()

    def poll(self) -> None:
        if self.stopped:
            return
        pods = self.node.rest.get(
            f"/api/v1/namespaces/{self.namespace}/pods", labelSelector=self.label_selector
        )["items"]
        for pod in pods:
            meta = pod["metadata"]
            if meta["uid"] in self._seen or meta.get("deletionTimestamp"):
                continue
            if pod.get("status", {}).get("phase", "Pending") != "Pending":
                continue
            self._seen.add(meta["uid"])
            self.node._pool.submit(self._handle, meta["name"])

    def _handle(self, name: str) -> None:
        try:
            if self.mode == "run":
                self.results[name] = self.node.run(self.namespace, name)
            elif self.mode == "succeed":
                self.node.terminate(self.namespace, name, 0)
            elif self.mode == "serve":
                self.served[name] = self.node.serve(self.namespace, name)
            else:
                self.node.mark_running(self.namespace, name)
        except BaseException as e:  # kept for wait_for(); the test decides
            self.errors[name] = e
        with self._done:
            self._done.notify_all()

    def wait_for(self, name: str, timeout: float = 120) -> RunResult:
        """Wait for the run of pod ``name`` (mode "run") and return it; re-raise its error."""
        deadline = time.monotonic() + timeout
        with self._done:
            while name not in self.results and name not in self.errors:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"auto driver ({self.namespace}, {self.label_selector!r}) did not finish "
                        f"pod {name} within {timeout}s; finished: {sorted(self.results)}"
                    )
                self._done.wait(left)
        if name in self.errors:
            raise self.errors[name]
        return self.results[name]

    def stop(self) -> None:
        self.stopped = True

    def __enter__(self) -> AutoDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill(proc: subprocess.Popen[Any]) -> None:
    process.signal_group(proc.pid, signal.SIGKILL)  # its own session: the whole group


class ServedPod:
    """A pod whose server runs locally on its own loopback IP (``node.serve``).

    One supervisor thread per pod starts the process (so that PR_SET_PDEATHSIG, tied to the
    forking thread, lasts as long as the pod), probes readiness, reports a process that exits,
    and stops the process and removes the pod once the pod is deleted.
    """

    def __init__(
        self,
        node: StandInNode,
        pod: JSON,
        pod_dir: Path,
        command: podrun.LocalCommand,
        argv: list[str],
        probe: tuple[str, int] | None,
    ) -> None:
        self.node = node
        self.namespace: str = pod["metadata"]["namespace"]
        self.name: str = pod["metadata"]["name"]
        self.uid: str = pod["metadata"]["uid"]
        self.ip: str = pod["status"]["podIP"]
        self.argv = argv
        self.command = command
        self.log_path = pod_dir / "server.log"
        self.exit_code: int | None = None
        """Set once the process ended."""
        self._pod = pod
        self._probe = probe
        self._process: process.ManagedProcess | None = None
        self._started = threading.Event()
        self._deleted = threading.Event()
        self._thread = threading.Thread(
            target=self._supervise, name=f"standin-serve-{self.name}", daemon=True
        )

    @property
    def pid(self) -> int:
        """The server's process id (its process group leader)."""
        self._started.wait(30)
        if self._process is None:
            raise RuntimeError(f"{self.namespace}/{self.name} did not start: {self.log()}")
        return self._process.pid

    def start(self) -> None:
        self._thread.start()
        self._started.wait(30)

    def alive(self) -> bool:
        """The supervisor still runs: it will stop the process and remove the pod on deletion."""
        return self._thread.is_alive()

    def delete(self) -> None:
        """The pod was deleted: stop the server, report it terminated, remove the pod."""
        self._deleted.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def log(self, lines: int = 40) -> str:
        return self._process.tail(lines) if self._process else "(not started)"

    def _supervise(self) -> None:
        try:
            self._run()
        except Exception as e:  # printed, never raised into the node's loop
            if not self.node._stop.is_set():
                print(f"[standin] serving {self.namespace}/{self.name}: {e!r}", file=sys.__stderr__)
        finally:
            self._started.set()
            if self._process is not None and self._process.alive():
                self._process.stop(timeout=STOP_GRACE)

    def _run(self) -> None:
        c = self.command
        try:
            self._process = process.ManagedProcess(
                f"pod-{self.namespace}-{self.name}", self.argv, self.log_path, env=c.env, cwd=c.cwd
            )
        except OSError as e:
            c.termination_log.write_text(f"stand-in: cannot start {self.argv[0]}: {e}")
            self._report_exit(128)
            return
        finally:
            self._started.set()
        proc = self._process
        ready = False
        while not self._deleted.is_set() and not self.node._stop.is_set():
            code = proc.popen.poll()
            if code is not None:
                self._report_exit(code)
                break
            now_ready = self._ready()
            if now_ready != ready:
                ready = now_ready
                self.node._ignore_gone(
                    self.node.mark_running, self.namespace, self.name, ready=ready, ip=self.ip
                )
            self._deleted.wait(PROBE_PERIOD)
        # Stays until the pod is deleted (or the node closes): the pod's status is its record.
        while not self._deleted.wait(PROBE_PERIOD):
            if self.node._stop.is_set():
                return
        grace = min(float(self._pod["spec"].get("terminationGracePeriodSeconds", 30)), STOP_GRACE)
        code = proc.stop(timeout=grace) if proc.alive() else proc.popen.wait()
        if self.exit_code is None:
            self.exit_code = _exit_code(code)
            self.node._ignore_gone(
                self.node.terminate,
                self.namespace,
                self.name,
                self.exit_code,
                self._message(self.exit_code),
                reason="Completed" if self.exit_code == 0 else "Error",
                final=True,
            )
        self.node._force_delete(self._pod)

    def _report_exit(self, code: int) -> None:
        self.exit_code = _exit_code(code)
        if self.exit_code != 0:
            print(
                f"[standin] {self.namespace}/{self.name}: {' '.join(self.argv)} exited "
                f"{self.exit_code}\n{self.log()}",
                file=sys.stderr,
            )
        self.node._ignore_gone(
            self.node.terminate,
            self.namespace,
            self.name,
            self.exit_code,
            self._message(self.exit_code),
        )

    def _message(self, exit_code: int) -> str:
        c = self.command
        message = c.termination_log.read_bytes()[:MESSAGE_LIMIT].decode(errors="replace")
        output = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return _termination_message(self._pod["spec"]["containers"][0], exit_code, output, message)

    def _ready(self) -> bool:
        if self._probe is None:
            return True  # no readiness probe: Ready once the container runs
        path, port = self._probe
        connection = http.client.HTTPConnection(self.ip, port, timeout=1)
        try:
            connection.request("GET", path)
            return 200 <= connection.getresponse().status < 400
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()


def _loopback_addresses() -> Iterator[str]:
    """127.a.b.c from a block chosen by the process id, so that test sessions running side by
    side on one machine mostly use different addresses (``_free_loopback`` checks anyway)."""
    block = 16 + os.getpid() % 200
    for b in range(256):
        for c in range(2, 255):
            yield f"127.{block}.{b}.{c}"
    raise RuntimeError("the stand-in ran out of loopback addresses")


def _http_probe(container: JSON) -> tuple[str, int] | None:
    """(path, port) of the container's readiness probe, else its startup probe, if HTTP."""
    for kind in ("readinessProbe", "startupProbe"):
        get = (container.get(kind) or {}).get("httpGet")
        if get:
            return get.get("path", "/"), _resolve_port(container, get["port"])
    return None


def _resolve_port(container: JSON, port: int | str) -> int:
    if isinstance(port, int) or port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise podrun.UnsupportedPodSpec(f"probe port {port!r} is not a port of the container")


def _first_port(container: JSON) -> int | None:
    ports = container.get("ports") or []
    return int(ports[0]["containerPort"]) if ports else None


@dataclass
class _Ended:
    exit_code: int
    stdout: str
    stderr: str
    message: str
    timed_out: bool = False

    def result(self, namespace: str, pod: str, command: podrun.LocalCommand) -> RunResult:
        return RunResult(
            namespace, pod, command.argv, self.exit_code, self.stdout, self.stderr,
            self.message, command,
        )  # fmt: skip


def _log(stream: str, tag: str) -> str:
    """The main container's output is ``stdout``/``stderr``; others' carry their name."""
    return stream if tag == "main" else f"{stream}-{tag}"


def _init_status(container: JSON, exit_code: int, message: str) -> JSON:
    terminated: JSON = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": _now(),
        "finishedAt": _now(),
    }
    if message:
        terminated["message"] = message
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {"terminated": terminated},
    }


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal N: 128+N, as runtimes report


def _termination_message(container: JSON, exit_code: int, output: str, message: str) -> str:
    """What the kubelet reports: the termination message file, else with
    FallbackToLogsOnError and a failure the tail of the output."""
    if (
        not message
        and exit_code != 0
        and container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
    ):
        message = output.encode()[-FALLBACK_LOG_BYTES:].decode(errors="replace")
    return message
