"""Fixtures of the capture tests: a store on a filesystem the test controls (see ``fs``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelwerk.runtime.capture.store import Store

from .fs import ControlledFS


@pytest.fixture
def controlled(tmp_path: Path) -> tuple[Store, ControlledFS]:
    fs = ControlledFS(skip_instance_cache=True)  # a fresh instance: fsspec caches them
    return Store(str(tmp_path / "store"), fs=fs), fs
