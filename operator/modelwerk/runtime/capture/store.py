"""The artifact store's root as seen by production data: atomic writes, listings, deletes.

A file appears whole or not at all. An object store's PUT is atomic already; on a filesystem
(a PVC, a local directory) the bytes go to a hidden ``.tmp-…`` name first and are renamed,
which readers skip (pyarrow ignores names starting with ``.``), so nobody ever reads half a
Parquet file, and a process killed mid-write leaves only a hidden leftover.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from modelwerk.runtime import storage


class Store:
    """Paths are relative to the root (``captures/ns/dep/…``); errors are the filesystem's."""

    def __init__(self, root: str, fs: Any | None = None) -> None:
        self.root = root.rstrip("/")
        if fs is not None:
            self.fs, self.base = fs, self.root
        else:
            self.fs, self.base = _resolve(self.root)
        self.local = isinstance(self.fs, LocalFileSystem)

    def path(self, rel: str) -> str:
        return posixpath.join(self.base, rel) if rel else self.base

    def uri(self, rel: str) -> str:
        """The URI of ``rel`` as users name it (``pvc://…``, ``s3://…``)."""
        return storage.join(self.root, rel)

    def write(self, rel: str, data: bytes) -> None:
        target = self.path(rel)
        directory = posixpath.dirname(target)
        if not self.local:
            self.fs.pipe_file(target, data)
            return
        self.fs.makedirs(directory, exist_ok=True)
        staging = posixpath.join(directory, f".tmp-{os.urandom(6).hex()}-{posixpath.basename(rel)}")
        try:
            self.fs.pipe_file(staging, data)
            self.fs.mv(staging, target)
        except BaseException:
            if self.fs.exists(staging):
                self.fs.rm(staging)
            raise

    def files(self, rel_dir: str) -> list[str]:
        """Names of the visible files directly in ``rel_dir``; none when it does not exist."""
        return [n for n, kind in self._entries(rel_dir) if kind == "file"]

    def dirs(self, rel_dir: str) -> list[str]:
        """Names of the directories directly in ``rel_dir``; none when it does not exist."""
        return [n for n, kind in self._entries(rel_dir) if kind == "directory"]

    def _entries(self, rel_dir: str) -> list[tuple[str, str]]:
        path = self.path(rel_dir)
        # s3fs (like gcsfs) keeps a directory's first non-empty listing for good, and fsspec
        # shares one filesystem instance per process: without this, an aggregator on an
        # object store would never see a file written into a partition it had listed once.
        self.fs.invalidate_cache(path)
        try:
            listing = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        out = []
        for entry in listing:
            name = posixpath.basename(str(entry["name"]).rstrip("/"))
            if name and not name.startswith((".", "_")):
                out.append((name, str(entry.get("type", "file"))))
        return out

    def open(self, rel: str) -> IO[bytes]:
        handle: IO[bytes] = self.fs.open(self.path(rel), "rb")
        return handle

    def remove_tree(self, rel_dir: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path(rel_dir), recursive=True)


def _resolve(root: str) -> tuple[Any, str]:
    if root.startswith("pvc://") and "/" not in root.removeprefix("pvc://"):
        claim = root.removeprefix("pvc://")
        if not claim or claim == "..":
            raise storage.StorageError(f"{root!r} names no claim")
        return fsspec.filesystem("file"), posixpath.join(storage.pvc_root(), claim)
    fs, path = storage.fs_and_path(root)
    if isinstance(fs, LocalFileSystem):
        path = os.path.abspath(path)
    return fs, str(path).rstrip("/")
