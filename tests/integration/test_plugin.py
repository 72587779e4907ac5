"""``kubectl modelwerk`` against the real API server, run as a user runs it: the installed
``kubectl-modelwerk`` executable in a subprocess, with a kubeconfig.

Most tests run no operator (no ``operator`` fixture): where one needs the operator's answer to
a command, the test itself writes status.lastCommand, as the operator would, and says so. The
last two steer real rollouts with the operator running under its own RBAC.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane, write_kubeconfig
from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.serving import (
    create_deployment,
    status,
    tracks,
    verified_version,
    wait_for_status,
)
from tests.unit.plugin.objects import canary_at

PLUGIN = Path(sys.executable).with_name("kubectl-modelwerk")
GROUP = "/apis/modelwerk.dev/v1alpha1"
STAMP = r"\d{8}T\d{6}\.\d{6}Z"


def url(namespace: str, name: str = "iris", sub: str = "") -> str:
    return f"{GROUP}/namespaces/{namespace}/deployments/{name}" + (f"/{sub}" if sub else "")


def run(
    kubeconfig: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PLUGIN), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def create(rest: Rest, namespace: str, name: str = "iris") -> dict[str, Any]:
    """A canary Deployment (the spec of tests/unit/plugin/objects.py), with no status."""
    return rest.create(
        f"{GROUP}/namespaces/{namespace}/deployments",
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": {"team": "ml"}},
            "spec": canary_at(0)["spec"],
        },
    )


def annotation(obj: dict[str, Any]) -> str | None:
    value = obj["metadata"].get("annotations", {}).get("modelwerk.dev/command")
    return str(value) if value is not None else None


@pytest.fixture
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.admin_kubeconfig


def test_a_command_writes_only_the_annotation_and_times_out_without_an_operator(
    admin_rest: Rest, namespace: str, kubeconfig: Path
) -> None:
    before = create(admin_rest, namespace)
    result = run(kubeconfig, "-n", namespace, "promote", "iris", "--timeout", "2s")

    assert result.returncode == 2, result
    after = admin_rest.get(url(namespace))
    value = annotation(after)
    assert value is not None and re.fullmatch(f"promote@{STAMP}", value), value
    assert result.stdout.startswith(
        f"deployments.modelwerk.dev/iris: sent modelwerk.dev/command={value}\n"
    )
    assert "timed out after 2s waiting for the operator" in result.stderr
    assert "operator may not be running" in result.stderr
    # The spec is untouched: same generation (the API server bumps it on any spec change).
    assert after["metadata"]["generation"] == before["metadata"]["generation"] == 1
    assert after["spec"] == before["spec"]
    assert after["metadata"]["labels"] == {"team": "ml"}
    # managedFields: the plugin's write owns the annotation and nothing else.
    (entry,) = [
        m for m in after["metadata"]["managedFields"] if m["manager"] == "kubectl-modelwerk"
    ]
    assert entry["operation"] == "Update"
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:annotations": {".": {}, "f:modelwerk.dev/command": {}}}
    }


@pytest.mark.parametrize(
    ("args", "verb"),
    [
        (["promote", "--full"], "promote-full"),
        (["abort"], "abort"),
        (["pause"], "pause"),
        (["resume"], "resume"),
        (["retry"], "retry"),
    ],
)
def test_no_wait_sends_the_verb_and_returns_at_once(
    admin_rest: Rest, namespace: str, kubeconfig: Path, args: list[str], verb: str
) -> None:
    before = create(admin_rest, namespace)
    result = run(kubeconfig, "-n", namespace, args[0], "iris", *args[1:], "--no-wait")

    assert result.returncode == 0, result
    after = admin_rest.get(url(namespace))
    assert re.fullmatch(f"{verb}@{STAMP}", annotation(after) or ""), after["metadata"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert result.stderr == ""


def test_each_command_gets_a_new_value_so_repeating_it_is_not_ignored(
    admin_rest: Rest, namespace: str, kubeconfig: Path
) -> None:
    create(admin_rest, namespace)
    values = []
    for _ in range(2):
        assert run(kubeconfig, "-n", namespace, "pause", "iris", "--no-wait").returncode == 0
        values.append(annotation(admin_rest.get(url(namespace))))
    assert values[0] != values[1]


def test_the_wait_ends_when_the_operator_records_the_command(
    admin_rest: Rest, namespace: str, kubeconfig: Path
) -> None:
    create(admin_rest, namespace)
    with _started(kubeconfig, "-n", namespace, "resume", "iris") as plugin:
        value = wait_until(
            lambda: annotation(admin_rest.get(url(namespace))),
            timeout=30,
            what="the plugin to write the annotation",
        )
        # The test plays the operator here: it acts on the command by recording it in
        # status.lastCommand, in the same write as the state the command led to.
        admin_rest.merge_patch(
            url(namespace, sub="status"),
            {
                "status": {
                    "lastCommand": value,
                    "phase": "Progressing",
                    "message": "step 3/5: shifting 50% of traffic to iris-classifier-v2",
                    "paused": False,
                    "stableVersion": "iris-classifier-v1",
                    "canaryVersion": "iris-classifier-v2",
                    "canaryWeight": 50,
                    "actualWeight": 25,
                }
            },
        )
        out, err = plugin.process.communicate(timeout=60)
    assert plugin.process.returncode == 0, (out, err)
    assert out.splitlines()[1:] == [
        f"deployments.modelwerk.dev/iris: the operator acted on {value}",
        "  Phase:       Progressing",
        "  Message:     step 3/5: shifting 50% of traffic to iris-classifier-v2",
        "  Rolling out: iris-classifier-v2",
        "  Weight:      50% asked, 25% actual",
        "  Stable:      iris-classifier-v1",
    ]


def test_another_status_change_does_not_end_the_wait(
    admin_rest: Rest, namespace: str, kubeconfig: Path
) -> None:
    create(admin_rest, namespace)
    with _started(kubeconfig, "-n", namespace, "abort", "iris") as plugin:
        value = wait_until(
            lambda: annotation(admin_rest.get(url(namespace))), timeout=30, what="the annotation"
        )
        # Playing the operator: an update about an older command, then the answer to this one.
        admin_rest.merge_patch(
            url(namespace, sub="status"),
            {"status": {"lastCommand": "pause@20000101T000000.000000Z", "phase": "Paused"}},
        )
        time.sleep(1)  # not a timing assertion: gives a wrongly finished wait the chance to show
        assert plugin.process.poll() is None, plugin.process.communicate()
        admin_rest.merge_patch(
            url(namespace, sub="status"),
            {
                "status": {
                    "lastCommand": value,
                    "phase": "Aborted",
                    "message": "aborted by a person",
                }
            },
        )
        out, err = plugin.process.communicate(timeout=60)
    assert plugin.process.returncode == 0, (out, err)
    assert ["Phase:", "Aborted"] in [line.split() for line in out.splitlines()]


def test_not_found_exits_1_naming_the_object_and_namespace(
    namespace: str, kubeconfig: Path
) -> None:
    for args in (["status", "nope"], ["promote", "nope"], ["history", "nope"]):
        result = run(kubeconfig, "-n", namespace, *args)
        assert result.returncode == 1, result
        assert result.stderr == (
            f'Error from server (NotFound): deployments.modelwerk.dev "nope" not found'
            f' in namespace "{namespace}"\n'
        )
        assert result.stdout == ""


def test_forbidden_exits_1_with_the_api_servers_reason(
    admin_rest: Rest, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    create(admin_rest, namespace)
    viewer = _viewer_kubeconfig(admin_rest, control_plane, namespace, tmp_path)

    assert run(viewer, "status", "iris").returncode == 0  # may read...
    result = run(viewer, "promote", "iris")  # ...but not annotate
    assert result.returncode == 1, result
    assert result.stderr.startswith("Error from server (Forbidden): ")
    assert 'cannot patch resource "deployments" in API group "modelwerk.dev"' in result.stderr
    assert annotation(admin_rest.get(url(namespace))) is None


def test_status_renders_a_status_the_operator_wrote(
    admin_rest: Rest, namespace: str, kubeconfig: Path
) -> None:
    create(admin_rest, namespace)
    # Playing the operator: the status of a canary paused at its second step (an indefinite
    # pause), written through the status subresource, so the real schema must accept it.
    status = canary_at(1)["status"]
    admin_rest.merge_patch(url(namespace, sub="status"), {"status": status})

    result = run(kubeconfig, "-n", namespace, "status", "iris")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[:12] == [
        "Name:            iris",
        f"Namespace:       {namespace}",
        "Model:           iris-classifier (follows the newest Ready version)",
        "Phase:           Paused",
        "Message:         step 2/5: paused at 20% until promoted",
        "Strategy:        Canary",
        "Stable:          iris-classifier-v1",
        "Canary:          iris-classifier-v2",
        "Step:            2/5",
        "Weight:          20% asked, 20% actual",
        "Replicas:        4 desired, 5 current, 5 ready",
        lines[11],  # Rollout started: the age depends on when the test runs
    ]
    assert lines[11].startswith("Rollout started: ")
    steps = lines[lines.index("Steps:") + 1 : lines.index("Steps:") + 6]
    assert steps == [
        "  ✔  1  setWeight 20%",
        "  ▶  2  pause until promoted",
        "     3  setWeight 50%",
        "     4  analysis: errorRate ≤ 1.00%, latency p99 ≤ 250ms; 3 measurements 30s apart",
        "     5  pause 2m",
    ]
    assert "  kubectl modelwerk promote iris   to go on" in lines


def test_status_watch_redraws_when_the_object_changes(
    admin_rest: Rest, namespace: str, kubeconfig: Path
) -> None:
    create(admin_rest, namespace)
    admin_rest.merge_patch(url(namespace, sub="status"), {"status": canary_at(1)["status"]})
    with _started(kubeconfig, "-n", namespace, "status", "iris", "-w") as plugin:
        lines = plugin.follow()
        _read_until(lines, "Phase:           Paused")
        # Playing the operator: the pause ended and the next weight step began.
        admin_rest.merge_patch(
            url(namespace, sub="status"),
            {"status": {"phase": "Progressing", "currentStepIndex": 2, "canaryWeight": 50}},
        )
        seen = _read_until(lines, "Phase:           Progressing")
        _read_until(lines, "  ▶  3  setWeight 50% (now 20%)")
        assert "Name:            iris" in seen  # a whole new view, not a diff
        admin_rest.delete(url(namespace))
        _read_until(lines, "deployments.modelwerk.dev/iris was deleted")
        assert plugin.process.wait(timeout=30) == 0


def test_list_and_history(admin_rest: Rest, namespace: str, kubeconfig: Path) -> None:
    create(admin_rest, namespace, "iris")
    create(admin_rest, namespace, "wine")
    admin_rest.merge_patch(url(namespace, "iris", "status"), {"status": canary_at(2)["status"]})

    listed = run(kubeconfig, "-n", namespace, "list")
    assert listed.returncode == 0, listed
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[0] == ["NAME", "MODEL", "VERSION", "CANARY", "STRATEGY", "WEIGHT", "PHASE", "AGE"]
    assert rows[1][:7] == [
        "iris",
        "iris-classifier",
        "iris-classifier-v1",
        "iris-classifier-v2",
        "Canary",
        "20%",
        "Progressing",
    ]
    assert rows[2][:7] == ["wine", "-", "-", "-", "-", "-", "-"]

    everywhere = run(kubeconfig, "list", "-A")
    assert everywhere.returncode == 0, everywhere
    assert [namespace, "iris"] in [line.split()[:2] for line in everywhere.stdout.splitlines()]

    history = run(kubeconfig, "-n", namespace, "history", "iris")
    assert history.returncode == 0, history
    assert [line.split()[:2] for line in history.stdout.splitlines()] == [
        ["VERSION", "OUTCOME"],
        ["iris-classifier-v2", "Progressing"],
        ["iris-classifier-v1", "Promoted"],
    ]
    empty = run(kubeconfig, "-n", namespace, "history", "wine")
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr == "No rollouts recorded for deployments.modelwerk.dev/wine.\n"


def test_kubectl_finds_the_plugin_and_the_namespace_comes_from_the_context(
    admin_rest: Rest, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    create(admin_rest, namespace)
    # The admin kubeconfig with the test namespace as its context's namespace, through $KUBECONFIG.
    config = yaml.safe_load(control_plane.admin_kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace
    (tmp_path / "config").write_text(yaml.safe_dump(config))
    env = {
        "PATH": f"{PLUGIN.parent}{os.pathsep}{os.environ['PATH']}",
        "KUBECONFIG": f"{tmp_path / 'absent'}{os.pathsep}{tmp_path / 'config'}",
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        ["kubectl", "modelwerk", "pause", "iris", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result
    assert re.fullmatch(f"pause@{STAMP}", annotation(admin_rest.get(url(namespace))) or "")
    listed = subprocess.run(
        ["kubectl", "modelwerk", "list"], capture_output=True, text=True, timeout=120, env=env
    )
    assert listed.returncode == 0, listed
    assert listed.stdout.splitlines()[1].split()[0] == "iris"


# -- helpers ------------------------------------------------------------------------------------


def _viewer_kubeconfig(
    admin: Rest, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> Path:
    """A ServiceAccount that may read modelwerk Deployments and nothing more."""
    admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "viewer"}}
    )
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    admin.create(
        f"{rbac}/roles",
        {
            "metadata": {"name": "mwd-viewer"},
            "rules": [
                {
                    "apiGroups": ["modelwerk.dev"],
                    "resources": ["deployments"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
    )
    admin.create(
        f"{rbac}/rolebindings",
        {
            "metadata": {"name": "mwd-viewer"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "mwd-viewer",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": namespace}],
        },
    )
    token = admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/viewer/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )["status"]["token"]
    path = write_kubeconfig(
        tmp_path / "viewer.kubeconfig",
        control_plane.server,
        control_plane.ca_file,
        user=f"system:serviceaccount:{namespace}:viewer",
        token=token,
        namespace=namespace,
    )
    viewer = Rest.from_kubeconfig(path)
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "namespace": namespace,
                "verb": "get",
                "group": "modelwerk.dev",
                "resource": "deployments",
            }
        },
    }
    # RBAC reaches the authorizer through informers: wait until the binding is in effect.
    wait_until(
        lambda: viewer.create("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)[
            "status"
        ]["allowed"],
        timeout=30,
        what="the viewer Role to be in effect",
    )
    return path


class _Running:
    """The plugin as a background process; ``follow()`` reads its output line by line."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._pump: threading.Thread | None = None

    def follow(self) -> queue.Queue[str]:
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                lines.put(line.rstrip("\n"))

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        return lines

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        if self._pump is not None:
            self._pump.join(timeout=10)  # ends at EOF, now that the process is gone
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def _started(kubeconfig: Path, *args: str) -> Iterator[_Running]:
    running = _Running([str(PLUGIN), "--kubeconfig", str(kubeconfig), *args])
    try:
        yield running
    finally:
        running.close()


def _read_until(lines: queue.Queue[str], wanted: str, timeout: float = 60) -> list[str]:
    """Lines up to and including ``wanted``; fails after ``timeout`` seconds without it."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(remaining, 0.01))
        except queue.Empty:
            raise AssertionError(
                f"no line {wanted!r} within {timeout}s; saw {json.dumps(seen)}"
            ) from None
        seen.append(line)
        if line == wanted:
            return seen


# -- with the operator ------------------------------------------------------------------------

V1, V2 = "iris-classifier-v1", "iris-classifier-v2"


def _paused_canary(
    rest: Rest, node: StandInNode, namespace: str, steps: list[dict[str, Any]]
) -> str:
    """A canary from v1 to v2 (2 replicas, every serving pod Ready) waiting at its step 2."""
    node.auto(namespace, "app.kubernetes.io/component=verification", mode="run")
    node.auto(namespace, "app.kubernetes.io/component=server", mode="ready")
    verified_version(rest, node, namespace, 1)
    verified_version(rest, node, namespace, 2)
    path = create_deployment(
        rest, namespace, modelVersion=V1, replicas=2, strategy={"canary": {"steps": steps}}
    )
    wait_for_status(rest, path, lambda s: s.get("phase") == "Healthy", what="v1 to be served")
    rest.merge_patch(path, {"spec": {"modelVersion": V2}})
    wait_for_status(
        rest,
        path,
        lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == 1,
        what="the canary to wait at step 2",
    )
    return path


def _acted(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The fields the plugin printed after the operator acted on its command."""
    assert result.returncode == 0, result
    head, *rest = result.stdout.splitlines()[1:]
    assert "the operator acted on" in head, result.stdout
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in rest)}


def test_promote_pause_and_resume_a_canary_with_the_operator(
    admin_rest: Rest,
    namespace: str,
    node: StandInNode,
    operator: InProcessOperator,
    kubeconfig: Path,
) -> None:
    path = _paused_canary(
        admin_rest, node, namespace, [{"setWeight": 50}, {"pause": {}}, {"pause": {}}]
    )
    plugin = functools.partial(run, kubeconfig, "-n", namespace)
    shown = plugin("status", "iris").stdout.splitlines()
    assert "  ▶  2  pause until promoted" in shown
    assert "  kubectl modelwerk promote iris   to go on" in shown

    promoted = _acted(plugin("promote", "iris", "--timeout", "60s"))
    assert promoted["Phase"] == "Paused"
    assert promoted["Message"] == "step 3/3: paused at 50% until promoted"
    assert promoted["Weight"] == "50% asked, 50% actual"

    paused = _acted(plugin("pause", "iris", "--timeout", "60s"))
    assert paused["Paused"] == "yes (send `resume` to continue)"
    assert status(admin_rest, path)["paused"] is True
    shown = plugin("status", "iris").stdout.splitlines()
    assert "Phase: Paused (paused by a person)" in [" ".join(line.split()) for line in shown]
    assert "  ▶  3  pause until promoted" in shown

    # resume also ends a pause step without a duration: the canary goes on to full promotion.
    assert _acted(plugin("resume", "iris", "--timeout", "60s"))["Stable"] in (V1, V2)
    wait_for_status(
        admin_rest,
        path,
        lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == V2,
        what="full promotion",
    )
    history = plugin("history", "iris")
    assert [line.split()[:2] for line in history.stdout.splitlines()[:2]] == [
        ["VERSION", "OUTCOME"],
        [V2, "Promoted"],
    ]
    events = admin_rest.get(
        f"/api/v1/namespaces/{namespace}/events", fieldSelector="involvedObject.name=iris"
    )["items"]
    acted_on = sorted(e["message"] for e in events if e["reason"] == "Command")
    assert acted_on == ["Acting on pause", "Acting on promote", "Acting on resume"]


def test_abort_and_retry_a_canary_with_the_operator(
    admin_rest: Rest,
    namespace: str,
    node: StandInNode,
    operator: InProcessOperator,
    kubeconfig: Path,
) -> None:
    path = _paused_canary(admin_rest, node, namespace, [{"setWeight": 50}, {"pause": {}}])
    plugin = functools.partial(run, kubeconfig, "-n", namespace)

    aborted = _acted(plugin("abort", "iris", "--timeout", "60s"))
    assert (aborted["Phase"], aborted["Stable"]) == ("Aborted", V1)
    assert "Rolling out" not in aborted
    shown = plugin("status", "iris").stdout.splitlines()
    assert ["Phase:", "Aborted"] in [line.split() for line in shown]
    assert "  kubectl modelwerk retry iris   to roll the aborted version out again" in shown
    wait_until(
        lambda: tracks(admin_rest, namespace) == {"blue": (V1, 2)},
        timeout=60,
        what="all traffic back on v1",
    )

    retried = _acted(plugin("retry", "iris", "--timeout", "60s"))
    assert retried["Phase"] in ("Progressing", "Paused") and retried["Rolling out"] == V2
    wait_for_status(
        admin_rest,
        path,
        lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == 1,
        what="the retried canary to wait at step 2",
    )
    _acted(plugin("promote", "iris", "--full", "--timeout", "60s"))
    wait_for_status(
        admin_rest,
        path,
        lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == V2,
        what="full promotion",
    )
    outcomes = [line.split()[:2] for line in plugin("history", "iris").stdout.splitlines()[1:]]
    assert outcomes[:2] == [[V2, "Promoted"], [V2, "Aborted"]]
