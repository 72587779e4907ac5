"""Content-addressed publishing into the artifact store, shared by the validator and the trainer.

Q: Why stage into a temporary directory and move, instead of writing in place?
A: Readers (the operator, the server) treat ``<kind>/<name>/<sha256>/`` as immutable and
   complete. On a local or PVC store, a directory rename is atomic, so a reader sees either
   nothing or every file. Object stores have no directories or atomic renames; there the files
   are moved one by one and the *marker* file goes last, so "marker exists" still means
   "complete".

Q: What happens when the directory already exists?
A: Nothing is overwritten: the same address means the same content, so the existing directory
   is kept and the staged copy is deleted. A concurrent writer that wins the race is handled
   the same way.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid

from modelwerk.runtime import storage

ROOT_ENV = "MODELWERK_ARTIFACT_ROOT"
LOCAL_DEFAULT_ROOT = "./.modelwerk-artifacts"
_SEGMENT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$")


class PublishError(Exception):
    """The artifact store refused a write, or a name cannot be used as a path segment."""


def root_uri(root: str) -> str:
    """The artifact root as a URI: plain paths become absolute ``file://`` (or ``pvc://``
    when they lie under the PVC mount root, so other pods can resolve them)."""
    if "://" in root:
        return root.rstrip("/")
    return storage.to_pvc_uri(os.path.abspath(root))


def segment(name: str) -> str:
    """``name`` if it is safe as one path segment (no slashes, no leading dot, no ``..``)."""
    if not _SEGMENT.match(name):
        raise PublishError(f"{name!r} cannot be used as a name in the artifact store")
    return name


def staging_dir(parent: str) -> str:
    """A fresh hidden directory next to the final one, on the same filesystem."""
    uri = storage.join(parent, f".tmp-{uuid.uuid4().hex}")
    fs, path = storage.fs_and_path(uri)
    fs.makedirs(path, exist_ok=True)
    return uri


def is_complete(final: str, marker: str) -> bool:
    return storage.exists(storage.join(final, marker))


def commit(staging: str, final: str, marker: str) -> bool:
    """Move ``staging`` to ``final`` unless ``final`` is already complete.

    Returns True when this call published the directory, False when it already existed.
    """
    fs, staging_path = storage.fs_and_path(staging)
    _, final_path = storage.fs_and_path(final)
    if is_complete(final, marker):
        fs.rm(staging_path, recursive=True)
        return False
    if "file" in _protocols(fs):
        try:
            os.rename(staging_path, final_path)
        except OSError as error:
            fs.rm(staging_path, recursive=True)
            if is_complete(final, marker):
                return False  # a concurrent writer published the same content first
            raise PublishError(f"cannot publish {final}: {error}") from error
        return True
    names = sorted(
        (posix_basename(p) for p in fs.ls(staging_path, detail=False)),
        key=lambda n: n == marker,  # the marker goes last: its presence means "complete"
    )
    for name in names:
        fs.mv(f"{staging_path}/{name}", f"{final_path}/{name}")
    # An object store has no directories: once its last file has moved, the staging prefix is
    # gone by itself.
    with contextlib.suppress(FileNotFoundError):
        fs.rm(staging_path, recursive=True)
    return True


def discard(staging: str) -> None:
    """Remove a staging directory after a failure; never raises."""
    try:
        fs, path = storage.fs_and_path(staging)
        fs.rm(path, recursive=True)
    except Exception:  # cleanup must not hide the original error
        pass


def posix_basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _protocols(fs: object) -> tuple[str, ...]:
    protocol = getattr(fs, "protocol", ())
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
