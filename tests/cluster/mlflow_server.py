"""A real MLflow tracking server for the tracking tests: ``mlflow server`` from the dev extra,
SQLite backend, artifacts proxied (``--serve-artifacts``, MLflow's default) into a temporary
directory, on a free 127.0.0.1 port, in its own process group (stopped with the session)."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster.controlplane import free_port
from tests.cluster.process import ManagedProcess


@dataclass
class MlflowServer:
    url: str
    artifacts: Path
    process: ManagedProcess
    start_seconds: float

    def get(self, endpoint: str, **query: str) -> dict[str, Any]:
        """A GET of the REST API (``runs/get``, ``experiments/get-by-name``, …)."""
        from urllib.parse import urlencode

        url = f"{self.url}/api/2.0/mlflow/{endpoint}" + (f"?{urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            loaded: dict[str, Any] = json.loads(response.read())
            return loaded

    def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/api/2.0/mlflow/{endpoint}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            loaded: dict[str, Any] = json.loads(response.read())
            return loaded

    def stop(self) -> None:
        self.process.stop()


def start(workdir: Path, timeout: float = 120.0) -> MlflowServer:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    artifacts = workdir / "artifacts"
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    started = time.monotonic()
    process = ManagedProcess("mlflow", argv, workdir / "mlflow.log", cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        if not process.alive() or time.monotonic() - started > timeout:
            process.stop()
            raise RuntimeError(f"mlflow server did not start:\n{process.tail()}")
        time.sleep(0.2)
    return MlflowServer(url, artifacts, process, time.monotonic() - started)
