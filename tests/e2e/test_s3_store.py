"""The iris chain with its artifact store on a real S3 server, and serving pods with no claim.

versitygw (hack/s3) runs on the host, listening on the address pods reach the host on:
``MODELWERK_E2E_S3_HOST`` (hack/e2e.sh node sets the node's bridge address, 10.88.0.1). The
namespace moves itself to the server with the ConfigMap ``modelwerk-artifact-store`` and a
Secret holding the keys, as a namespace owner would; the operator keeps its default (the claim,
which test_iris.py exercises). Without that variable (kind, a cloud cluster) the module is
skipped with that reason.

The tests run in file order: the second turns inference capture on for the first one's
Deployment, then stops the S3 server for a while.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.s3 import S3Server
from tests.e2e import traffic
from tests.e2e.chain import (
    DEPLOYMENT,
    JOB_TIMEOUT,
    SERVE_TIMEOUT,
    deployment,
    sample,
    stable_url,
    status,
    wait_deployment,
    wait_registered,
)
from tests.e2e.conftest import OPERATOR_NAMESPACE
from tests.e2e.kubectl import JSON, Kubectl, condition, wait_for

HOST_ENV = "MODELWERK_E2E_S3_HOST"
BUCKET = "modelwerk-e2e"
PREFIX = "team"

pytestmark = pytest.mark.skipif(
    not os.environ.get(HOST_ENV),
    reason=f"{HOST_ENV} is not set: no host address the cluster's pods can reach an S3 server on",
)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with tempfile.TemporaryDirectory(prefix="mw-e2e-s3-") as workdir:
        server = S3Server(Path(workdir), host=os.environ[HOST_ENV])
        server.start()
        try:
            server.create_bucket(BUCKET)
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def store(kubectl: Kubectl, namespace: str, s3: S3Server) -> str:
    """The namespace on the S3 server: its Secret and its override ConfigMap."""
    kubectl.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "artifact-store"},
                "stringData": s3.credentials,
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "modelwerk-artifact-store"},
                "data": {
                    "uri": f"s3://{BUCKET}/{PREFIX}",
                    "endpoint": s3.endpoint,
                    "region": s3.region,
                    "secretName": "artifact-store",
                },
            },
        ],
        namespace,
    )
    return f"s3://{BUCKET}/{PREFIX}"


def _claim_volumes(pod: JSON) -> list[str]:
    return [v["name"] for v in pod["spec"].get("volumes") or [] if "persistentVolumeClaim" in v]


def test_the_iris_chain_stores_everything_on_s3_and_serves_without_a_claim(
    kubectl: Kubectl, namespace: str, s3: S3Server, store: str
) -> None:
    kubectl.apply(sample("dataset"), namespace)
    wait_for(
        lambda: condition(kubectl.get("dataset", "iris", namespace), "Ready") == "True",
        timeout=JOB_TIMEOUT,
        what="Dataset iris to be Ready",
    )
    assert status(kubectl, "dataset", "iris", namespace)["snapshotUri"].startswith(f"{store}/")
    kubectl.apply(sample("trainingjob"), namespace)
    version = wait_registered(kubectl, namespace, "iris-rf")
    artifact = kubectl.get("modelversion", version, namespace)["spec"]["artifact"]
    assert artifact["uri"].startswith(f"{store}/models/"), artifact

    dep = sample("deployment")
    dep["spec"]["service"] = {"type": "ClusterIP", "port": 80}
    dep["spec"]["replicas"] = 2
    dep["spec"].pop("monitoring", None)  # no retraining here: test_iris.py covers it
    kubectl.apply(dep, namespace)
    kubectl.wait(
        f"deployments.modelwerk.dev/{DEPLOYMENT}", "Available", namespace, timeout=SERVE_TIMEOUT
    )
    result = traffic.send(kubectl, namespace, stable_url(kubectl, namespace), 60)
    assert result.errors == {}, result.errors
    assert result.versions == {version: 60}
    assert set(result.predictions) == {"0", "1", "2"}, result.predictions

    # No claim in the namespace, none mounted by any pod: serving pods downloaded the model.
    assert kubectl.list("persistentvolumeclaims", namespace) == []
    pods = kubectl.list("pods", namespace)
    servers = [
        p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/component") == "server"
    ]
    assert len(servers) == 2
    for pod in pods:
        assert _claim_volumes(pod) == [], pod["metadata"]["name"]
    for pod in servers:
        assert "models" in {v["name"] for v in pod["spec"]["volumes"]}
        log = kubectl.logs(pod["metadata"]["name"], namespace)
        assert f"sha256 {artifact['sha256']}" in log, log[-2000:]

    keys = s3.keys(BUCKET)
    assert f"{PREFIX}/models/iris-classifier/{artifact['sha256']}/model.joblib" in keys
    assert all(k.startswith(f"{PREFIX}/") for k in keys), keys

    # The keys stayed in their Secret: not in an object, an event, a status or a log line.
    written = json.dumps(
        [
            kubectl.list(kind, namespace)
            for kind in ("pods", "events", "jobs", "datasets", "trainingjobs", "modelversions")
        ]
    )
    assert s3.secret_key not in written
    for pod in kubectl.list(
        "pods", OPERATOR_NAMESPACE, "app.kubernetes.io/name=modelwerk-operator"
    ):
        assert s3.secret_key not in kubectl.logs(pod["metadata"]["name"], OPERATOR_NAMESPACE)
    for pod in pods:
        assert s3.secret_key not in kubectl.logs(pod["metadata"]["name"], namespace)


def _capture_files(s3: S3Server, namespace: str) -> set[str]:
    return {
        key
        for stream in ("captures", "labels")
        for key in s3.keys(BUCKET, f"{PREFIX}/{stream}/{namespace}/{DEPLOYMENT}/")
    }


def _capturing(kubectl: Kubectl, namespace: str) -> bool:
    """Every serving pod left runs with capture on (the change rolls the pods), 2 Ready."""
    pods = kubectl.list("pods", namespace, "app.kubernetes.io/component=server")
    return len(pods) == 2 and all(
        "--capture" in p["spec"]["containers"][0]["command"]
        and condition(p, "Ready") == "True"
        and not p["metadata"].get("deletionTimestamp")
        for p in pods
    )


def _degraded(dep_status: JSON) -> str | None:
    return condition({"status": dep_status}, "CaptureDegraded") or None


def test_capture_on_s3_keeps_serving_through_a_store_outage_and_recovers(
    kubectl: Kubectl, namespace: str, s3: S3Server, store: str
) -> None:
    """Issue 14: the store stopped for a while: predictions keep flowing, the pods count what
    their full buffers drop, the Deployment says capture is degraded; once the store is back,
    capture writes again and every file flushed before the outage is still there."""
    if kubectl.get_or_none("deployments.modelwerk.dev", DEPLOYMENT, namespace) is None:
        pytest.fail("the chain test above did not leave its Deployment")
    capture = {
        "inputSampleRate": 1.0,
        "flushIntervalSeconds": 1,
        "intervalSeconds": 5,
        "bufferRows": 100,  # the least the API allows: an outage fills it with little traffic
    }
    kubectl.merge_patch(
        "deployments.modelwerk.dev", DEPLOYMENT, namespace,
        {"spec": {"monitoring": {"capture": capture}}},
    )  # fmt: skip
    wait_for(
        lambda: _capturing(kubectl, namespace), timeout=SERVE_TIMEOUT,
        what="2 Ready serving pods with capture on, and no other",
    )  # fmt: skip
    wait_deployment(
        kubectl, namespace, "capture healthy",
        lambda s: s.get("phase") == "Healthy" and _degraded(s) == "False",
    )  # fmt: skip
    url = stable_url(kubectl, namespace)
    up = traffic.send(kubectl, namespace, url, 100)
    assert up.errors == {} and up.total == 100, up
    written = wait_deployment(
        kubectl, namespace, "the first 100 rows written",
        lambda s: (s.get("capture") or {}).get("writtenRows", 0) >= 100,
    )["status"]["capture"]  # fmt: skip
    before = _capture_files(s3, namespace)
    assert any(f"/captures/{namespace}/{DEPLOYMENT}/" in k for k in before), before

    s3.pause()
    try:
        down = traffic.send(kubectl, namespace, url, 800)
        assert down.errors == {} and down.total == 800, down  # every prediction answered
        degraded = wait_deployment(
            kubectl, namespace, "CaptureDegraded=True and dropped rows counted",
            lambda s: _degraded(s) == "True" and (s.get("capture") or {}).get("droppedRows", 0) > 0,
        )["status"]  # fmt: skip
        print(f"while the store was down: {degraded['capture']}")
        assert degraded["phase"] == "Healthy"
    finally:
        s3.resume()

    again = traffic.send(kubectl, namespace, url, 60)
    assert again.errors == {} and again.total == 60, again
    recovered = wait_deployment(
        kubectl, namespace, "capture to recover (CaptureDegraded=False, rows written again)",
        lambda s: _degraded(s) == "False"
        and (s.get("capture") or {}).get("writtenRows", 0) >= written["writtenRows"] + 60,
    )["status"]  # fmt: skip
    print(f"after the store came back: {recovered['capture']}")
    after = _capture_files(s3, namespace)
    assert before <= after, f"lost in the outage: {sorted(before - after)}"
    assert after - before, "nothing written after the outage"
    assert deployment(kubectl, namespace)["status"]["phase"] == "Healthy"
