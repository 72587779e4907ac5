"""Tests of the test harness itself: the control plane is real and behaves like a cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.cluster import process, specs
from tests.cluster.controlplane import REPO_ROOT, ControlPlane
from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.wait import wait_until


def _job_condition(batch: client.BatchV1Api, namespace: str, name: str) -> str | None:
    """The first terminal condition type (Complete/Failed) that is True, if any."""
    status = batch.read_namespaced_job_status(name, namespace).status
    for condition in (status.conditions if status else None) or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return str(condition.type)
    return None


def _job_pod(core: client.CoreV1Api, namespace: str, job: str) -> client.V1Pod:
    return wait_until(
        lambda: core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items,
        what=f"a pod of Job {job}",
    )[0]


def test_control_plane_answers(control_plane: ControlPlane, kube: client.ApiClient) -> None:
    assert client.VersionApi(kube).get_code().git_version == "v1.34.4"
    assert control_plane.kubectl("get", "--raw", "/readyz") == "ok"
    names = {ns.metadata.name for ns in client.CoreV1Api(kube).list_namespace().items}
    assert {"default", "kube-system", "modelwerk-system"} <= names


def test_crds_from_repo_are_established(kube: client.ApiClient) -> None:
    expected = {
        doc["metadata"]["name"]
        for path in (REPO_ROOT / "crds").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    }
    crds = {
        crd.metadata.name: crd
        for crd in client.ApiextensionsV1Api(kube).list_custom_resource_definition().items
    }
    assert expected <= set(crds)
    for name in expected:
        assert any(
            c.type == "Established" and c.status == "True" for c in crds[name].status.conditions
        ), name


def test_operator_kubeconfig_has_only_the_operator_rbac(
    operator_kube: client.ApiClient, namespace: str
) -> None:
    review = client.AuthenticationV1Api(operator_kube).create_self_subject_review({})
    assert (
        review.status.user_info.username
        == "system:serviceaccount:modelwerk-system:modelwerk-operator"
    )

    core = client.CoreV1Api(operator_kube)
    core.list_pod_for_all_namespaces(limit=1)  # granted: get/list/watch pods
    client.BatchV1Api(operator_kube).list_namespaced_job(namespace)  # granted
    with pytest.raises(ApiException) as denied:  # the operator role has no access to Secrets at all
        core.list_secret_for_all_namespaces(limit=1)
    assert denied.value.status == 403
    with pytest.raises(ApiException) as denied:  # nor may it write ConfigMaps
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "nope"}})
    assert denied.value.status == 403


def test_deployment_gets_a_replicaset_and_scheduled_pods(
    kube: client.ApiClient, namespace: str, node: StandInNode
) -> None:
    labels = {"app": "web"}
    client.AppsV1Api(kube).create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": specs.pod_spec(
                        specs.container(command=["sleep", "1"]), restart_policy="Always"
                    ),
                },
            },
        },
    )
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    wait_until(lambda: apps.list_namespaced_replica_set(namespace).items, what="a ReplicaSet")

    def scheduled() -> (
        list[client.V1Pod] | None
    ):  # the real scheduler binds them to the stand-in node
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        return pods if len(pods) == 2 and all(p.spec.node_name == node.name for p in pods) else None

    pods = wait_until(scheduled, what="2 pods scheduled onto the stand-in node")
    for pod in pods:
        node.mark_running(namespace, pod.metadata.name)
    wait_until(
        lambda: (
            (apps.read_namespaced_deployment_status("web", namespace).status.ready_replicas or 0)
            == 2
        ),
        what="Deployment web with 2 ready replicas",
    )


def test_job_completes_when_its_pod_succeeds(
    kube: client.ApiClient, namespace: str, node: StandInNode
) -> None:
    batch, core = client.BatchV1Api(kube), client.CoreV1Api(kube)
    batch.create_namespaced_job(namespace, specs.job("ok", specs.container(command=["true"])))
    pod = _job_pod(core, namespace, "ok")
    node.terminate(namespace, pod.metadata.name, exit_code=0)
    assert (
        wait_until(lambda: _job_condition(batch, namespace, "ok"), what="Job ok to finish")
        == "Complete"
    )


def test_job_fails_with_the_exit_code_and_message_on_the_pod(
    kube: client.ApiClient, namespace: str, node: StandInNode
) -> None:
    batch, core = client.BatchV1Api(kube), client.CoreV1Api(kube)
    batch.create_namespaced_job(namespace, specs.job("bad", specs.container(command=["false"])))
    pod = _job_pod(core, namespace, "bad")
    node.terminate(namespace, pod.metadata.name, exit_code=3, message="training diverged")
    assert (
        wait_until(lambda: _job_condition(batch, namespace, "bad"), what="Job bad to finish")
        == "Failed"
    )
    terminated = (
        core.read_namespaced_pod(pod.metadata.name, namespace)
        .status.container_statuses[0]
        .state.terminated
    )
    assert (terminated.exit_code, terminated.reason, terminated.message) == (
        3,
        "Error",
        "training diverged",
    )


def test_garbage_collector_deletes_dependents(kube: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {
                "name": "owned",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": owner.metadata.uid,
                    }
                ],
            }
        },
    )
    core.delete_namespaced_config_map("owner", namespace)
    wait_until(
        lambda: (
            "owned"
            not in {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}
        ),
        timeout=60,
        what="the garbage collector to delete ConfigMap owned",
    )


def test_restricted_namespace_rejects_a_privileged_pod(
    kube: client.ApiClient, namespace: str
) -> None:
    privileged = specs.pod(
        "root", specs.container(command=["true"], securityContext={"privileged": True})
    )
    with pytest.raises(ApiException) as rejected:
        client.CoreV1Api(kube).create_namespaced_pod(namespace, privileged)
    assert rejected.value.status == 403
    assert "violates PodSecurity" in str(rejected.value.body)


def test_managed_process_stop_leaves_no_process(tmp_path: Path) -> None:
    # A child with a grandchild: stopping kills the whole process group.
    proc = process.ManagedProcess(
        "sleeper", ["sh", "-c", "sleep 300 & echo $! > child; wait"], tmp_path / "log", cwd=tmp_path
    )
    child = int(
        wait_until(lambda: (tmp_path / "child").read_text().strip(), what="the grandchild's pid")
    )
    assert process.pid_exists(child)
    proc.stop(timeout=5)
    assert process.wait_gone([proc.pid, child], timeout=5) == []


def test_killed_test_runner_leaves_no_control_plane_process(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: even a SIGKILLed test process cannot leak its children."""
    script = (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from tests.cluster import process;"
        "from pathlib import Path;"
        "p = process.ManagedProcess('sleeper', ['sleep', '300'], Path(sys.argv[2]));"
        "print(p.pid, flush=True); time.sleep(300)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(REPO_ROOT), str(tmp_path / "log")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert process.pid_exists(child)
    parent.kill()
    parent.wait()
    parent.stdout.close()
    assert process.wait_gone([child], timeout=5) == []


def test_operator_runs_in_process_and_restarts(operator: InProcessOperator) -> None:
    assert os.environ["MODELWERK_KUBECONFIG"] == str(operator.kubeconfig)
    wait_until(
        lambda: "Started modelwerk operator" in operator.output, what="the operator to start"
    )
    operator.restart()
    assert operator.running and len(operator.runs) == 2
    wait_until(
        lambda: operator.output.count("Started modelwerk operator") == 2,
        what="the operator to start again",
    )
    operator.stop()
    assert not operator.running
    assert "Activity 'login' succeeded" in operator.output
