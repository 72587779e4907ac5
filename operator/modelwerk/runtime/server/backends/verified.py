"""Reading an artifact only once its bytes match the sha256 the operator registered.

The bytes are read once, hashed, and handed to the loader from that same copy, so nothing can
change between the check and the load. The expected hash always comes from the caller (the
ModelVersion, through the operator), never from the model card next to the artifact: whoever
can swap the artifact could swap the card too.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from typing import IO

from modelwerk.runtime.storage import (
    ChecksumMismatch,
    copy_hashed,
    exists,
    fetch_verified,
    open_uri,
)

_SPOOL_IN_MEMORY = 256 << 20  # bigger artifacts spill to a temporary file while hashed


class ModelLoadError(Exception):
    """The model cannot be served; the message says why (it ends up in the pod's log)."""


@contextlib.contextmanager
def verified_copy(
    uri: str, expected_sha256: str, what: str = "model artifact"
) -> Iterator[IO[bytes]]:
    """A private copy of the bytes at ``uri``, positioned at 0, if their sha256 matches.

    A remote object (``s3://``) is first downloaded into the pod's cache, verified on the way
    (the copy is only kept when it matches); the local bytes are then hashed once more as they
    are read, because the cached file could have been changed since."""
    if not exists(uri):
        raise ModelLoadError(f"{what} not found: {uri}")
    try:
        local = fetch_verified(uri, expected_sha256)
    except ChecksumMismatch as exc:
        raise ModelLoadError(f"refusing to load {uri}: {exc}") from exc
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as copy:
        with open_uri(local) as handle:
            actual = copy_hashed(handle, copy)
        if actual != expected_sha256:
            raise ModelLoadError(
                f"refusing to load {uri}: its sha256 is {actual}, expected {expected_sha256} "
                "(the artifact was modified or is not the one registered)"
            )
        copy.seek(0)
        yield copy
