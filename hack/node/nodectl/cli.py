"""``hack/node/node.py``: up | down | status | kubeconfig | prereqs.

``up`` is idempotent (a running, Ready node is reported, not restarted; the remains of a
crashed run are swept first) and starts the supervisor as a background process; ``down``
stops it, sweeps the host and checks that nothing is left, exiting non-zero if something is.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

from nodectl import host, layout, metrics, runtime, supervisor

HACK_NODE = Path(__file__).resolve().parents[1]
REPO_ROOT = HACK_NODE.parents[1]
NODE_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
)
# Debian packages and the commands they provide.
PACKAGES: dict[str, tuple[str, ...]] = {
    "containerd": ("containerd", "ctr"),
    "runc": ("runc",),
    "iptables": ("iptables", "iptables-save", "ip6tables", "ip6tables-save"),
    "conntrack": ("conntrack",),
    "nftables": ("nft",),
    "iproute2": ("ip",),
    "gcc": ("cc",),
}
# Only for building the images offline (hack/images/build.py).
IMAGE_PACKAGES: dict[str, tuple[str, ...]] = {
    "docker.io": ("dockerd", "docker"),
    "debootstrap": ("debootstrap",),
}
PACKAGE_FILES: dict[str, Path] = {
    "containernetworking-plugins": Path("/usr/lib/cni/bridge"),
    "libc6-dev": Path("/usr/lib/x86_64-linux-gnu/libc.a"),
}


def _say(message: str) -> None:
    print(f"[node] {message}", file=sys.stderr, flush=True)


def kube_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "modelwerk_kube_build", REPO_ROOT / "hack" / "kube" / "build.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def binaries() -> dict[str, Path]:
    found: dict[str, Path] = kube_build().ensure_binaries(NODE_BINARIES, progress=_say)
    found["metrics-server"] = metrics.metrics_server_binary()
    return found


def cache_dir() -> Path:
    cache: Path = kube_build().cache_root() / "node"
    return cache


# ------------------------------------------------------------------------ prerequisites
def missing_packages(images: bool = False) -> list[str]:
    wanted = PACKAGES | (IMAGE_PACKAGES if images else {})
    missing = [
        package
        for package, commands in wanted.items()
        if not all(shutil.which(c) for c in commands)
    ]
    missing += [package for package, path in PACKAGE_FILES.items() if not path.exists()]
    if "containernetworking-plugins" in missing and runtime.cni_bin_dir() is not None:
        missing.remove("containernetworking-plugins")
    return missing


def check_prerequisites(images: bool = False) -> list[str]:
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root: it creates a bridge, iptables rules, mounts and cgroups")
    if missing := missing_packages(images):
        problems.append(
            f"missing Debian packages: {' '.join(missing)}\n"
            f"  install them with: {sys.argv[0]} prereqs --install{' --images' if images else ''}"
            f"  (or apt-get install -y {' '.join(missing)})"
        )
    if "overlay" not in Path("/proc/filesystems").read_text():
        problems.append("the kernel has no overlay filesystem (containerd's snapshotter)")
    if (
        not (layout.CGROUP_ROOT / "memory").is_dir()
        and not (layout.CGROUP_ROOT / "cgroup.controllers").is_file()
    ):
        problems.append(f"no cgroup hierarchy under {layout.CGROUP_ROOT}")
    return problems


POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


def install_prerequisites(images: bool = False) -> int:
    missing = missing_packages(images)
    if not missing:
        _say("all prerequisites are installed")
        return 0
    _say(f"apt-get install {' '.join(missing)}")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "update", "-qq"], env=env).returncode != 0:
        return 1
    # Packages like containerd and docker.io would start their services on installation
    # (a dockerd that sets the FORWARD policy to DROP, a containerd on the default socket).
    # Nothing of that is wanted: deny service starts for the time of the install.
    placed = not POLICY_RC_D.exists()
    if placed:
        POLICY_RC_D.write_text(
            "#!/bin/sh\n# hack/node: no service starts while installing\nexit 101\n"
        )
        POLICY_RC_D.chmod(0o755)
    try:
        return subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env
        ).returncode
    finally:
        if placed:
            POLICY_RC_D.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ running
def supervisor_pid() -> int | None:
    try:
        pid = int(layout.SUPERVISOR_PID.read_text())
    except (OSError, ValueError):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists() and b"supervise" in cmdline.read_bytes():
        return pid
    return None


def print_ready(status: dict[str, object]) -> None:
    kubeconfig = status.get("kubeconfig", layout.KUBECONFIG)
    _say(
        f"node {layout.NODE_NAME} is Ready (API server {status.get('server')}).\n"
        f"  export KUBECONFIG={kubeconfig}\n"
        f"  NodePorts answer on {layout.NODE_IP}; `{sys.argv[0]} down` removes everything"
    )
    print(kubeconfig)


def up(args: argparse.Namespace) -> int:
    if problems := check_prerequisites():
        for problem in problems:
            _say(f"prerequisite: {problem}")
        return 2
    pid = supervisor_pid()
    status = supervisor.read_status()
    proc: subprocess.Popen[bytes] | None = None
    if pid is not None:
        if status.get("state") == "ready":
            print_ready(status)
            return 0
        _say(f"a node supervisor (pid {pid}) is {status.get('state', 'starting')}; waiting")
    else:
        if layout.HOST_RECORD.is_file() and (host.leftovers() or layout.RUN.exists()):
            _say("sweeping the remains of a previous run first")
            host.restore(kube_proxy=kube_build().cache_dir() / "kube-proxy")
        found = binaries()  # may build kubelet/kube-proxy once (minutes): before timing
        cache_dir().mkdir(parents=True, exist_ok=True)
        runtime.pause_archive(cache_dir())
        layout.LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = layout.LOG_DIR / "supervisor.log"
        if args.foreground:
            return supervisor.supervise(found, cache_dir())
        layout.STATUS.unlink(missing_ok=True)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(HACK_NODE / "node.py"), "supervise"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives this command, not a terminal's hangup
            )
        pid = proc.pid
        _say(f"starting (supervisor pid {pid}, log {log})")
    started = time.monotonic()
    while True:
        status = supervisor.read_status()
        if status.get("state") == "ready":
            print_ready(status)
            return 0
        alive = proc.poll() is None if proc is not None else supervisor_pid() is not None
        if (
            status.get("state") == "failed"
            or not alive
            or time.monotonic() - started > args.timeout
        ):
            _say(f"the node did not come up: {status.get('error', 'see the log')}")
            tail = (layout.LOG_DIR / "supervisor.log").read_text(errors="replace")
            _say("supervisor log (tail):\n" + "\n".join(tail.splitlines()[-40:]))
            _say(f"component logs: {layout.LOG_DIR}")
            down(argparse.Namespace(timeout=60))
            return 1
        time.sleep(0.2)


def down(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        _say("must run as root")
        return 2
    pid = supervisor_pid()
    if pid is not None:
        _say(f"stopping the node (supervisor pid {pid})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if Path(f"/proc/{pid}").exists():
            _say(f"supervisor {pid} did not stop within {args.timeout:.0f}s: killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if not layout.HOST_RECORD.is_file():
        _say("no node on this host (nothing recorded): nothing to do")
        return 0
    # Second, independent pass: also what a crashed or killed supervisor left behind.
    host.restore(kube_proxy=kube_build().cache_dir() / "kube-proxy")
    if left := host.leftovers():
        _say("teardown incomplete, still on the host:\n  " + "\n  ".join(left))
        return 1
    host.forget()
    layout.KUBECONFIG.unlink(missing_ok=True)
    _say(
        "down; verified: no node process, mount, network namespace, bridge, iptables chain,"
        " changed sysctl or kubepods cgroup left"
    )
    return 0


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def status(args: argparse.Namespace) -> int:
    pid = supervisor_pid()
    state = supervisor.read_status()
    if pid is None:
        print(
            "down" + (" (host record present: run `down`)" if layout.HOST_RECORD.is_file() else "")
        )
        return 3
    print(f"{state.get('state', 'starting')} (supervisor pid {pid})")
    for key in (
        "server",
        "kubeconfig",
        "control_plane_seconds",
        "node_ready_seconds",
        "pod_start_seconds",
    ):
        if key in state:
            value = state[key]
            print(f"  {key}: {value:.1f}" if isinstance(value, float) else f"  {key}: {value}")
    for name, component_pid in dict(state.get("pids", {})).items():
        rss = _rss_mib(component_pid)
        print(f"  {name:<24} pid {component_pid:<8} rss {rss:.0f} MiB" if rss else f"  {name} gone")
    if runtime.serving():
        print("  images: " + " ".join(sorted(runtime.images())))
    return 0


def kubeconfig(args: argparse.Namespace) -> int:
    if supervisor.read_status().get("state") != "ready":
        _say("the node is not up: run `up` first")
        return 1
    print(layout.KUBECONFIG)
    return 0


def prereqs(args: argparse.Namespace) -> int:
    if args.install:
        if os.geteuid() != 0:
            _say("must run as root")
            return 2
        code = install_prerequisites(args.images)
        if code:
            return code
    problems = check_prerequisites(args.images)
    for problem in problems:
        _say(f"prerequisite: {problem}")
    if not problems:
        _say("prerequisites: ok")
    return 2 if problems else 0


def supervise(args: argparse.Namespace) -> int:
    return supervisor.supervise(binaries(), cache_dir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/node/node.py",
        description="A real single-node Kubernetes cluster on this machine (root only).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="start the node cluster (idempotent); prints the kubeconfig")
    p.add_argument("--foreground", action="store_true", help="run in this process until Ctrl-C")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for Ready")
    p.set_defaults(func=up)
    p = sub.add_parser("down", help="stop it and restore the host; fails if anything is left")
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for the stop")
    p.set_defaults(func=down)
    sub.add_parser("status", help="state, timings, memory of each component").set_defaults(
        func=status
    )
    sub.add_parser("kubeconfig", help="print the admin kubeconfig's path").set_defaults(
        func=kubeconfig
    )
    p = sub.add_parser("prereqs", help="check (or --install with apt) the host packages")
    p.add_argument("--install", action="store_true", help="apt-get install what is missing")
    p.add_argument("--images", action="store_true", help="also what offline image builds need")
    p.set_defaults(func=prereqs)
    sub.add_parser("supervise", help=argparse.SUPPRESS).set_defaults(func=supervise)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
