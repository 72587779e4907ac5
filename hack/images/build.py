#!/usr/bin/env python3
"""Build the operator and runtime images, with a registry or without one, and load them.

    python3 hack/images/build.py                      # build with the Docker at hand
    python3 hack/images/build.py --offline --load node # no registry: local base + wheelhouse
    python3 hack/images/build.py --load kind --kind-cluster modelwerk

Owns: the one way images/operator, images/runtime and the sample trainer image
images/byo-example (FROM the runtime image) are built.

* With a registry (the default when a Docker daemon is already running): the Dockerfiles'
  own base, ``python:3.11-slim-bookworm``.
* Offline (``--offline``; the default when this script has to start a Docker daemon of its
  own): a Python base made once with ``debootstrap --variant=minbase bookworm`` and
  ``docker import``, a wheelhouse made once with ``pip download --only-binary=:all:`` (the
  package indexes are reachable, image registries are not), and ``docker build --network
  none``. Nothing can be pulled: the base must already be in Docker (checked first), builds
  have no network, and the private daemon's proxy variables point at a closed port.
* Loading: ``--load node`` streams ``docker save`` into the local node's containerd
  (``ctr images import``, skipped when that image is already there), ``--load kind`` runs
  ``kind load docker-image``.

With no Docker daemon running and root, a private ``dockerd`` is started for the build and
stopped afterwards: its own socket, data root (a cache under ``~/.cache/modelwerk/docker``,
so later builds reuse layers), no bridge, no iptables rules, no new privileges for
containers. Caches: ``~/.cache/modelwerk/images`` (base tarball, wheelhouse).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack" / "node"))

from nodectl import layout as node_layout  # noqa: E402  (after the path set-up)

PYTHON_VERSION = "3.11"  # bookworm's python3, and the registry base's
REGISTRY_BASE = f"python:{PYTHON_VERSION}-slim-bookworm"
OFFLINE_BASE = "modelwerk/python-base:bookworm"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# The wheels must install on bookworm (glibc 2.36) with CPython 3.11, whatever runs this.
WHEEL_PLATFORMS = ("manylinux2014_x86_64", *(f"manylinux_2_{n}_x86_64" for n in range(17, 37)))
IMAGES = {
    "operator": "images/operator/Dockerfile",
    "runtime": "images/runtime/Dockerfile",
    # The bring-your-own-trainer sample's trainer: FROM the runtime image just built.
    "byo-example": "images/byo-example/Dockerfile",
}
STAGED = {"operator", "runtime"}
"""Images with a ``build`` stage whose dependency layers are worth tagging and keeping."""
CLOSED = "http://127.0.0.1:9"
PRIVATE_RUN = Path("/run/modelwerk-docker")
DOCKERD_FIXED_DIR = Path("/run/docker")  # dockerd creates it whatever --exec-root says


def say(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelwerk"


def version() -> str:
    for line in (REPO / "operator" / "modelwerk" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip("\"'")
    raise SystemExit("no __version__ in operator/modelwerk/__init__.py")


def run(argv: list[str], **kwargs: object) -> None:
    say("$ " + " ".join(argv))
    subprocess.run(argv, check=True, **kwargs)  # type: ignore[call-overload]


# --------------------------------------------------------------------------------- docker
class Docker:
    """The Docker daemon to build with: the running one, or a private one started here."""

    def __init__(self) -> None:
        self.env = dict(os.environ)
        self.private: subprocess.Popen[bytes] | None = None
        self._cgroups_before: set[Path] = set()
        self._run_docker_existed = True

    def ok(self) -> bool:
        return (
            subprocess.run(
                ["docker", "info"], env=self.env, capture_output=True, timeout=30
            ).returncode
            == 0
        )

    def cmd(self, *args: str, **kwargs: object) -> None:
        run(["docker", *args], env=self.env, **kwargs)

    def has_image(self, ref: str) -> bool:
        done = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Id}}", ref],
            env=self.env,
            capture_output=True,
            text=True,
        )
        return done.returncode == 0

    def image_id(self, ref: str) -> str:
        return subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Id}}", ref],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def start_private(self) -> None:
        if shutil.which("dockerd") is None:
            raise SystemExit(
                "no Docker daemon answers and dockerd is not installed:"
                " apt-get install docker.io (or start Docker)"
            )
        if os.geteuid() != 0:
            raise SystemExit("no Docker daemon answers; starting a private one needs root")
        PRIVATE_RUN.mkdir(parents=True, exist_ok=True)
        socket = PRIVATE_RUN / "docker.sock"
        data = cache_root() / "docker"
        data.mkdir(parents=True, exist_ok=True)
        self._cgroups_before = set(Path("/sys/fs/cgroup").glob("*/docker"))
        self._run_docker_existed = DOCKERD_FIXED_DIR.exists()
        log = open(cache_root() / "dockerd.log", "ab")  # noqa: SIM115 (lives as long as dockerd)
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env |= {"HTTP_PROXY": CLOSED, "HTTPS_PROXY": CLOSED}  # no registry, ever
        say(f"starting a private dockerd (socket {socket}, data {data})")
        self.private = subprocess.Popen(
            [
                "dockerd",
                f"--host=unix://{socket}",
                f"--data-root={data}",
                f"--exec-root={PRIVATE_RUN / 'exec'}",
                f"--pidfile={PRIVATE_RUN / 'docker.pid'}",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--no-new-privileges",
                "--storage-driver=overlay2",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.env["DOCKER_HOST"] = f"unix://{socket}"
        deadline = time.monotonic() + 60
        while not self.ok():
            if self.private.poll() is not None or time.monotonic() > deadline:
                self.stop_private()
                raise SystemExit(f"the private dockerd did not start; see {log.name}")
            time.sleep(0.5)

    def stop_private(self) -> None:
        if self.private is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.private.send_signal(signal.SIGTERM)
        try:
            self.private.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.private.pid, signal.SIGKILL)
            self.private.wait()
        self.private = None
        # dockerd leaves its (empty) cgroup parents behind, and /run/docker/plugins whatever
        # its exec root: remove what it created (rmdir only ever removes empty directories).
        leftovers = set(Path("/sys/fs/cgroup").glob("*/docker")) - self._cgroups_before
        if not self._run_docker_existed:
            leftovers.add(DOCKERD_FIXED_DIR)
        for top in leftovers:
            for directory, _, _ in os.walk(top, topdown=False):
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
        shutil.rmtree(PRIVATE_RUN, ignore_errors=True)
        say("private dockerd stopped")


@contextlib.contextmanager
def docker_daemon(start: bool) -> Iterator[Docker]:
    docker = Docker()
    if not docker.ok():
        if not start:
            raise SystemExit("no Docker daemon answers (`docker info` failed)")
        docker.start_private()
    try:
        yield docker
    finally:
        docker.stop_private()


# ---------------------------------------------------------------------------- offline base
def apt_mirror() -> str:
    """The Debian mirror apt uses here (the archive is reachable, registries are not)."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for source in sources:
        with contextlib.suppress(OSError):
            for line in source.read_text().splitlines():
                words = line.split()
                for word in words:
                    if word.startswith("http") and word.rstrip("/").endswith("/debian"):
                        return word
    return "http://deb.debian.org/debian"


def offline_base(docker: Docker) -> str:
    """``modelwerk/python-base:bookworm``: imported from a cached debootstrap tarball."""
    if docker.has_image(OFFLINE_BASE):
        return OFFLINE_BASE
    tarball = cache_root() / "images" / f"python-base-{SUITE}.tar"
    if not tarball.is_file():
        if shutil.which("debootstrap") is None or os.geteuid() != 0:
            raise SystemExit(
                f"{OFFLINE_BASE} is not in Docker and making it needs root and debootstrap"
                " (apt-get install debootstrap)"
            )
        tarball.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tarball.parent, prefix=".rootfs-") as root:
            say(f"debootstrap {SUITE} (minbase + {' '.join(BASE_PACKAGES)}); once, a few minutes")
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    SUITE,
                    root,
                    apt_mirror(),
                ],
                stdout=subprocess.DEVNULL,
            )
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (Path(root) / junk).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            partial = tarball.with_suffix(".partial")
            run(["tar", "-C", root, "--numeric-owner", "-cf", str(partial), "."])
            os.replace(partial, tarball)
    say(f"docker import {tarball.name} as {OFFLINE_BASE}")
    docker.cmd("import", str(tarball), OFFLINE_BASE)
    return OFFLINE_BASE


def requirements() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    build = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *extras["runtime"], *extras["compile"], *build]


def wheelhouse() -> Path:
    """Wheels for every dependency of both images, for CPython 3.11 on bookworm; cached by
    the requirement list, so a changed dependency makes a new one."""
    reqs = requirements()
    key = hashlib.sha256("\n".join([PYTHON_VERSION, *reqs]).encode()).hexdigest()[:16]
    directory = cache_root() / "images" / f"wheels-{key}"
    if (directory / "COMPLETE").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--python-version",
            PYTHON_VERSION,
            "--implementation",
            "cp",
            *platforms,
            "--dest",
            str(directory),
            *reqs,
        ]
    )
    (directory / "COMPLETE").write_text("\n".join(reqs) + "\n")
    return directory


@contextlib.contextmanager
def wheels_in_context(source: Path) -> Iterator[None]:
    """Put the wheelhouse into the build context (images/wheels) for the build only."""
    target = REPO / "images" / "wheels"
    placed = []
    for wheel in source.glob("*.whl"):
        dest = target / wheel.name
        if not dest.exists():
            try:
                os.link(wheel, dest)
            except OSError:
                shutil.copyfile(wheel, dest)
            placed.append(dest)
    try:
        yield
    finally:
        for dest in placed:
            dest.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ load
def load_node(docker: Docker, refs: list[str]) -> None:
    """``docker save | ctr images import`` into the node's containerd, unless already there."""
    socket = node_layout.CONTAINERD_SOCKET
    if not socket.exists():
        raise SystemExit(f"the node is not up ({socket} missing): run hack/node/node.py up")
    ctr = ["ctr", "--address", str(socket), "--namespace", node_layout.CONTAINERD_NAMESPACE]
    stamps_file = node_layout.CONTAINERD_ROOT / "modelwerk-images.json"
    stamps: dict[str, str] = json.loads(stamps_file.read_text()) if stamps_file.is_file() else {}
    present = subprocess.run([*ctr, "images", "ls", "-q"], capture_output=True, text=True)
    names = set(present.stdout.split())
    for ref in refs:
        full = ref if "/" in ref.split(":")[0] and "." in ref.split("/")[0] else f"docker.io/{ref}"
        image_id = docker.image_id(ref)
        if full in names and stamps.get(full) == image_id:
            say(f"{full} already in the node's containerd")
            continue
        say(f"docker save {ref} | ctr images import -")
        started = time.monotonic()
        save = subprocess.Popen(["docker", "save", ref], env=docker.env, stdout=subprocess.PIPE)
        imported = subprocess.run([*ctr, "images", "import", "-"], stdin=save.stdout)
        assert save.stdout is not None
        save.stdout.close()
        if save.wait() != 0 or imported.returncode != 0:
            raise SystemExit(f"importing {ref} into the node failed")
        stamps[full] = image_id
        stamps_file.write_text(json.dumps(stamps, indent=2))
        say(f"imported {full} in {time.monotonic() - started:.0f}s")


def load_kind(docker: Docker, refs: list[str], cluster: str) -> None:
    run(["kind", "load", "docker-image", "--name", cluster, *refs], env=docker.env)


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", help=f"any of {', '.join(IMAGES)} (default: all)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--offline", action="store_true", help="local base + wheelhouse")
    mode.add_argument("--registry", action="store_true", help="the Dockerfiles' python base")
    parser.add_argument("--load", choices=["node", "kind", "none"], default="none")
    parser.add_argument("--kind-cluster", default="modelwerk")
    parser.add_argument("--tag", default=version())
    parser.add_argument(
        "--no-private-docker",
        action="store_true",
        help="fail instead of starting a private dockerd when none is running",
    )
    args = parser.parse_args(argv)
    names = args.images or list(IMAGES)
    if unknown := [n for n in names if n not in IMAGES]:
        parser.error(f"unknown images {unknown}; known: {', '.join(IMAGES)}")
    started = time.monotonic()
    with docker_daemon(start=not args.no_private_docker) as docker:
        offline = args.offline or (not args.registry and docker.private is not None)
        build_args: list[str] = []
        wheels: Path | None = None
        if offline:
            base = offline_base(docker)
            wheels = wheelhouse()
            build_args = [
                "--network",
                "none",
                "--build-arg",
                f"BASE_IMAGE={base}",
                "--build-arg",
                "WHEELHOUSE=wheels",
            ]
            say(f"offline build: base {base}, wheelhouse {wheels}")
        refs = [f"modelwerk/{name}:{args.tag}" for name in names]
        context = wheels_in_context(wheels) if wheels else contextlib.nullcontext()
        env = docker.env | {"DOCKER_BUILDKIT": "0"}  # the legacy builder: no BuildKit image
        with context:
            for name, ref in zip(names, refs, strict=True):
                t = time.monotonic()
                dockerfile = ["-f", IMAGES[name], "."]
                extra = ["--build-arg", f"RUNTIME_IMAGE=modelwerk/runtime:{args.tag}"]
                if name not in STAGED:
                    dockerfile = [*extra, *dockerfile]
                if docker.private is not None and name in STAGED:
                    # Tag the build stage too: the prune below must keep its layers (the
                    # installed dependencies), which would otherwise be dangling.
                    stage = f"modelwerk/{name}-build:{args.tag}"
                    run(
                        [
                            "docker",
                            "build",
                            *build_args,
                            "--target",
                            "build",
                            "-t",
                            stage,
                            *dockerfile,
                        ],
                        cwd=REPO,
                        env=env,
                    )
                run(["docker", "build", *build_args, "-t", ref, *dockerfile], cwd=REPO, env=env)
                say(f"built {ref} in {time.monotonic() - t:.0f}s")
        if docker.private is not None:
            # The private daemon only ever holds these builds: drop the layers of earlier ones
            # (a user's own daemon is left alone).
            docker.cmd("image", "prune", "--force", stdout=subprocess.DEVNULL)
        if args.load == "node":
            load_node(docker, refs)
        elif args.load == "kind":
            load_kind(docker, refs, args.kind_cluster)
    say(f"done in {time.monotonic() - started:.0f}s: {' '.join(refs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
