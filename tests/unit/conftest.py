"""Fixtures every unit test gets."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _fresh_s3_clients() -> Iterator[None]:
    """s3fs keeps one client per set of constructor arguments, and an endpoint read from the
    environment (AWS_ENDPOINT_URL, as in the pods) is not one of them: without this a test
    would reuse the client of an earlier test's S3 server, stopped by then. Only when s3fs was
    imported, so tests that never touch a store pay nothing."""
    _clear_s3_clients()
    yield
    _clear_s3_clients()


def _clear_s3_clients() -> None:
    s3fs = sys.modules.get("s3fs")
    if s3fs is not None:
        s3fs.S3FileSystem.clear_instance_cache()
