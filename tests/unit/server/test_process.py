"""The real thing: `modelwerk serve` as a process with uvicorn, over HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .helpers import Artifact, v2_matrix


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """``modelwerk serve`` with ``args`` as a process in a session of its own, Ready."""

    def __init__(self, args: list[str], tmp_path: Path, **env: str) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        clean = {
            k: v for k, v in os.environ.items() if not k.startswith(("MODELWERK_", "PROMETHEUS_"))
        }
        self.log_path = tmp_path / "server.log"
        self.log = self.log_path.open("wb")
        cmd = [
            sys.executable,
            "-m",
            "modelwerk",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        self.proc = subprocess.Popen(
            [*cmd, *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**clean, **env},
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while True:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                if httpx.get(f"{self.base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server not ready in 90 s"
            time.sleep(0.2)

    def terminate(self) -> int:
        """SIGTERM, as a kubelet sends it; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("the server did not stop on SIGTERM")
        finally:
            self.log.close()


def test_serve_process_with_two_workers(iris: Artifact, tmp_path: Path) -> None:
    args = ["--model-uri", iris.model_uri, "--sha256", iris.sha256, "--name", "iris"]
    server = Served([*args, "--version", "v1", "--workers", "2"], tmp_path)
    base = server.base
    try:
        rows = iris.frame.iloc[:3]
        for i in range(20):  # a new connection each time, so both workers get some
            response = httpx.post(f"{base}/v2/models/iris/infer", json=v2_matrix(rows, id=f"p{i}"))
            assert response.status_code == 200, response.text
            assert response.json()["outputs"][0]["data"] == iris.estimator.predict(rows).tolist()
            assert response.headers["x-request-id"] == f"p{i}"
        assert httpx.post(f"{base}/v2/models/iris/infer", content=b"{").status_code == 400
        text = httpx.get(f"{base}/metrics").text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        labels = (("code", "200"), ("model", "iris"), ("protocol", "v2"), ("version", "v1"))
        # multiprocess mode: whichever worker answers the scrape reports both workers' requests
        assert samples[("modelwerk_model_requests_total", labels)] == 20
    finally:
        code = server.terminate()
    assert code == 0, server.log_path.read_text()
