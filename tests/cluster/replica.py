"""Operator replicas as real processes (``python -m modelwerk run``), for leader election tests.

Owns: starting one operator process with its own ServiceAccount token (same account and
RBAC as the in-process operator, but a token of its own, so the API server's audit log can
tell the replicas apart), its own metrics and health ports, and the ways a replica ends:
``terminate()`` (SIGTERM: graceful, the Lease is released), ``kill()`` (SIGKILL: a crash,
nothing released), ``freeze()``/``thaw()`` (SIGSTOP/SIGCONT: a replica that stops being
scheduled, or is cut off, and comes back). Separate processes rather than in-process
operators: environment, metrics registry and signal handling are per process.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.cluster import process
from tests.cluster.controlplane import ControlPlane, free_port
from tests.cluster.install import write_operator_kubeconfig


class Replica:
    def __init__(
        self, cp: ControlPlane, name: str, *, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.kubeconfig = write_operator_kubeconfig(cp, cp.workdir / f"replica-{name}.kubeconfig")
        self.credential_id = f"JTI={_jti(self.kubeconfig)}"
        """How the API server's audit log names this replica's token."""
        self.metrics_port = free_port()
        self.log_path = cp.workdir / f"replica-{name}.log"
        self.env = {
            **os.environ,
            "MODELWERK_KUBECONFIG": str(self.kubeconfig),
            "MODELWERK_IDENTITY": name,
            "MODELWERK_LEADER_ELECTION": "true",
            "MODELWERK_METRICS_PORT": str(self.metrics_port),
            "MODELWERK_HEALTH_PORT": str(free_port()),
            **(env or {}),
        }
        self.proc: process.ManagedProcess | None = None

    def start(self) -> None:
        self.proc = process.ManagedProcess(
            f"replica-{self.name}",
            [sys.executable, "-m", "modelwerk", "run"],
            self.log_path,
            env=self.env,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def terminate(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait: kopf runs the cleanup handlers, which release the Lease."""
        if self.proc is None:
            return None
        return self.proc.stop(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: the replica ends mid-flight, as in a node or OOM failure."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.popen.wait(timeout=10)

    def freeze(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def metrics(self) -> dict[str, float]:
        """Samples of its /metrics, keyed ``name{label="value",...}`` (labels sorted)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return samples

    def leading(self) -> bool:
        return self.metrics().get("modelwerk_leader") == 1.0

    def reconciles(self) -> float:
        return sum(
            v for k, v in self.metrics().items() if k.startswith("modelwerk_reconcile_total")
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _jti(kubeconfig: Path) -> str:
    config = json.loads(kubeconfig.read_text())
    token: str = config["users"][0]["user"]["token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])
