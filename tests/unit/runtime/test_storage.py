"""The runtime's storage helpers: joins that stay under their root, remote artifacts downloaded
and verified before anything reads them, a data source's own credentials, and a store that is
down failing in bounded time.

``memory://`` (fsspec's in-process filesystem) stands in for a remote store here: it is not
local, so it takes the download path. The real S3 server is in tests/integration.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from modelwerk.runtime import storage


@pytest.fixture
def remote() -> Iterator[str]:
    fs = fsspec.filesystem("memory")
    base = f"memory://test-{os.getpid()}-{time.monotonic_ns()}"
    yield base
    if fs.exists(base.removeprefix("memory://")):
        fs.rm(base.removeprefix("memory://"), recursive=True)


@pytest.mark.parametrize(
    "parts",
    [("..",), ("models/../../team-b",), ("a", "..", "b"), ("captures/ns/../../../x",)],
)
def test_joins_refuse_to_climb_out_of_the_root(parts: tuple[str, ...]) -> None:
    with pytest.raises(storage.StorageError, match=r"'\.\.' segments"):
        storage.join("s3://ml/team-a", *parts)


def test_absolute_and_odd_parts_stay_under_the_root() -> None:
    assert storage.join("s3://ml/team-a/", "/etc/passwd") == "s3://ml/team-a/etc/passwd"
    assert storage.join("pvc://c", "./a//b/", ".") == "pvc://c/a/b"
    assert storage.join("s3://ml/team-a", "x..y", "...") == "s3://ml/team-a/x..y/..."


def test_a_remote_artifact_is_downloaded_verified_and_kept_local(
    remote: str, tmp_path: Path
) -> None:
    data = os.urandom(3 << 20)  # more than one read chunk
    sha = hashlib.sha256(data).hexdigest()
    uri = f"{remote}/models/m/{sha}/model.joblib"
    with storage.open_uri(uri, "wb") as handle:
        handle.write(data)
    local = storage.fetch_verified(uri, sha, str(tmp_path))
    assert local == str(tmp_path / sha / "model.joblib")
    assert Path(local).read_bytes() == data
    assert [p.name for p in (tmp_path / sha).iterdir()] == ["model.joblib"]  # no partial left
    # A second process of the pod (a server worker) finds the copy instead of downloading.
    fsspec.filesystem("memory").rm(uri.removeprefix("memory://"))
    assert storage.fetch_verified(uri, sha, str(tmp_path)) == local


def test_altered_bytes_are_never_left_where_a_loader_would_find_them(
    remote: str, tmp_path: Path
) -> None:
    uri = f"{remote}/models/m/x/model.joblib"
    with storage.open_uri(uri, "wb") as handle:
        handle.write(b"not the registered model")
    expected = hashlib.sha256(b"the registered model").hexdigest()
    with pytest.raises(storage.ChecksumMismatch, match="was altered"):
        storage.fetch_verified(uri, expected, str(tmp_path))
    assert list((tmp_path / expected).iterdir()) == []


def test_local_uris_are_read_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELWERK_PVC_ROOT", str(tmp_path))
    uri = "pvc://claim/models/m/x/model.joblib"
    assert storage.fetch_verified(uri, "0" * 64) == str(tmp_path / "claim/models/m/x/model.joblib")


def test_a_missing_remote_artifact_is_a_clear_error(remote: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        storage.fetch_verified(f"{remote}/nothing/model.joblib", "0" * 64, str(tmp_path))
    assert not (tmp_path / ("0" * 64)).exists() or not any((tmp_path / ("0" * 64)).iterdir())


def test_source_credentials_come_only_from_the_prefixed_variables() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "store-key",  # the artifact store's: not the source's business
        "MODELWERK_SOURCE_AWS_ACCESS_KEY_ID": "src-key",
        "MODELWERK_SOURCE_AWS_SECRET_ACCESS_KEY": "src-secret",
        "MODELWERK_SOURCE_AWS_ENDPOINT_URL": "http://src:9000",
        "MODELWERK_SOURCE_AWS_DEFAULT_REGION": "eu-2",
    }
    assert storage.source_options(env) == {
        "key": "src-key",
        "secret": "src-secret",
        "endpoint_url": "http://src:9000",
        "client_kwargs": {"region_name": "eu-2"},
    }


def test_a_store_that_is_down_fails_in_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections refused: botocore's standard mode retries 3 times with backoff, s3fs twice
    on top; the error comes back in seconds, not at the Job's deadline."""
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "never-shown-3f9a")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    started = time.monotonic()
    uri = f"s3://down-{port}/models/m/x/model.joblib"
    with pytest.raises(storage.STORE_ERRORS) as caught, storage.open_uri(uri, "wb") as handle:
        handle.write(b"x")
    elapsed = time.monotonic() - started
    assert elapsed < 60, (elapsed, caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)  # the cause names the store
    assert "never-shown-3f9a" not in repr(caught.value)


def test_a_store_that_hangs_is_given_up_on_after_a_few_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that accepts connections and never answers: botocore's three attempts per
    request and no more (s3fs would repeat each timed-out call five times on top of them)."""
    connections: list[socket.socket] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    port = server.getsockname()[1]

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                connections.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setattr(
        storage, "_S3_CONFIG", {**storage._S3_CONFIG, "read_timeout": 1, "connect_timeout": 1}
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        with pytest.raises(storage.STORE_ERRORS, match="Read timeout"):
            storage.exists(f"s3://hangs-{port}/models/m/x/model.joblib")
    finally:
        server.close()
        for connection in connections:
            connection.close()
    # exists() is a HEAD and, when that fails, a listing: 3 attempts each at most.
    assert 1 <= len(connections) <= 6, len(connections)


def test_the_local_copy_never_lands_outside_its_cache(remote: str, tmp_path: Path) -> None:
    with pytest.raises(storage.StorageError, match="not a lowercase hex sha256"):
        storage.fetch_verified(f"{remote}/m/model.joblib", "../../etc", str(tmp_path))
    data = b"bytes"
    sha = hashlib.sha256(data).hexdigest()
    with storage.open_uri(f"{remote}/m/x", "wb") as handle:
        handle.write(data)
    local = storage.fetch_verified(f"{remote}/m/x/", sha, str(tmp_path))
    assert Path(local).parent == tmp_path / sha
