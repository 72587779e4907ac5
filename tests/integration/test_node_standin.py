"""Tests of the kubelet stand-in: it runs pods' real commands and reports like a kubelet."""

from __future__ import annotations

import json
import textwrap

import pytest
from kubernetes import client

from tests.cluster import process, specs
from tests.cluster.node import PodRunTimeout, StandInNode
from tests.cluster.wait import wait_until

# Writes into the PVC through a path from env and one from an argument, reads a
# ConfigMap volume, and reports a JSON result via the termination message path,
# as the modelwerk runtime does. Paths reach the code through env/args only:
# the stand-in rewrites those, not paths hard-coded in the program.
TRAINER = textwrap.dedent("""
    import json, os, sys
    out = sys.argv[1].split("=", 1)[1]
    with open(os.path.join(os.environ["DATA_DIR"], "model.txt"), "w") as f:
        f.write("weights of " + os.environ["POD_NAME"])
    with open(out, "w") as f:
        f.write(open(os.environ["ALPHA_FILE"]).read())
    env = os.environ
    result = {"pod": env["POD_NAME"], "secret": env["TOKEN"], "color": env["CFG_color"],
              "cwd": os.getcwd(), "label": os.environ["TEAM"]}
    with open(os.environ["MODELWERK_TERMINATION_MESSAGE_PATH"], "w") as f:
        json.dump(result, f)
    print("trained")
""")


def test_runs_the_real_command_with_volumes_env_and_termination_message(
    kube: client.ApiClient, namespace: str, node: StandInNode
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "params"}, "data": {"alpha": "0.5", "color": "red"}}
    )
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}}
    )
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "artifacts"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    trainer = specs.container(
        command=["python3", "-c", TRAINER],
        args=["--out=/artifacts/alpha.txt"],
        workingDir="/artifacts",
        env=[
            {"name": "DATA_DIR", "value": "/artifacts"},
            {"name": "ALPHA_FILE", "value": "/etc/params/alpha"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "MODELWERK_TERMINATION_MESSAGE_PATH", "value": "/dev/termination-log"},
        ],
        envFrom=[{"configMapRef": {"name": "params"}, "prefix": "CFG_"}],
        volumeMounts=[
            {"name": "data", "mountPath": "/artifacts"},
            {"name": "params", "mountPath": "/etc/params"},
        ],
    )
    volumes = [
        {"name": "data", "persistentVolumeClaim": {"claimName": "artifacts"}},
        {"name": "params", "configMap": {"name": "params"}},
    ]
    core.create_namespaced_pod(
        namespace, specs.pod("train-1", trainer, labels={"team": "ml"}, volumes=volumes)
    )

    result = node.run(namespace, "train-1")

    assert result.exit_code == 0, result.describe()
    assert result.stdout == "trained\n"
    assert result.host_path("/artifacts/model.txt").read_text() == "weights of train-1"
    assert result.host_path("/artifacts/alpha.txt").read_text() == "0.5"
    reported = json.loads(result.message)
    assert reported == {
        "pod": "train-1",
        "secret": "s3cr3t",
        "color": "red",
        "cwd": str(result.host_path("/artifacts")),
        "label": "ml",
    }
    pod = core.read_namespaced_pod("train-1", namespace)
    assert pod.status.phase == "Succeeded"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert json.loads(terminated.message) == reported

    # A second pod mounting the same claim sees the first one's files.
    reader = specs.container(
        command=["python", "-c", "import sys; print(open(sys.argv[1]).read())"],
        args=["/mnt/model.txt"],
        volumeMounts=[{"name": "data", "mountPath": "/mnt"}],
    )
    core.create_namespaced_pod(namespace, specs.pod("read-1", reader, volumes=volumes[:1]))
    assert node.run(namespace, "read-1").stdout == "weights of train-1\n"


def test_failure_falls_back_to_the_log_tail(
    kube: client.ApiClient, namespace: str, node: StandInNode
) -> None:
    failing = specs.container(
        command=["python", "-c", "print('x' * 5000); print('loss is nan'); raise SystemExit(4)"],
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    client.CoreV1Api(kube).create_namespaced_pod(namespace, specs.pod("fails", failing))
    result = node.run(namespace, "fails")
    assert result.exit_code == 4
    assert result.message.endswith("loss is nan\n") and len(result.message) == 2048
    pod = client.CoreV1Api(kube).read_namespaced_pod("fails", namespace)
    assert pod.status.phase == "Failed"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason, terminated.message) == (
        4,
        "Error",
        result.message,
    )


def test_timeout_kills_the_process_and_fails_the_pod(
    kube: client.ApiClient, namespace: str, node: StandInNode
) -> None:
    sleeper = specs.container(
        command=["python", "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(300)"]
    )
    client.CoreV1Api(kube).create_namespaced_pod(namespace, specs.pod("hangs", sleeper))
    with pytest.raises(PodRunTimeout):
        node.run(namespace, "hangs", timeout=2)
    pod = client.CoreV1Api(kube).read_namespaced_pod("hangs", namespace)
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 137
    pid = int(next((node.workdir / "pods").glob(f"{namespace}_hangs_*/stdout")).read_text())
    assert process.wait_gone([pid], timeout=5) == []


def test_auto_mode_runs_job_pods_until_the_job_completes(
    kube: client.ApiClient, namespace: str, node: StandInNode
) -> None:
    batch = client.BatchV1Api(kube)
    job = specs.job(
        "auto",
        specs.container(command=["python", "-c", "print('hello from the job')"]),
        labels={"app": "auto"},
    )
    with node.auto(namespace, "app=auto") as driver:
        batch.create_namespaced_job(namespace, job)
        pod = node.wait_for_pod(namespace, "app=auto")
        result = driver.wait_for(pod["metadata"]["name"], timeout=60)
    assert result.stdout == "hello from the job\n"

    def complete() -> bool:
        conditions = batch.read_namespaced_job_status("auto", namespace).status.conditions or []
        return any(c.type == "Complete" and c.status == "True" for c in conditions)

    wait_until(complete, what="Job auto to complete")


def test_deleted_pods_are_finished_and_removed(
    kube: client.ApiClient, namespace: str, node: StandInNode
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(
        namespace,
        specs.pod("doomed", specs.container(command=["sleep", "300"]), restart_policy="Always"),
    )
    node.mark_running(namespace, "doomed")
    core.delete_namespaced_pod("doomed", namespace)  # graceful: stays Terminating without a kubelet
    wait_until(
        lambda: (
            "doomed" not in {p.metadata.name for p in core.list_namespaced_pod(namespace).items}
        ),
        what="the stand-in to finish and remove pod doomed",
    )
