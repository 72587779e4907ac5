#!/usr/bin/env python3
"""Provide promtool, the Prometheus rule checker the monitoring tests run.

Owns: finding or building the promtool pinned by ``hack/promtool/go.mod`` (Prometheus 3.x,
module version v0.313.5). Standard library only; importable (``ensure_promtool``) and runnable
(``python3 hack/promtool/build.py`` prints the binary's path).

Looked up in this order:

1. ``$PROMTOOL``, a path to any promtool 2.x or 3.x the caller prefers.
2. The per-user cache ``${XDG_CACHE_HOME:-~/.cache}/modelwerk/promtool/<version>/promtool``,
   valid while its ``STAMP`` matches the hash of go.mod and go.sum.
3. ``go build`` of this module into the cache, under an ``fcntl`` lock so that concurrent test
   sessions build once. Measured on the 2-core machine: see hack/promtool/README.md.

The Prometheus module cannot be ``go install``ed at a version (its go.mod has a replace
directive), hence this small module that requires it and repeats the replace.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

VERSION = "v0.313.5"
MODULE_DIR = Path(__file__).resolve().parent
PACKAGE = "github.com/prometheus/prometheus/cmd/promtool"
# The tag of tools.go; keep the flags identical between runs, they are part of Go's cache keys.
GO_BUILD_FLAGS = ("-tags", "tools", "-trimpath", "-buildvcs=false", "-ldflags=-s -w")


class PromtoolUnavailable(RuntimeError):
    """promtool could be neither found nor built."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelwerk" / "promtool" / VERSION


def _stamp() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((MODULE_DIR / name).read_bytes())
    return digest.hexdigest()


def _cached(directory: Path) -> Path | None:
    binary, stamp = directory / "promtool", directory / "STAMP"
    if stamp.is_file() and stamp.read_text().strip() == _stamp() and os.access(binary, os.X_OK):
        return binary
    return None


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build(directory: Path) -> None:
    go = shutil.which("go")
    if go is None:
        raise PromtoolUnavailable("no `go` on PATH to build promtool (or set $PROMTOOL)")
    print(
        f"[promtool] building {PACKAGE}@{VERSION} into {directory}; a cold build takes minutes",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
        out = Path(tmp) / "promtool"
        done = subprocess.run(
            [go, "build", *GO_BUILD_FLAGS, "-o", str(out), PACKAGE],
            cwd=MODULE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if done.returncode != 0 or not out.is_file():
            raise PromtoolUnavailable(f"go build of promtool failed:\n{done.stdout[-4000:]}")
        os.replace(out, directory / "promtool")
        (directory / "STAMP").write_text(_stamp() + "\n")
    print(f"[promtool] built in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)


def ensure_promtool() -> Path:
    """Path of a promtool binary, building it into the cache when there is none."""
    override = os.environ.get("PROMTOOL")
    if override:
        if not os.access(override, os.X_OK):
            raise PromtoolUnavailable(f"PROMTOOL={override} is not an executable")
        return Path(override)
    directory = cache_dir()
    found = _cached(directory)
    if found is None:
        with _locked(directory):
            found = _cached(directory)  # another process may have built it meanwhile
            if found is None:
                _build(directory)
                found = _cached(directory)
    if found is None:
        raise PromtoolUnavailable(f"promtool still missing from {directory} after building")
    return found


def main() -> int:
    try:
        print(ensure_promtool())
    except PromtoolUnavailable as exc:
        print(f"[promtool] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
