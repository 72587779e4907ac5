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


def test_serve_process_with_two_workers(iris: Artifact, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELWERK_", "PROMETHEUS_"))}
    log = (tmp_path / "server.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "modelwerk",
        "serve",
        "--model-uri",
        iris.model_uri,
        "--sha256",
        iris.sha256,
        "--name",
        "iris",
        "--version",
        "v1",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server not ready in 90 s"
            time.sleep(0.2)
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
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("the server did not stop on SIGTERM")
        log.close()
    assert code == 0, (tmp_path / "server.log").read_text()
