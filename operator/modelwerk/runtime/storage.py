"""URIs of the artifact store and data sources, resolved through fsspec.

``pvc://<claim>/<path>`` names a file on a PersistentVolumeClaim; the operator mounts every
claim a pod needs at ``$MODELWERK_PVC_ROOT/<claim>`` (default ``/var/run/modelwerk/pvc``), so
inside the pod it is a local path. Every other scheme (file, s3, gs, http(s)) goes to fsspec,
which takes credentials from the environment (the Secret named by the resource).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import fsspec

DEFAULT_PVC_ROOT = "/var/run/modelwerk/pvc"
_CHUNK = 1 << 20


class StorageError(Exception):
    """A URI that cannot be used: malformed, unsupported or escaping its volume."""


def pvc_root() -> str:
    return os.environ.get("MODELWERK_PVC_ROOT", DEFAULT_PVC_ROOT)


def to_local(uri: str) -> str:
    """Map a ``pvc://`` or ``file://`` URI to a local path; refuse anything leaving the volume.

    >>> os.environ["MODELWERK_PVC_ROOT"] = "/mnt"
    >>> to_local("pvc://data/iris/train.csv")
    '/mnt/data/iris/train.csv'
    """
    if uri.startswith("file://"):
        path = uri.removeprefix("file://")
        if ".." in path.split("/"):
            raise StorageError(f"{uri!r} must not contain '..' segments")
        return path
    if not uri.startswith("pvc://"):
        raise StorageError(f"{uri!r} is not a pvc:// or file:// URI")
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    if not claim or not path:
        raise StorageError(f"{uri!r} must look like pvc://<claim>/<path>")
    if ".." in path.split("/") or claim == "..":
        raise StorageError(f"{uri!r} must not contain '..' segments")
    return posixpath.join(pvc_root(), claim, posixpath.normpath(path))


def to_pvc_uri(local_path: str) -> str:
    """The inverse of :func:`to_local` for paths under the PVC root."""
    root = pvc_root().rstrip("/") + "/"
    if not local_path.startswith(root):
        return f"file://{local_path}"
    return "pvc://" + local_path.removeprefix(root)


def fs_and_path(uri: str) -> tuple[Any, str]:
    """The fsspec filesystem and path for ``uri``; plain paths count as local files."""
    if uri.startswith(("pvc://", "file://")) or "://" not in uri:
        return fsspec.filesystem("file"), to_local(uri) if "://" in uri else uri
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


@contextmanager
def open_uri(uri: str, mode: str = "rb") -> Iterator[IO[Any]]:
    fs, path = fs_and_path(uri)
    if "w" in mode:
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, mode) as handle:
        yield handle


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def sha256_of(uri: str) -> str:
    digest = hashlib.sha256()
    with open_uri(uri) as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def exists(uri: str) -> bool:
    fs, path = fs_and_path(uri)
    return bool(fs.exists(path))
