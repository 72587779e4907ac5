#!/usr/bin/env python3
"""Provide the pinned tools the tests run besides Kubernetes: helm, a Prometheus server, promtool,
an S3 server.

Owns: where each tool comes from and its pin. Standard library only, so it works before any
virtualenv exists; importable (``ensure("helm")``) and runnable (``python3 hack/tools.py helm
prometheus promtool`` prints one path per line). The cache, the Go toolchain and the build
runner are hack/kube/build.py's.

- ``helm``: helm v4.3.2, built from the Go module ``hack/helm`` (chart tests; hack/helm/README.md).
- ``prometheus``: the Prometheus 3.13.5 server, built from the Go module ``hack/prometheus`` with
  Kubernetes service discovery only (the e2e tier; hack/prometheus/README.md).
- ``metrics-server``: metrics-server v0.8.0, built from the Go module ``hack/metrics-server`` (the
  node tier's HorizontalPodAutoscaler tests; hack/metrics-server/README.md).
- ``versitygw``: the S3-compatible server versitygw v1.8.0, built from the Go module ``hack/s3``
  (the artifact-store tests; hack/s3/README.md).
- ``promtool``: from Debian's ``prometheus`` package, 2.42.0 (the alerting-rule tests): ``apt-get
  download`` and ``dpkg-deb --extract``, no root, nothing installed, no service started.

Each is looked up in this order: the environment variable ``$HELM`` / ``$PROMETHEUS`` /
``$VERSITYGW`` / ``$PROMTOOL`` (a binary of your own); the cache ``${XDG_CACHE_HOME:-~/.cache}/modelwerk/<tool>/
<version>/``, valid while its ``STAMP`` matches the pin (for a Go build: go.mod, go.sum and the
build flags); else a build or a fetch into that cache under its ``fcntl`` lock, so concurrent
sessions do it once. Anything that cannot be had raises ``Unavailable`` saying what to do.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HACK = Path(__file__).resolve().parent


def _kube() -> ModuleType:
    """hack/kube/build.py, loaded once by path (hack/ is not a package)."""
    name = "modelwerk_kube_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HACK / "kube" / "build.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


Unavailable: type[RuntimeError] = _kube().BinariesUnavailable


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class GoCommand:
    """A command pinned by a Go module under hack/ and built with fixed flags (part of Go's
    build cache keys, so keep them identical between runs)."""

    module: str
    package: str
    version: str
    flags: tuple[str, ...]
    override: str


GO_COMMANDS = {
    # The version is stamped so that `helm version` does not report the module's placeholder.
    "helm": GoCommand(
        module="helm",
        package="helm.sh/helm/v4/cmd/helm",
        version="v4.3.2",
        flags=(
            "-trimpath",
            "-buildvcs=false",
            "-ldflags=-s -w -X helm.sh/helm/v4/internal/version.version=v4.3.2"
            " -X helm.sh/helm/v4/internal/version.gitTreeState=clean",
        ),
        override="HELM",
    ),
    # Debian's Prometheus has no Kubernetes discovery, which the e2e tier needs; the tags keep
    # only that one (the cloud providers' SDKs are most of a full build).
    "prometheus": GoCommand(
        module="prometheus",
        package="github.com/prometheus/prometheus/cmd/prometheus",
        version="v0.313.5",
        flags=(
            "-tags",
            "remove_all_sd,enable_kubernetes_sd",
            "-trimpath",
            "-buildvcs=false",
            "-ldflags=-s -w -X github.com/prometheus/common/version.Version=3.13.5",
        ),
        override="PROMETHEUS",
    ),
    # The node tier's HorizontalPodAutoscaler tests (hack/metrics-server/README.md).
    "metrics-server": GoCommand(
        module="metrics-server",
        package="sigs.k8s.io/metrics-server/cmd/metrics-server",
        version="v0.8.0",
        flags=("-trimpath", "-buildvcs=false", "-ldflags=-s -w"),
        override="METRICS_SERVER",
    ),
    # The S3-compatible server of the artifact-store tests (hack/s3/README.md). "-tags tools"
    # only keeps the flags of its first builds, and with them Go's build cache, valid.
    "versitygw": GoCommand(
        module="s3",
        package="github.com/versity/versitygw/cmd/versitygw",
        version="v1.8.0",
        flags=(
            "-tags",
            "tools",
            "-trimpath",
            "-buildvcs=false",
            "-ldflags=-s -w -X main.Version=v1.8.0",
        ),
        override="VERSITYGW",
    ),
}
PROMTOOL_VERSION = "2.42.0"  # what Debian 12 ships; any Debian revision of it is accepted


def ensure(name: str) -> Path:
    """The path of tool ``name`` (helm, prometheus, metrics-server, versitygw, promtool), built or
    fetched when needed."""
    override = {"promtool": "PROMTOOL", **{n: c.override for n, c in GO_COMMANDS.items()}}
    if name not in override:
        raise Unavailable(f"unknown tool {name!r}; known: {sorted(override)}")
    given = os.environ.get(override[name])
    if given:
        if not (Path(given).is_file() and os.access(given, os.X_OK)):
            raise Unavailable(f"{override[name]}={given} is not an executable")
        return Path(given)
    if name == "promtool":
        return _cached_or(name, PROMTOOL_VERSION, _promtool_stamp_ok, _fetch_promtool)
    command = GO_COMMANDS[name]
    module_dir = HACK / command.module
    stamp = _kube()._module_stamp(module_dir, *command.flags)
    return _cached_or(
        name,
        command.version,
        lambda text: text == stamp,
        lambda directory: _build(name, command, directory, stamp),
    )


def _cached_or(
    name: str, version: str, valid: Callable[[str], bool], fill: Callable[[Path], None]
) -> Path:
    kube = _kube()
    directory: Path = kube.cache_root() / name / version
    binary, stamp_file = directory / name, directory / "STAMP"

    def cached() -> bool:
        return (
            stamp_file.is_file()
            and valid(stamp_file.read_text().strip())
            and os.access(binary, os.X_OK)
        )

    if not cached():
        with kube.locked(directory, _stderr, tag=name):
            if not cached():  # another process may have filled it meanwhile
                stamp_file.unlink(missing_ok=True)
                fill(directory)
    if not cached():
        raise Unavailable(f"{name} is still missing from {directory}")
    return binary


def _build(name: str, command: GoCommand, directory: Path, stamp: str) -> None:
    kube = _kube()
    go = kube.find_go(_stderr)
    module_dir = HACK / command.module
    _stderr(
        f"[{name}] building {command.package} {command.version} in {module_dir}; a cold build"
        f" takes minutes (hack/{command.module}/README.md), a warm one seconds"
    )
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
        out = Path(tmp) / name
        args = [*command.flags, "-o", str(out), command.package]
        seconds = kube.go_build(go, args, module_dir, _stderr, tag=name)
        if not os.access(out, os.X_OK):
            raise Unavailable(f"go build succeeded but {out} is missing")
        os.replace(out, directory / name)
        (directory / "STAMP").write_text(stamp + "\n")
    _stderr(f"[{name}] built in {seconds:.0f}s")


def _promtool_stamp_ok(text: str) -> bool:
    return text.startswith(f"prometheus {PROMTOOL_VERSION}+")


def _run(*cmd: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if done.returncode != 0:
        raise Unavailable(f"`{' '.join(cmd)}` failed:\n{done.stdout.strip()}")
    return done.stdout


def _fetch_promtool(directory: Path) -> None:
    """promtool out of Debian's prometheus package: 19 MB in seconds, where a build of it from
    the Go module took 13 minutes of a cold run. apt checks the package against the signed
    archive index; the exact Debian version and the .deb's sha256 go into the STAMP."""
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise Unavailable(
            f"no {' or '.join(missing)} on PATH to fetch Debian's prometheus package; set"
            " $PROMTOOL to a promtool of your own (2.x or 3.x)"
        )
    _stderr(f"[promtool] fetching Debian's prometheus package ({PROMTOOL_VERSION})")
    with tempfile.TemporaryDirectory(dir=directory, prefix=".fetch-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # apt downloads as its unprivileged user when it can write here
        try:
            _run("apt-get", "download", "--quiet", "prometheus", cwd=work)
        except Unavailable as exc:
            if os.geteuid() != 0:
                raise Unavailable(
                    f"{exc}\n(the package index may be missing: `apt-get update` as root; or"
                    " set $PROMTOOL)"
                ) from None
            # A fresh machine has no package index yet; root can fill it (as hack/node does).
            _stderr("[promtool] apt-get update, then again")
            _run("apt-get", "update", "-qq")
            _run("apt-get", "download", "--quiet", "prometheus", cwd=work)
        (deb,) = work.glob("prometheus_*.deb")
        version = _run("dpkg-deb", "--field", str(deb), "Version").strip()
        if not version.startswith(f"{PROMTOOL_VERSION}+"):
            raise Unavailable(
                f"this system's apt offers prometheus {version}; the tests pin"
                f" {PROMTOOL_VERSION} (Debian 12). Set $PROMTOOL to a promtool of your own"
            )
        digest = hashlib.sha256(deb.read_bytes()).hexdigest()
        _run("dpkg-deb", "--extract", str(deb), str(work / "tree"))
        extracted = work / "tree" / "usr" / "bin" / "promtool"
        if not os.access(extracted, os.X_OK):
            raise Unavailable(f"{deb.name} has no usr/bin/promtool")
        os.replace(extracted, directory / "promtool")  # same filesystem: atomic
        (directory / "STAMP").write_text(f"prometheus {version} sha256:{digest}\n")
    _stderr(f"[promtool] from prometheus {version}, in {directory}")


def main(argv: list[str]) -> int:
    try:
        for name in argv or ["helm", "prometheus", "promtool"]:
            print(ensure(name))
    except Unavailable as exc:
        _stderr(f"[tools] error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
