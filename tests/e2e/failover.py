"""Killing the operator's pods as an eviction or a node failure does, and waiting for the next.

Owns: which operator pod leads (the holder of the Lease ``modelwerk-system/modelwerk-operator``,
whose identity is ``<pod name>_<random>``: a restarted container is a new candidate) and deleting it, or every replica at once. A deleted pod gets
SIGTERM, so a leader gives its Lease back and the standby takes over at once; deleting every
replica is a cold restart: new pods list everything again and elect a leader among themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.e2e.kubectl import Kubectl, condition, wait_for

NAMESPACE = "modelwerk-system"
LEASE = "modelwerk-operator"
SELECTOR = "app.kubernetes.io/name=modelwerk-operator"
TIMEOUT = 180


def leader(kubectl: Kubectl) -> str | None:
    """The leading pod's name."""
    lease = kubectl.get_or_none("lease", LEASE, NAMESPACE)
    holder: str | None = ((lease or {}).get("spec") or {}).get("holderIdentity")
    return holder.rpartition("_")[0] if holder else None


def _ready_pods(kubectl: Kubectl) -> set[str]:
    return {
        p["metadata"]["name"]
        for p in kubectl.list("pods", NAMESPACE, SELECTOR)
        if condition(p, "Ready") == "True" and not p["metadata"].get("deletionTimestamp")
    }


def _wait_for_a_leader(kubectl: Kubectl, among: Callable[[str], bool], what: str) -> str:
    def elected() -> str | None:
        holder = leader(kubectl)
        if holder is None or not among(holder):
            return None
        return holder if holder in _ready_pods(kubectl) else None

    started = time.monotonic()
    holder = wait_for(elected, timeout=TIMEOUT, what=what, interval=0.5)
    print(f"  {what}: {holder} after {time.monotonic() - started:.1f}s")
    return holder


def kill_leader(kubectl: Kubectl) -> str:
    """Delete the leading pod; returns the standby that took over."""
    old = wait_for(lambda: leader(kubectl), timeout=TIMEOUT, what="an operator leader")
    kubectl.delete("pod", old, NAMESPACE)
    return _wait_for_a_leader(
        kubectl, lambda holder: holder != old, f"a new leader after deleting {old}"
    )


def kill_all(kubectl: Kubectl) -> str:
    """Delete every operator pod at once; returns the leader among their replacements."""
    old = {p["metadata"]["name"] for p in kubectl.list("pods", NAMESPACE, SELECTOR)}
    kubectl.run(
        "delete", "pods", f"--namespace={NAMESPACE}", f"--selector={SELECTOR}", "--wait=false"
    )
    return _wait_for_a_leader(
        kubectl,
        lambda holder: holder not in old,
        f"a leader among new pods after deleting {sorted(old)}",
    )


def down(kubectl: Kubectl) -> None:
    """No operator at all: the Deployment scaled to zero and its pods gone."""
    kubectl.run(
        "scale", "deployment/modelwerk-operator", f"--namespace={NAMESPACE}", "--replicas=0"
    )
    wait_for(
        lambda: not kubectl.list("pods", NAMESPACE, SELECTOR),
        timeout=TIMEOUT,
        what="every operator pod to be gone",
    )


def up(kubectl: Kubectl, replicas: int = 2) -> str:
    """The operator back at ``replicas``; returns the leader elected among the new pods."""
    kubectl.run(
        "scale",
        "deployment/modelwerk-operator",
        f"--namespace={NAMESPACE}",
        f"--replicas={replicas}",
    )
    return _wait_for_a_leader(kubectl, lambda holder: True, "a leader after scaling back up")
