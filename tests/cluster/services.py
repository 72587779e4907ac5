"""A kube-proxy stand-in: makes a ClusterIP Service reachable from served pods.

The stand-in node has no kube-proxy, so a Service's cluster IP (from the control plane's
service range) routes nowhere. Pods that call a Service by the URL in their environment (a
stable pod copying requests to ``<name>-shadow``) get it here: :meth:`ServiceProxies.rewrite`,
installed as a node environment hook, replaces ``http://<cluster IP or name.namespace.svc>:<port>``
with a local forwarder on 127.0.0.1. The forwarder picks, for each connection, a random Ready
pod among the Service's endpoints as they are then (selector, not being deleted, with an IP)
and pipes bytes both ways; with no endpoint it closes the connection, as a Service without
endpoints refuses it.
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import threading
from typing import Any

from tests.cluster.rest import JSON, Rest

_URL = re.compile(r"http://([A-Za-z0-9.-]+):(\d+)")


class _Forwarder:
    def __init__(self, rest: Rest, namespace: str, service: str, port: int) -> None:
        self.rest, self.namespace, self.service, self.port = rest, namespace, service, port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = self._listener.getsockname()
        self._closed = threading.Event()
        self._rng = random.Random(0)
        threading.Thread(target=self._accept, name=f"proxy-{service}", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _endpoint(self) -> tuple[str, int] | None:
        svc = self.rest.get(f"/api/v1/namespaces/{self.namespace}/services/{self.service}")
        selector = ",".join(f"{k}={v}" for k, v in (svc["spec"].get("selector") or {}).items())
        target = next(
            (
                p.get("targetPort", p["port"])
                for p in svc["spec"]["ports"]
                if p["port"] == self.port
            ),
            self.port,
        )
        pods = self.rest.get(f"/api/v1/namespaces/{self.namespace}/pods", labelSelector=selector)
        ready = [p for p in pods["items"] if _ready(p)]
        if not ready:
            return None
        pod = self._rng.choice(ready)
        return pod["status"]["podIP"], _port(pod, target)

    def _connect(self, client: socket.socket) -> None:
        try:
            endpoint = self._endpoint()
            if endpoint is None:
                client.close()
                return
            upstream = socket.create_connection(endpoint, timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
        _pipe(upstream, client)


class ServiceProxies:
    """Forwarders for the Services pods name in their environment (see the module docstring)."""

    def __init__(self, rest: Rest) -> None:
        self.rest = rest
        self._forwarders: dict[tuple[str, str, int], _Forwarder] = {}
        self._lock = threading.Lock()

    def rewrite(self, pod: JSON, env: dict[str, str]) -> None:
        """Point every Service URL in ``env`` at a local forwarder (a node environment hook)."""
        namespace = pod["metadata"]["namespace"]
        for name, value in list(env.items()):
            env[name] = _URL.sub(lambda m: self._local(namespace, m) or m.group(0), value)

    def close(self) -> None:
        with self._lock:
            for forwarder in self._forwarders.values():
                forwarder.close()
            self._forwarders.clear()

    def _local(self, namespace: str, match: re.Match[str]) -> str | None:
        host, port = match.group(1), int(match.group(2))
        service = self._service(namespace, host)
        if service is None:
            return None
        key = (service[0], service[1], port)
        with self._lock:
            if key not in self._forwarders:
                self._forwarders[key] = _Forwarder(self.rest, *key)
            ip, local_port = self._forwarders[key].address
        return f"http://{ip}:{local_port}"

    def _service(self, namespace: str, host: str) -> tuple[str, str] | None:
        parts = host.split(".")
        if len(parts) >= 3 and parts[2] == "svc":
            return parts[1], parts[0]
        services = self.rest.get(f"/api/v1/namespaces/{namespace}/services")["items"]
        for svc in services:
            if svc["spec"].get("clusterIP") == host:
                return namespace, svc["metadata"]["name"]
        return None


def _ready(pod: JSON) -> bool:
    status = pod.get("status") or {}
    return (
        not pod["metadata"].get("deletionTimestamp")
        and bool(status.get("podIP"))
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
    )


def _port(pod: JSON, target: Any) -> int:
    if isinstance(target, int):
        return target
    for container in pod["spec"]["containers"]:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    raise ValueError(f"pod {pod['metadata']['name']} has no port named {target}")


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
