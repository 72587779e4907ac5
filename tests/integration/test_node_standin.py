"""Tests of the kubelet stand-in: it runs pods' real commands and reports like a kubelet."""

from __future__ import annotations

import asyncio
import json
import textwrap
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from kubernetes import client
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from modelwerk.api.v1alpha1.deployment import MetricSample
from modelwerk.kube.scrape import MetricsReader
from tests.cluster import process, specs
from tests.cluster.node import PodRunTimeout, StandInNode
from tests.cluster.wait import wait_until
from tests.unit.server.helpers import Artifact, v2_matrix, write_artifact

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


# -- mode "serve": long-running server pods on their own loopback IPs ------------------------

PVC_ROOT = "/var/run/modelwerk/pvc"


def _trained_iris(node: StandInNode, namespace: str) -> Artifact:
    """A small real model written to the namespace's artifact claim, as the trainer does."""
    data = load_iris(as_frame=True)
    estimator = Pipeline(
        [("scale", StandardScaler()), ("forest", RandomForestClassifier(n_estimators=5))]
    )
    root = node.claims_dir / namespace / "modelwerk-artifacts"
    return write_artifact(root, "iris", estimator, data.data, data.target, "classification")


def _server_pod_template(artifact: Artifact, sha256: str | None = None) -> dict[str, Any]:
    """A serving pod like the operator's: the model from the claim, readiness on /v2/health."""
    uri = f"pvc://modelwerk-artifacts/models/iris/{artifact.sha256}/model.joblib"
    server = specs.container(
        name="server",
        command=[
            "modelwerk",
            "serve",
            "--model-uri",
            uri,
            "--sha256",
            sha256 or artifact.sha256,
            "--name",
            "iris",
            "--version",
            "iris-v1",
            "--port",
            "8080",
        ],
        env=[{"name": "MODELWERK_PVC_ROOT", "value": PVC_ROOT}, {"name": "HOME", "value": "/tmp"}],
        ports=[{"name": "http", "containerPort": 8080}],
        readinessProbe={"httpGet": {"path": "/v2/health/ready", "port": "http"}},
        terminationMessagePolicy="FallbackToLogsOnError",
        volumeMounts=[
            {"name": "artifacts", "mountPath": f"{PVC_ROOT}/modelwerk-artifacts", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    )
    volumes = [
        {
            "name": "artifacts",
            "persistentVolumeClaim": {"claimName": "modelwerk-artifacts", "readOnly": True},
        },
        {"name": "tmp", "emptyDir": {}},
    ]
    return {
        "metadata": {"labels": {"app": "iris"}},
        "spec": specs.pod_spec(server, restart_policy="Always", volumes=volumes),
    }


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_serve_mode_runs_real_servers_that_become_ready_on_their_own_pod_ips(
    kube: client.ApiClient, namespace: str, node: StandInNode
) -> None:
    artifact = _trained_iris(node, namespace)
    core, apps = client.CoreV1Api(kube), client.AppsV1Api(kube)
    driver = node.auto(namespace, "app=iris", mode="serve")
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "iris"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "iris"}},
                "template": _server_pod_template(artifact),
            },
        },
    )
    wait_until(
        lambda: apps.read_namespaced_deployment("iris", namespace).status.ready_replicas == 2,
        timeout=120,
        what="both server pods to be Ready",
    )
    pods = core.list_namespaced_pod(namespace, label_selector="app=iris").items
    ips = [p.status.pod_ip for p in pods]
    assert len(set(ips)) == 2 and all(ip.startswith("127.") for ip in ips)
    rows = artifact.frame.iloc[:3]
    for n, ip in enumerate(ips):
        for i in range(n + 2):  # 2 requests to the first pod, 3 to the second
            response = httpx.post(
                f"http://{ip}:8080/v2/models/iris/infer", json=v2_matrix(rows, id=f"r{n}{i}")
            )
            assert response.status_code == 200, response.text
            assert (
                response.json()["outputs"][0]["data"] == artifact.estimator.predict(rows).tolist()
            )

    async def sample() -> MetricSample:
        reader = MetricsReader()
        try:
            return await reader.sample_pods([(ip, 8080) for ip in ips], datetime.now(UTC))
        finally:
            await reader.close()

    s = asyncio.run(sample())
    assert (s.pods, s.requests, s.errors) == (2, 5, 0)

    # Deleting a pod stops its server; the ReplicaSet's replacement is served and gets Ready.
    doomed = pods[0].metadata.name
    pid = driver.served[doomed].pid
    core.delete_namespaced_pod(doomed, namespace)
    assert process.wait_gone([pid], timeout=30) == []
    wait_until(
        lambda: doomed not in {p.metadata.name for p in core.list_namespaced_pod(namespace).items},
        what=f"pod {doomed} to be removed",
    )
    # SIGTERM ended it, not the SIGKILL after the grace period (uvicorn re-raises SIGTERM
    # after its graceful shutdown: 143).
    assert driver.served[doomed].exit_code in (0, 143)
    wait_until(
        lambda: apps.read_namespaced_deployment("iris", namespace).status.ready_replicas == 2,
        timeout=120,
        what="the replacement pod to be Ready",
    )
    new_ips = {p.status.pod_ip for p in core.list_namespaced_pod(namespace).items}
    assert ips[1] in new_ips and ips[0] not in new_ips
    for ip in new_ips:
        assert httpx.get(f"http://{ip}:8080/v2/health/ready").status_code == 200


def test_a_server_that_cannot_start_never_gets_ready_and_says_why(
    kube: client.ApiClient, namespace: str, node: StandInNode
) -> None:
    artifact = _trained_iris(node, namespace)
    core = client.CoreV1Api(kube)
    template = _server_pod_template(artifact, sha256="0" * 64)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad-server", **template["metadata"]},
    }
    core.create_namespaced_pod(namespace, {**pod, "spec": template["spec"]})
    served = node.serve(namespace, "bad-server")

    def crashed() -> Any:
        p = core.read_namespaced_pod("bad-server", namespace)
        statuses = p.status.container_statuses or []
        return statuses and statuses[0].last_state.terminated and p

    p = wait_until(crashed, timeout=60, what="the server to exit")
    terminated = p.status.container_statuses[0].last_state.terminated
    assert (terminated.exit_code, served.exit_code) == (1, 1)
    assert "0000000000000000" in terminated.message, terminated.message
    assert p.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert p.status.phase == "Running" and not _ready(p)
    core.delete_namespaced_pod("bad-server", namespace)
    wait_until(
        lambda: not core.list_namespaced_pod(namespace).items,
        what="the crashed pod to be removed",
    )


def test_a_server_that_stops_answering_its_probe_turns_not_ready(
    kube: client.ApiClient, namespace: str, node: StandInNode
) -> None:
    """Readiness follows the probe, not just the process: a server that closes its port but
    keeps running is taken out of Ready."""
    script = textwrap.dedent("""
        import http.server, sys, threading, time
        host = sys.argv[sys.argv.index("--host") + 1]
        server = http.server.HTTPServer((host, 8080), http.server.SimpleHTTPRequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        time.sleep(3)
        server.shutdown()
        server.server_close()
        time.sleep(300)
    """)
    probe = {"httpGet": {"path": "/", "port": 8080}}
    container = specs.container(command=["python", "-c", script], readinessProbe=probe)
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, specs.pod("flaky", container, restart_policy="Always"))
    served = node.serve(namespace, "flaky")
    wait_until(lambda: _ready(core.read_namespaced_pod("flaky", namespace)), what="Ready")
    wait_until(lambda: not _ready(core.read_namespaced_pod("flaky", namespace)), what="not Ready")
    assert served.exit_code is None, "still running"
    core.delete_namespaced_pod("flaky", namespace)
    assert process.wait_gone([served.pid], timeout=30) == []


SIDECAR = textwrap.dedent("""
    import json, os, signal
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    open(os.environ["READY"], "w").close()
    signal.sigwait({signal.SIGTERM})  # the main container has exited
    seen = open(os.path.join(os.environ["OUT"], "result.txt")).read()
    with open(os.environ["MESSAGE"], "w") as f:
        json.dump({"seen": seen}, f)
""")


def test_init_containers_run_first_and_sidecars_outlive_the_main_container(
    kube: client.ApiClient, namespace: str, node: StandInNode
) -> None:
    shared = [{"name": "work", "mountPath": "/work"}]
    env = [
        {"name": "OUT", "value": "/work"},
        {"name": "MESSAGE", "value": "/dev/termination-log"},
        {"name": "READY", "value": "/work/ready"},
    ]
    init = specs.container(
        "init",
        command=["python", "-c", "import sys; open(sys.argv[1], 'w').write('prepared')"],
        args=["/work/input.txt"],
        volumeMounts=shared,
    )
    sidecar = specs.container(
        "sidecar",
        command=["python", "-c", SIDECAR],
        env=env,
        volumeMounts=shared,
        restartPolicy="Always",
        startupProbe={"exec": {"command": ["test", "-e", "/work/ready"]}, "periodSeconds": 1},
    )
    main = specs.container(
        command=[
            "python",
            "-c",
            "import sys; d = sys.argv[1]; "
            "open(d + '/result.txt', 'w').write(open(d + '/input.txt').read() + '+trained')",
            "/work",
        ],
        volumeMounts=shared,
    )
    volumes = [{"name": "work", "emptyDir": {}}]
    client.CoreV1Api(kube).create_namespaced_pod(
        namespace, specs.pod("byo", main, initContainers=[init, sidecar], volumes=volumes)
    )
    result = node.run(namespace, "byo")
    assert result.exit_code == 0, result.describe()
    pod = client.CoreV1Api(kube).read_namespaced_pod("byo", namespace)
    assert pod.status.phase == "Succeeded"
    statuses = {s.name: s.state.terminated for s in pod.status.init_container_statuses}
    assert statuses["init"].exit_code == 0
    assert statuses["sidecar"].exit_code == 0, statuses
    assert json.loads(statuses["sidecar"].message) == {"seen": "prepared+trained"}


def test_a_failing_init_container_fails_the_pod_before_the_main_one_runs(
    kube: client.ApiClient, namespace: str, node: StandInNode
) -> None:
    init = specs.container("init", command=["python", "-c", "raise SystemExit(3)"])
    main = specs.container(command=["python", "-c", "open('/never', 'w')"])
    client.CoreV1Api(kube).create_namespaced_pod(
        namespace, specs.pod("broken", main, initContainers=[init])
    )
    result = node.run(namespace, "broken")
    assert result.exit_code == 3
    pod = client.CoreV1Api(kube).read_namespaced_pod("broken", namespace)
    assert pod.status.phase == "Failed"
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 3
    assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"
