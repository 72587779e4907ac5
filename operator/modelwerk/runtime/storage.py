"""URIs of the artifact store and data sources, resolved through fsspec.

``pvc://<claim>/<path>`` names a file on a PersistentVolumeClaim; the operator mounts every
claim a pod needs at ``$MODELWERK_PVC_ROOT/<claim>`` (default ``/var/run/modelwerk/pvc``), so
inside the pod it is a local path. Every other scheme (file, s3, http(s)) goes to fsspec. For
``s3://`` the artifact store's endpoint, region and keys come from the standard AWS variables
(``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``)
the operator puts into every pod; a Dataset source with credentials of its own passes them as
``options`` (see :func:`source_options`). GCS is reached through its S3 interoperability
endpoint; ``gs://`` itself is not supported (no gcsfs in the image).

Q: Why bounded timeouts and few retries on s3?
A: A store that is down must end a validation or training run with that cause within a minute
   or two, not hang until the Job's deadline or multiply retries across layers (botocore
   retries, s3fs retries, Job retries). Serving pods do their own retrying at start-up: the
   kubelet restarts a pod whose model cannot be fetched.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import fsspec

DEFAULT_PVC_ROOT = "/var/run/modelwerk/pvc"
_CHUNK = 1 << 20
SOURCE_PREFIX = "MODELWERK_SOURCE_"
"""Prefix of a Dataset source's own credentials in the validation pod's environment."""
# botocore's "standard" retry mode: 3 attempts with jittered backoff, for throttling, refused
# connections and timeouts alike; s3fs's own loop on top of it is turned off (fs_and_path).
_S3_CONFIG: dict[str, Any] = {
    "connect_timeout": 10,
    "read_timeout": 30,
    "retries": {"max_attempts": 3, "mode": "standard"},
}


class StorageError(Exception):
    """A URI that cannot be used: malformed, unsupported or escaping its volume."""


def _store_errors() -> tuple[type[Exception], ...]:
    errors: list[type[Exception]] = [OSError, StorageError]
    try:  # botocore reports an unreachable endpoint as its own error, not an OSError
        from botocore.exceptions import BotoCoreError

        errors.append(BotoCoreError)
    except ImportError:  # pragma: no cover - s3fs (and so botocore) is a runtime dependency
        pass
    return tuple(errors)


STORE_ERRORS = _store_errors()
"""What a failing store raises: a missing or unreadable file, a refused or timed-out
connection, a path that may not be used."""


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


def fs_and_path(uri: str, options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and path for ``uri``; plain paths count as local files.

    ``options`` are fsspec storage options (credentials of a data source); without them a
    remote scheme uses the environment, which holds the artifact store's.
    """
    if uri.startswith(("pvc://", "file://")) or "://" not in uri:
        return fsspec.filesystem("file"), to_local(uri) if "://" in uri else uri
    scheme = uri.partition("://")[0]
    if scheme in ("s3", "s3a"):
        options = {"config_kwargs": _S3_CONFIG, **(options or {})}
    fs, path = fsspec.core.url_to_fs(uri, **(options or {}))
    if scheme in ("s3", "s3a"):
        # s3fs would repeat every timed-out request 5 times, each with botocore's own attempts:
        # 15 waits of read_timeout for one call against a store that hangs. botocore's retries
        # are enough.
        fs.retries = 1
    return fs, path


def source_options(environ: dict[str, str] | None = None) -> dict[str, Any] | None:
    """fsspec options for a Dataset source from its Secret, which the operator passes in with
    the prefix ``MODELWERK_SOURCE_`` so that it cannot shadow the artifact store's variables.

    >>> source_options({"MODELWERK_SOURCE_AWS_ACCESS_KEY_ID": "k",
    ...                 "MODELWERK_SOURCE_AWS_SECRET_ACCESS_KEY": "s"})
    {'key': 'k', 'secret': 's'}
    >>> source_options({}) is None
    True
    """
    env = os.environ if environ is None else environ
    names = {
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "token",
        "AWS_ENDPOINT_URL": "endpoint_url",
    }
    options: dict[str, Any] = {
        option: env[SOURCE_PREFIX + name]
        for name, option in names.items()
        if env.get(SOURCE_PREFIX + name)
    }
    region = env.get(SOURCE_PREFIX + "AWS_DEFAULT_REGION") or env.get(SOURCE_PREFIX + "AWS_REGION")
    if region:
        options["client_kwargs"] = {"region_name": region}
    return options or None


@contextmanager
def open_uri(
    uri: str, mode: str = "rb", options: dict[str, Any] | None = None
) -> Iterator[IO[Any]]:
    fs, path = fs_and_path(uri, options)
    if "w" in mode:
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, mode) as handle:
        yield handle


def join(base: str, *parts: str) -> str:
    """``base`` and ``parts`` as one URI that stays under ``base``: a leading slash does not
    make a part absolute, and a ``..`` segment is refused (on an object store it would be a
    literal key on some clients and a climb out of the prefix on others).

    >>> join("s3://b/team-a", "/models", "m/x/")
    's3://b/team-a/models/m/x'
    >>> join("s3://b/team-a", "../team-b/x")
    Traceback (most recent call last):
    ...
    modelwerk.runtime.storage.StorageError: '../team-b/x' must not contain '..' segments
    """
    segments: list[str] = []
    for part in parts:
        for segment in part.split("/"):
            if segment == "..":
                raise StorageError(f"{part!r} must not contain '..' segments")
            if segment not in ("", "."):
                segments.append(segment)
    return "/".join([base.rstrip("/"), *segments])


def copy_hashed(source: IO[bytes], target: IO[bytes]) -> str:
    """Copy ``source`` into ``target`` in chunks; the sha256 of the bytes copied."""
    digest = hashlib.sha256()
    while chunk := source.read(_CHUNK):
        digest.update(chunk)
        target.write(chunk)
    return digest.hexdigest()


def sha256_of(uri: str) -> str:
    digest = hashlib.sha256()
    with open_uri(uri) as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def exists(uri: str) -> bool:
    fs, path = fs_and_path(uri)
    return bool(fs.exists(path))


def local_cache() -> str:
    """Where a pod keeps local copies of remote artifacts (an emptyDir in serving pods)."""
    return os.environ.get("MODELWERK_MODEL_CACHE") or os.path.join(
        tempfile.gettempdir(), "modelwerk-models"
    )


class ChecksumMismatch(StorageError):
    """The bytes at a URI are not the ones registered: nothing may load them."""


def fetch_verified(uri: str, sha256: str, directory: str | None = None) -> str:
    """A local path holding the bytes at ``uri``, downloaded only if they hash to ``sha256``.

    ``pvc://`` and ``file://`` URIs are already local: their path comes back as it is (the
    caller verifies what it reads). A remote object is streamed into a temporary file under
    ``directory/<sha256>/`` while hashed, and renamed into place only when the hash matches,
    so a copy found there later is complete; processes of one pod (server workers) share it.
    """
    if uri.startswith(("pvc://", "file://")) or "://" not in uri:
        return to_local(uri) if "://" in uri else uri
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise StorageError(f"{sha256!r} is not a lowercase hex sha256")
    name = posixpath.basename(uri.rstrip("/"))
    if name in ("", ".", ".."):  # the copy must land inside its directory, whatever the URI
        name = "artifact"
    target_dir = os.path.join(directory or local_cache(), sha256)
    target = os.path.join(target_dir, name)
    if os.path.isfile(target):
        return target
    os.makedirs(target_dir, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target_dir, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as out, open_uri(uri) as handle:
            actual = copy_hashed(handle, out)
        if actual != sha256:
            raise ChecksumMismatch(
                f"sha256 of {uri} is {actual}, expected {sha256}: the artifact was altered"
            )
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target
