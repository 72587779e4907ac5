"""kubectl against the cluster under test, plus the waits and diagnostics the e2e tier needs.

Owns: every call the e2e tests make to a cluster. It goes through the kubectl binary so
that any kubeconfig works (kind, the local node, a cloud cluster with an exec plugin), and
through JSON, so the tests read like the Kubernetes API documentation.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
JSON = dict[str, Any]


class KubectlError(RuntimeError):
    pass


class Kubectl:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def run(self, *args: str, input: str | None = None, timeout: float = 120) -> str:
        argv = ["kubectl", f"--kubeconfig={self.kubeconfig}", *args]
        try:
            done = subprocess.run(
                argv, input=input, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as e:
            raise KubectlError(f"`{' '.join(argv)}` timed out after {timeout}s") from e
        if done.returncode != 0:
            raise KubectlError(
                f"`{' '.join(argv[2:])}` exited {done.returncode}: {done.stderr.strip()}"
            )
        return done.stdout

    def can_i(self, verb: str, resource: str, *, as_user: str) -> bool:
        """``kubectl auth can-i`` (exit 0 for yes, 1 for no)."""
        argv = ["kubectl", f"--kubeconfig={self.kubeconfig}", "auth", "can-i", verb, resource]
        done = subprocess.run(
            [*argv, f"--as={as_user}"], capture_output=True, text=True, timeout=60
        )
        if done.returncode not in (0, 1):
            raise KubectlError(f"`{' '.join(argv[2:])}` exited {done.returncode}: {done.stderr}")
        return done.returncode == 0

    def get(self, kind: str, name: str, namespace: str | None = None) -> JSON:
        ns = [f"--namespace={namespace}"] if namespace else []
        got: JSON = json.loads(self.run("get", kind, name, *ns, "-o", "json"))
        return got

    def get_or_none(self, kind: str, name: str, namespace: str | None = None) -> JSON | None:
        ns = [f"--namespace={namespace}"] if namespace else []
        out = self.run("get", kind, name, *ns, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def list(self, kind: str, namespace: str | None = None, selector: str = "") -> list[JSON]:
        ns = [f"--namespace={namespace}"] if namespace else ["--all-namespaces"]
        sel = [f"--selector={selector}"] if selector else []
        items: list[JSON] = json.loads(self.run("get", kind, *ns, *sel, "-o", "json"))["items"]
        return items

    def apply(self, obj: JSON | list[JSON], namespace: str | None = None) -> None:
        docs = obj if isinstance(obj, list) else [obj]
        ns = [f"--namespace={namespace}"] if namespace else []
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
        self.run(
            "apply", "--server-side", "--field-manager=modelwerk-e2e", *ns, "-f", "-", input=body
        )

    def merge_patch(self, kind: str, name: str, namespace: str, patch: JSON) -> None:
        self.run(
            "patch", kind, name, f"--namespace={namespace}", "--type=merge", "-p", json.dumps(patch)
        )

    def delete(
        self, kind: str, name: str, namespace: str | None = None, *, wait: bool = False
    ) -> None:
        ns = [f"--namespace={namespace}"] if namespace else []
        self.run("delete", kind, name, *ns, "--ignore-not-found", f"--wait={str(wait).lower()}")

    def wait(
        self,
        resource: str,
        condition: str,
        namespace: str | None = None,
        *,
        timeout: float,
        failed: Callable[[], str | None] = lambda: None,
    ) -> None:
        """``kubectl wait RESOURCE --for=condition=CONDITION``, as a pipeline would wait.

        It is run in 30-second turns so that ``failed`` (a message when the object can no
        longer get there, e.g. a TrainingJob that Failed) ends the wait early, and so that an
        object that does not exist yet (kubectl wait gives up on those at once) is waited for.
        """
        ns = [f"--namespace={namespace}"] if namespace else []
        deadline = time.monotonic() + timeout
        while True:
            turn = max(1, min(30, int(deadline - time.monotonic())))
            try:
                self.run(
                    "wait", resource, f"--for=condition={condition}", *ns, f"--timeout={turn}s",
                    timeout=turn + 30,
                )  # fmt: skip
                return
            except KubectlError as e:
                if "timed out" not in str(e) and "NotFound" not in str(e):
                    raise
                last = e
            why = failed()
            if why:
                raise AssertionError(f"{resource} will not be {condition}: {why}")
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{resource} not {condition} after {timeout:.0f}s: {last}"
                ) from last

    def logs(self, pod: str, namespace: str, container: str | None = None) -> str:
        extra = [f"--container={container}"] if container else ["--all-containers"]
        try:
            return self.run("logs", pod, f"--namespace={namespace}", *extra, "--tail=200")
        except KubectlError as e:
            return f"(no logs: {e})"


def condition(obj: JSON | None, kind: str) -> str | None:
    """Status of condition ``kind`` ("True"/"False"/"Unknown"), None when absent."""
    for c in (obj or {}).get("status", {}).get("conditions", []) or []:
        if c.get("type") == kind:
            status: str = c.get("status")
            return status
    return None


def wait_for(
    check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 1.0
) -> T:
    """Poll ``check`` until it returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except KubectlError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}"
            )
        time.sleep(interval)


def diagnostics(kubectl: Kubectl, namespaces: list[str]) -> str:
    """What a person debugging a failure looks at first: objects, events, pod logs."""
    parts: list[str] = []

    def section(title: str, produce: Callable[[], str]) -> None:
        try:
            body = produce()
        except KubectlError as e:
            body = f"({e})"
        parts.append(f"===== {title}\n{body.rstrip()}")

    section("nodes", lambda: kubectl.run("get", "nodes", "-o", "wide"))
    for ns in namespaces:
        section(
            f"{ns}: modelwerk objects",
            lambda ns=ns: kubectl.run("get", "modelwerk", "-n", ns, "-o", "wide"),
        )
        section(
            f"{ns}: workloads",
            lambda ns=ns: kubectl.run(
                "get", "jobs,deployments,pods,svc,pvc", "-n", ns, "-o", "wide"
            ),
        )
        section(
            f"{ns}: events",
            lambda ns=ns: kubectl.run("get", "events", "-n", ns, "--sort-by=.lastTimestamp"),
        )
        section(
            f"{ns}: modelwerk status",
            lambda ns=ns: "\n".join(
                f"{o['kind']}/{o['metadata']['name']}: {json.dumps(o.get('status', {}))[:3000]}"
                for o in kubectl.list("modelwerk", ns)
            ),
        )
        for pod in kubectl.list("pods", ns):
            name = pod["metadata"]["name"]
            parts.append(f"===== {ns}: logs of {name}\n{kubectl.logs(name, ns).rstrip()}")
    return "\n".join(parts)
