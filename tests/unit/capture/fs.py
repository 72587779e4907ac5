"""A real filesystem the tests can slow down or break: the store of the capture tests.

``ControlledFS`` is fsspec's local filesystem with two switches, ``delay`` (seconds every
write and listing takes) and ``down`` (every write and listing fails as an unreachable store
would), so writers, servers and the aggregator are tested against real files, real Parquet and
a real outage rather than against mocks. Registered as the ``controlled://`` protocol, it is
what a server given ``--capture-root controlled:///dir`` writes through.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

PROTOCOL = "controlled"


class ControlledFS(LocalFileSystem):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay = 0.0
        self.down = False
        self.writes = 0
        self.blocked = threading.Event()  # set while a write waits out its delay

    protocol = PROTOCOL

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        text = str(path)
        if text.startswith(f"{PROTOCOL}://"):
            text = text[len(PROTOCOL) + 3 :]
        return super()._strip_protocol(text)

    def _gate(self) -> None:
        if self.delay:
            self.blocked.set()
            time.sleep(self.delay)
            self.blocked.clear()
        if self.down:
            raise ConnectionError("the store is unreachable")

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        self._gate()
        self.writes += 1
        super().pipe_file(path, value, **kwargs)

    def ls(self, path: str, detail: bool = False, **kwargs: Any) -> Any:
        self._gate()
        return super().ls(path, detail=detail, **kwargs)


def register() -> ControlledFS:
    """Make ``controlled://`` URLs resolve to the one shared instance, which is returned."""
    fsspec.register_implementation(PROTOCOL, ControlledFS, clobber=True)
    fs: ControlledFS = fsspec.filesystem(PROTOCOL)
    fs.delay, fs.down = 0.0, False
    return fs
