"""A real S3-compatible server for the test tiers: versitygw over a temporary directory.

Owns: getting the binary (``hack/tools.py``: pinned by hack/s3, built once, cached), starting
it on a free port of a given address with fresh random credentials, waiting until it answers,
creating buckets, and always stopping it (its own process group, dying with the test runner like every
component of the harness). ``pause()``/``resume()`` stop and restart it on the same port and
data, for tests of a store that goes away.

versitygw keeps each bucket as a directory and each object as a file under ``data_dir``;
object metadata goes to a sidecar directory, so no filesystem xattr support is needed.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.hack import script
from tests.cluster.process import ManagedProcess

REGION = "us-east-1"


def ensure_versitygw() -> Path:
    """The versitygw binary (hack/tools.py), built into the cache the first time."""
    path: Path = script("tools.py").ensure("versitygw")
    return path


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class S3Server:
    """A running versitygw; ``endpoint`` is what clients (and pods) use."""

    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    access_key: str = field(default_factory=lambda: "mw" + secrets.token_hex(8))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    region: str = REGION
    process: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def credentials(self) -> dict[str, str]:
        """The AWS-style keys of a Secret (and of a process environment) for this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def start(self, timeout: float = 30) -> None:
        binary = ensure_versitygw()
        for directory in (self.data_dir, self.workdir / "meta"):
            directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = _free_port(self.host)
        meta = str(self.workdir / "meta")
        argv = [str(binary), "--port", f"{self.host}:{self.port}", "--region", self.region]
        argv += ["--quiet", "posix", "--sidecar", meta, str(self.data_dir)]
        self.process = ManagedProcess(
            "versitygw",
            argv,
            self.workdir / "versitygw.log",
            # The root account's keys go through the environment, never the command line
            # (which any local user can read in /proc).
            env={"ROOT_ACCESS_KEY_ID": self.access_key, "ROOT_SECRET_ACCESS_KEY": self.secret_key},
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if not self.process.alive():
                raise RuntimeError(f"versitygw exited at start-up:\n{self.process.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"versitygw did not answer within {timeout}s")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                sock.sendall(b"GET / HTTP/1.0\r\nHost: s3\r\n\r\n")
                return sock.recv(12).startswith(b"HTTP/")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def pause(self) -> None:
        """Take the store away (connections are refused); its data stays."""
        self.stop()

    def resume(self) -> None:
        self.start()

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (the server's own listing, paginated)."""
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def secret(self, name: str) -> dict[str, Any]:
        """A Kubernetes Secret holding this server's keys, the AWS way."""
        return {"metadata": {"name": name}, "stringData": self.credentials}


@contextlib.contextmanager
def running_s3(
    workdir: Path, *, host: str = "127.0.0.1", buckets: tuple[str, ...] = ()
) -> Iterator[S3Server]:
    """A versitygw for the duration of the block, with ``buckets`` created; always stopped."""
    server = S3Server(workdir, host=host)
    try:
        server.start()
        for bucket in buckets:
            server.create_bucket(bucket)
        yield server
    finally:
        server.stop()
