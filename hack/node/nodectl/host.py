"""Every change the node makes to the host, recorded before and undone after.

Owns: the first-``up`` snapshot of the host (sysctls, iptables chains, nftables tables,
network namespaces, kubepods cgroups), the changes ``up`` makes itself (the bridge, two
iptables chains, two sysctls), and the sweep that puts the host back: processes, mounts,
netns files, the bridge, iptables/nftables leftovers of kubelet and kube-proxy, sysctls,
cgroups, runtime directories. ``leftovers`` checks that nothing of the cluster is left.

The snapshot is written once (``layout.HOST_RECORD``) and only dropped after a verified
teardown, so a crashed run is still restored to the host as it was before the first ``up``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodectl import layout, sh

# Sysctls kubelet, kube-proxy, the bridge CNI plugin or ``up`` itself may change.
SYSCTLS: tuple[str, ...] = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.netfilter.nf_conntrack_max",
)
FAMILIES = ("iptables", "ip6tables")
BUILTIN_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
FORWARD_CHAIN = "MODELWERK-NODE-FORWARD"
INPUT_CHAIN = "MODELWERK-NODE-INPUT"

_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctl(name: str) -> str | None:
    try:
        return _sysctl_path(name).read_text().strip()
    except OSError:
        return None


def write_sysctl(name: str, value: str) -> None:
    _sysctl_path(name).write_text(value + "\n")


# ------------------------------------------------------------------------------ iptables
@dataclass
class Table:
    chains: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)  # "-A CHAIN ..." lines as iptables-save prints


def parse_save(text: str) -> dict[str, Table]:
    """Chains and rules per table of ``iptables-save`` output."""
    tables: dict[str, Table] = {}
    current: Table | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], Table())
        elif current is not None and line.startswith(":"):
            current.chains.append(line[1:].split()[0])
        elif current is not None and line.startswith("-A "):
            current.rules.append(line)
    return tables


def iptables_tables(family: str) -> dict[str, Table]:
    """The tables of ``<family>-save`` ({} when the tool is missing)."""
    if not sh.have(f"{family}-save"):
        return {}
    return parse_save(sh.run([f"{family}-save"]))


def _rule_target(rule: str) -> str | None:
    words = shlex.split(rule)
    for flag in ("-j", "-g"):
        if flag in words[:-1]:
            return words[words.index(flag) + 1]
    return None


def _nft_tables() -> list[str] | None:
    if not sh.have("nft"):
        return None
    return [line.strip() for line in sh.run(["nft", "list", "tables"]).splitlines() if line]


# ------------------------------------------------------------------------------- snapshot
def _netns() -> list[str]:
    return sorted(p.name for p in layout.NETNS_DIR.iterdir()) if layout.NETNS_DIR.is_dir() else []


def _kubepods_cgroups() -> list[str]:
    if not layout.CGROUP_ROOT.is_dir():
        return []
    return sorted(
        str(d / layout.KUBEPODS_CGROUP)
        for d in layout.CGROUP_ROOT.iterdir()
        if (d / layout.KUBEPODS_CGROUP).is_dir()
    )


def snapshot() -> dict[str, Any]:
    """What the host looks like now, in the terms teardown restores."""
    return {
        "sysctls": {name: read_sysctl(name) for name in SYSCTLS},
        "iptables": {
            family: {name: t.chains for name, t in iptables_tables(family).items()}
            for family in FAMILIES
        },
        "nft_tables": _nft_tables(),
        "netns": _netns(),
        "netns_dir_existed": layout.NETNS_DIR.is_dir(),
        "kubepods": _kubepods_cgroups(),
    }


def record() -> dict[str, Any]:
    """The host before the first ``up``: read it if recorded, else take and write it now."""
    if layout.HOST_RECORD.is_file():
        recorded: dict[str, Any] = json.loads(layout.HOST_RECORD.read_text())
        return recorded
    if _bridge_exists():
        raise RuntimeError(
            f"bridge {layout.BRIDGE} exists but no host record does ({layout.HOST_RECORD}):"
            " is another tool using that name? Delete it (`ip link del "
            f"{layout.BRIDGE}`) if it is a leftover."
        )
    baseline = snapshot()
    layout.HOST_RECORD.parent.mkdir(parents=True, exist_ok=True)
    tmp = layout.HOST_RECORD.with_suffix(".tmp")
    tmp.write_text(json.dumps(baseline, indent=2))
    os.replace(tmp, layout.HOST_RECORD)
    return baseline


# -------------------------------------------------------------------------------- prepare
def _bridge_exists() -> bool:
    return Path("/sys/class/net", layout.BRIDGE).exists()


def prepare() -> None:
    """The host side of the node: bridge with the node address, forwarding, bridge netfilter."""
    record()
    if not _bridge_exists():
        sh.run(["ip", "link", "add", layout.BRIDGE, "type", "bridge"])
    addresses = sh.run(["ip", "-4", "-o", "addr", "show", "dev", layout.BRIDGE])
    prefix = layout.POD_CIDR.split("/")[1]
    if f" {layout.NODE_IP}/{prefix} " not in addresses:
        sh.run(["ip", "addr", "add", f"{layout.NODE_IP}/{prefix}", "dev", layout.BRIDGE])
    sh.run(["ip", "link", "set", layout.BRIDGE, "up"])
    # Pods reach Services through the node (DNAT), and pod-to-pod replies must pass the same
    # conntrack entry even on one bridge: forwarding plus bridge netfilter.
    if not _sysctl_path("net.bridge.bridge-nf-call-iptables").exists():
        sh.run(["modprobe", "br_netfilter"], check=False)
    write_sysctl("net.ipv4.ip_forward", "1")
    write_sysctl("net.bridge.bridge-nf-call-iptables", "1")
    _accept_chain("filter", FORWARD_CHAIN, "FORWARD", ["-i", layout.BRIDGE, "-o", layout.BRIDGE])
    _accept_chain("filter", INPUT_CHAIN, "INPUT", ["-i", layout.BRIDGE])


def _accept_chain(table: str, chain: str, parent: str, match: list[str]) -> None:
    # A chain of our own, jumped to first: a host whose FORWARD policy is DROP (Docker sets
    # that) still lets pod traffic through, and teardown removes exactly this.
    if not sh.ok(["iptables", "-t", table, "-L", chain, "-n"]):
        sh.run(["iptables", "-t", table, "-N", chain])
    comment = ["-m", "comment", "--comment", "modelwerk node"]
    if not sh.ok(["iptables", "-t", table, "-C", chain, *match, *comment, "-j", "ACCEPT"]):
        sh.run(["iptables", "-t", table, "-A", chain, *match, *comment, "-j", "ACCEPT"])
    if not sh.ok(["iptables", "-t", table, "-C", parent, "-j", chain]):
        sh.run(["iptables", "-t", table, "-I", parent, "1", "-j", chain])


# -------------------------------------------------------------------------------- restore
def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _in_kubepods(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    return any(
        line.split(":", 2)[-1].startswith(f"/{layout.KUBEPODS_CGROUP}")
        for line in text.splitlines()
    )


def cluster_processes() -> list[int]:
    """PIDs of the cluster: commands naming our directories (containerd, shims, kubelet,
    control plane) and anything in the kubepods cgroups (the containers)."""
    me = {os.getpid(), os.getppid()}
    owned = [str(p) for p in layout.OWNED_PATHS]
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in me:
            continue
        pid = int(entry.name)
        cmd = _cmdline(pid)
        if not cmd:  # kernel threads and zombies
            continue
        if any(path in cmd for path in owned) or _in_kubepods(pid):
            pids.append(pid)
    return sorted(pids)


def kill_processes(timeout: float = 10) -> None:
    """SIGTERM every cluster process, SIGKILL what is still there after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        pids = cluster_processes()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists() and _cmdline(p)]
            time.sleep(0.1)


def _mountpoints() -> Iterator[str]:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        yield point.encode().decode("unicode_escape")  # mountinfo escapes spaces as \040


def cluster_mounts(baseline: dict[str, Any]) -> list[str]:
    owned = [str(p) for p in layout.OWNED_PATHS]
    old_netns = {str(layout.NETNS_DIR / n) for n in baseline.get("netns", [])}
    mounts = []
    for point in _mountpoints():
        ours = any(point == p or point.startswith(p + "/") for p in owned)
        if ours or (point.startswith(f"{layout.NETNS_DIR}/") and point not in old_netns):
            mounts.append(point)
    return mounts


def unmount_all(baseline: dict[str, Any]) -> None:
    for _ in range(5):  # stacked mounts need several passes
        mounts = cluster_mounts(baseline)
        if not mounts:
            return
        for point in sorted(set(mounts), key=lambda p: p.count("/"), reverse=True):
            _libc.umount2(point.encode(), _MNT_DETACH)


def remove_netns(baseline: dict[str, Any]) -> None:
    for name in set(_netns()) - set(baseline.get("netns", [])):
        with contextlib.suppress(OSError):
            (layout.NETNS_DIR / name).unlink()
    if not baseline.get("netns_dir_existed", True) and layout.NETNS_DIR.is_dir():
        with contextlib.suppress(OSError):
            layout.NETNS_DIR.rmdir()


def iptables_cleanup(
    family: str, before: dict[str, list[str]], tables: dict[str, Table]
) -> list[list[str]]:
    """Commands that drop every chain not in ``before`` and every rule jumping to one; in a
    table that did not exist before, every rule of its built-in chains too. Rules of chains
    that existed before and do not jump to a new chain are never touched."""
    commands: list[list[str]] = []
    for name, table in tables.items():
        new = {c for c in table.chains if c not in before.get(name, [])} - BUILTIN_CHAINS
        for rule in table.rules:
            chain = rule.split()[1]
            if chain not in new and (_rule_target(rule) in new or name not in before):
                commands.append([family, "-t", name, "-D", *shlex.split(rule)[1:]])
        # Flush all before deleting any: new chains may jump to each other.
        commands += [[family, "-t", name, "-F", chain] for chain in sorted(new)]
        commands += [[family, "-t", name, "-X", chain] for chain in sorted(new)]
    return commands


def remove_iptables(baseline: dict[str, Any]) -> None:
    """Drop every chain that did not exist before, and the rules jumping to them."""
    for family in FAMILIES:
        before: dict[str, list[str]] = baseline.get("iptables", {}).get(family, {})
        for command in iptables_cleanup(family, before, iptables_tables(family)):
            sh.run(command, check=False)


def remove_nft_tables(baseline: dict[str, Any]) -> None:
    """Tables iptables-nft created for the cluster's rules, once they hold no rule."""
    before = baseline.get("nft_tables")
    now = _nft_tables()
    if before is None or now is None:
        return
    for table in set(now) - set(before):
        family, name = table.split()[1:3]
        listing = json.loads(sh.run(["nft", "-j", "list", "table", family, name]))
        if not any("rule" in item for item in listing.get("nftables", [])):
            sh.run(["nft", "delete", "table", family, name], check=False)


def restore_sysctls(baseline: dict[str, Any]) -> None:
    for name, value in baseline.get("sysctls", {}).items():
        if value is not None and read_sysctl(name) != value:
            with contextlib.suppress(OSError):
                write_sysctl(name, value)


def remove_cgroups(baseline: dict[str, Any]) -> None:
    keep = set(baseline.get("kubepods", []))
    for top in _kubepods_cgroups():
        if top in keep:
            continue
        for directory, _, _ in os.walk(top, topdown=False):  # leaves first: rmdir needs empty
            with contextlib.suppress(OSError):
                os.rmdir(directory)


def restore(*, kube_proxy: Path | None = None) -> None:
    """Put the host back as recorded. Idempotent; safe after a crash or a partial start."""
    if not layout.HOST_RECORD.is_file():
        baseline: dict[str, Any] = {}
    else:
        baseline = json.loads(layout.HOST_RECORD.read_text())
    kill_processes()
    unmount_all(baseline)
    remove_netns(baseline)
    if _bridge_exists():
        sh.run(["ip", "link", "del", layout.BRIDGE], check=False)
    if kube_proxy is not None and kube_proxy.exists():
        # kube-proxy knows its own rules best (iptables, nftables and ipvs modes alike).
        sh.run([str(kube_proxy), "--cleanup"], check=False)
    if baseline:
        remove_iptables(baseline)
        remove_nft_tables(baseline)
        restore_sysctls(baseline)
        remove_cgroups(baseline)
    for cidr in (layout.POD_CIDR, layout.SERVICE_CIDR):
        for direction in ("-s", "-d"):
            sh.run(["conntrack", "-D", direction, cidr], check=False)
    for directory in (
        layout.RUN,
        layout.KUBELET_DIR,
        layout.VOLUMES_DIR,
        layout.CNI_DIR,
        layout.CONFIG_DIR,
    ):
        if not cluster_mounts(baseline):  # never recurse into something still mounted
            shutil.rmtree(directory, ignore_errors=True)


def leftovers() -> list[str]:
    """What of the cluster is still on the host (empty when teardown was complete)."""
    if not layout.HOST_RECORD.is_file():
        return [f"no host record at {layout.HOST_RECORD}: cannot compare with the host before"]
    baseline: dict[str, Any] = json.loads(layout.HOST_RECORD.read_text())
    now = snapshot()
    found = []
    if pids := cluster_processes():
        found.append("processes: " + ", ".join(f"{p} ({_cmdline(p)[:60].strip()})" for p in pids))
    if mounts := cluster_mounts(baseline):
        found.append(f"mounts: {mounts}")
    if netns := sorted(set(now["netns"]) - set(baseline["netns"])):
        found.append(f"network namespaces: {netns}")
    if _bridge_exists():
        found.append(f"bridge {layout.BRIDGE}")
    for family in FAMILIES:
        for table, chains in now["iptables"][family].items():
            extra = sorted(set(chains) - set(baseline["iptables"][family].get(table, [])))
            extra = [c for c in extra if c not in BUILTIN_CHAINS]
            if extra:
                found.append(f"{family} chains in {table}: {extra}")
    before_nft, now_nft = baseline["nft_tables"], now["nft_tables"]
    if before_nft is not None and now_nft is not None and set(now_nft) - set(before_nft):
        found.append(f"nftables tables: {sorted(set(now_nft) - set(before_nft))}")
    for name, value in baseline["sysctls"].items():
        if now["sysctls"][name] != value:
            found.append(f"sysctl {name}={now['sysctls'][name]} (was {value})")
    if cgroups := sorted(set(now["kubepods"]) - set(baseline["kubepods"])):
        found.append(f"cgroups: {cgroups}")
    for directory in (layout.RUN, layout.KUBELET_DIR, layout.VOLUMES_DIR):
        if directory.exists():
            found.append(f"directory {directory}")
    return found


def forget() -> None:
    """Drop the host record: only after ``leftovers()`` came back empty."""
    layout.HOST_RECORD.unlink(missing_ok=True)
