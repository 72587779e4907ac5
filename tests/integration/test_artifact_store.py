"""The artifact store on a real S3-compatible server (versitygw, tests/cluster/s3.py).

The operator runs under its own RBAC; the stand-in node runs every pod's real command: the
validator and trainer write to the bucket, the verifier and the model server read from it, and
the server downloads the model into its emptyDir and verifies it before loading. No pod
mounts a claim, and no claim is created. The store's keys reach the pods only through
``secretKeyRef``; the tests look for the secret key's value in everything the operator wrote
or logged.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.s3 import S3Server
from tests.cluster.wait import wait_until
from tests.integration.serving import GROUP, create_deployment, wait_for_status
from tests.integration.test_training_chain import FAST, apply, condition, phase_is, status

SECRET = "artifact-store"
V1 = "iris-classifier-v1"
IRIS_ROWS = {  # one typical flower of each class
    0: [5.0, 3.4, 1.5, 0.2],
    1: [5.9, 2.8, 4.3, 1.3],
    2: [6.6, 3.0, 5.6, 2.1],
}
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def _bucket(s3: S3Server) -> str:
    name = f"mw-{secrets.token_hex(4)}"
    s3.create_bucket(name)
    return name


OperatorWith = Callable[[dict[str, str]], contextlib.AbstractContextManager[InProcessOperator]]


def _store_settings(**store: str) -> dict[str, str]:
    """``MODELWERK_ARTIFACT_STORE`` (``uri``) and its ``_ENDPOINT``, ``_REGION``, ``_SECRET``."""
    return {
        "MODELWERK_ARTIFACT_STORE" + ("" if key == "uri" else f"_{key.upper()}"): value
        for key, value in store.items()
    }


@pytest.fixture
def s3_operator(
    operator_with: OperatorWith, s3: S3Server
) -> Iterator[tuple[InProcessOperator, str]]:
    """The operator with its default store on a fresh bucket of the S3 server."""
    bucket = _bucket(s3)
    settings = _store_settings(
        uri=f"s3://{bucket}/modelwerk", endpoint=s3.endpoint, region=s3.region, secret=SECRET
    )
    with operator_with(settings) as op:
        yield op, bucket


def _trained(rest: Rest, namespace: str, what: str) -> None:
    """Apply the sample TrainingJob (a light search) and wait until its version is verified."""
    apply(rest, namespace, "TrainingJob", **FAST)
    mv = wait_until(
        lambda: phase_is(rest, namespace, "modelversions", V1, "Ready", "Failed"),
        timeout=300,
        what=what,
    )
    assert mv["phase"] == "Ready", mv


def _secret(rest: Rest, namespace: str, s3: S3Server, name: str = SECRET) -> None:
    rest.create(f"/api/v1/namespaces/{namespace}/secrets", s3.secret(name))


def _infer(ip: str, row: list[float]) -> Any:
    body = {
        "inputs": [
            {"name": c, "shape": [1], "datatype": "FP64", "data": [v]}
            for c, v in zip(COLUMNS, row, strict=True)
        ]
    }
    request = urllib.request.Request(
        f"http://{ip}:8080/v2/models/iris-classifier/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        outputs = json.loads(response.read())["outputs"]
    return next(o for o in outputs if o["name"] != "probabilities")["data"][0]


def _everything_written(rest: Rest, namespace: str) -> str:
    """Every object of the namespace the operator or a controller wrote, as one text."""
    paths = [
        f"/api/v1/namespaces/{namespace}/pods",
        f"/api/v1/namespaces/{namespace}/events",
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        *(f"{GROUP}/namespaces/{namespace}/{plural}" for plural in
          ("datasets", "trainingjobs", "modelversions", "deployments")),
    ]  # fmt: skip
    return json.dumps([rest.get(path) for path in paths])


def _claims(rest: Rest, namespace: str) -> list[str]:
    items = rest.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims")["items"]
    return [c["metadata"]["name"] for c in items]


def test_the_chain_runs_and_serves_from_s3_with_no_claim_anywhere(
    admin_rest: Rest,
    namespace: str,
    node: StandInNode,
    s3: S3Server,
    s3_operator: tuple[InProcessOperator, str],
) -> None:
    operator, bucket = s3_operator
    _secret(admin_rest, namespace, s3)
    jobs = node.auto(
        namespace, "app.kubernetes.io/component in (validation,training,verification)", mode="run"
    )
    servers = node.auto(namespace, "app.kubernetes.io/component=server", mode="serve")
    apply(admin_rest, namespace, "Dataset")
    _trained(admin_rest, namespace, "v1 trained on S3 and verified there")
    root = f"s3://{bucket}/modelwerk/{namespace}"
    ds = status(admin_rest, namespace, "datasets", "iris")
    assert ds["snapshotUri"].startswith(f"{root}/datasets/iris/"), ds
    artifact = admin_rest.get(f"{GROUP}/namespaces/{namespace}/modelversions/{V1}")["spec"][
        "artifact"
    ]
    sha = artifact["sha256"]
    assert artifact["uri"] == f"{root}/models/iris-classifier/{sha}/model.joblib"

    path = create_deployment(admin_rest, namespace, modelVersion=V1, replicas=2)
    wait_for_status(
        admin_rest, path, lambda s: s.get("phase") == "Healthy", timeout=180, what="Healthy"
    )
    pods = admin_rest.get(
        f"/api/v1/namespaces/{namespace}/pods", labelSelector="app.kubernetes.io/component=server"
    )["items"]
    assert len(pods) == 2
    for pod in pods:
        served = servers.served[pod["metadata"]["name"]]
        predicted = {label: _infer(served.ip, row) for label, row in IRIS_ROWS.items()}
        assert predicted == {0: 0, 1: 1, 2: 2} or predicted == {0: "0", 1: "1", 2: "2"}, predicted
        # Downloaded into the pod's emptyDir, verified, loaded from there.
        assert f"sha256 {sha}" in served.log()

    # No claim was created or mounted: every pod can run on any node.
    assert _claims(admin_rest, namespace) == []
    every_pod = admin_rest.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
    assert len(every_pod) >= 5  # validation, training, verification, 2 servers
    for pod in every_pod:
        volumes = pod["spec"].get("volumes") or []
        assert not [v for v in volumes if "persistentVolumeClaim" in v], pod["metadata"]["name"]
    assert not (node.claims_dir / namespace).exists()

    # Everything the pods wrote is under the namespace's prefix of the bucket.
    keys = s3.keys(bucket)
    assert keys and all(k.startswith(f"modelwerk/{namespace}/") for k in keys), keys
    assert f"modelwerk/{namespace}/models/iris-classifier/{sha}/model-card.json" in keys

    # The keys never left the Secret: not in an object, an event, a status, a log line.
    assert s3.secret_key not in _everything_written(admin_rest, namespace)
    assert s3.secret_key not in operator.output
    for result in jobs.results.values():
        assert s3.secret_key not in result.stdout + result.stderr + (result.message or "")
    for served in servers.served.values():
        assert s3.secret_key not in served.log()
    assert 'modelwerk-operator" cannot' not in operator.output


def test_a_namespace_override_puts_one_namespace_on_its_own_bucket(
    admin_rest: Rest, namespace: str, node: StandInNode, s3: S3Server, operator: InProcessOperator
) -> None:
    """The operator keeps its default (the claim); the namespace's ConfigMap moves it to S3.
    A broken override stops new work with a condition naming the key, and fixing it resumes."""
    bucket = _bucket(s3)
    _secret(admin_rest, namespace, s3, "team-keys")
    config_map = f"/api/v1/namespaces/{namespace}/configmaps"
    admin_rest.create(
        config_map,
        {
            "metadata": {"name": "modelwerk-artifact-store"},
            "data": {
                "uri": f"s3://{bucket}/ml",
                "endpoint": "ftp://nowhere",
                "secretName": "team-keys",
            },
        },
    )
    node.auto(namespace, "app.kubernetes.io/managed-by=modelwerk", mode="run")
    apply(admin_rest, namespace, "Dataset")

    def store_condition() -> dict[str, Any] | None:
        found = condition(status(admin_rest, namespace, "datasets", "iris"), "ArtifactStore")
        return found or None

    broken = wait_until(store_condition, timeout=60, what="the ArtifactStore condition")
    assert broken["status"] == "False" and broken["reason"] == "ArtifactStoreInvalid"
    assert "ConfigMap modelwerk-artifact-store: key endpoint:" in broken["message"]
    time.sleep(2)  # long enough for a hot loop to show: no Job, no claim, one event
    assert admin_rest.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"] == []
    assert _claims(admin_rest, namespace) == []
    warnings = [
        e
        for e in admin_rest.get(f"/api/v1/namespaces/{namespace}/events")["items"]
        if e.get("reason") == "ArtifactStoreInvalid"
    ]
    assert len(warnings) == 1 and warnings[0].get("count", 1) == 1, warnings

    admin_rest.merge_patch(
        f"{config_map}/modelwerk-artifact-store",
        {"data": {"endpoint": s3.endpoint, "region": s3.region}},
    )
    # Picked up at the next look (at most a minute; the ConfigMap is read, not watched).
    ds = wait_until(
        lambda: phase_is(admin_rest, namespace, "datasets", "iris", "Ready", "Failed"),
        timeout=150,
        what="the Dataset validated onto the override's bucket",
    )
    assert ds["phase"] == "Ready", ds
    assert ds["snapshotUri"].startswith(f"s3://{bucket}/ml/datasets/iris/")  # as given
    assert condition(ds, "ArtifactStore")["status"] == "True"
    _trained(admin_rest, namespace, "v1 trained and verified on the override's bucket")
    assert _claims(admin_rest, namespace) == []
    keys = s3.keys(bucket)
    assert keys and all(k.startswith("ml/") for k in keys), keys
    assert 'modelwerk-operator" cannot' not in operator.output
    assert s3.secret_key not in operator.output


def test_a_store_that_is_down_fails_validation_and_training_with_the_cause(
    admin_rest: Rest,
    namespace: str,
    node: StandInNode,
    s3: S3Server,
    operator_with: OperatorWith,
) -> None:
    """One pod per run, a verdict naming the store, no retry storm; the data already written
    survives the outage."""
    # A server of this test's own, so taking it away does not disturb the session's.
    own = S3Server(s3.workdir.parent / f"s3-{namespace}")
    own.start()
    bucket = _bucket(own)
    admin_rest.create(f"/api/v1/namespaces/{namespace}/secrets", own.secret("own-keys"))
    settings = _store_settings(uri=f"s3://{bucket}", endpoint=own.endpoint, secret="own-keys")
    try:
        with operator_with(settings) as op:
            runner = node.auto(namespace, "app.kubernetes.io/managed-by=modelwerk", mode="run")
            apply(admin_rest, namespace, "Dataset")
            ready = wait_until(
                lambda: phase_is(admin_rest, namespace, "datasets", "iris", "Ready", "Failed"),
                timeout=120,
                what="the Dataset validated while the store is up",
            )
            assert ready["phase"] == "Ready", ready
            written = own.keys(bucket)
            own.pause()
            apply(admin_rest, namespace, "TrainingJob", **FAST)
            tj = wait_until(
                lambda: phase_is(
                    admin_rest, namespace, "trainingjobs", "iris-rf", "Failed", "Succeeded"
                ),
                timeout=240,
                what="the training run to end while the store is down",
            )
            assert tj["phase"] == "Failed", tj
            assert own.endpoint.removeprefix("http://") in tj["message"], tj["message"]
            # A spec edit starts a new validation run, which cannot reach the store either.
            admin_rest.merge_patch(
                f"{GROUP}/namespaces/{namespace}/datasets/iris",
                {"spec": {"schema": {"minRows": 99}}},
            )
            failed = wait_until(
                lambda: phase_is(admin_rest, namespace, "datasets", "iris", "Failed"),
                timeout=240,
                what="the new validation run to fail while the store is down",
            )
            assert condition(failed, "Ready")["reason"] == "ArtifactStoreError", failed
            assert own.endpoint.removeprefix("http://") in failed["message"], failed["message"]
            # One pod per run: validation (2 runs) and training (1), nothing retried.
            assert len(runner.results) == 3, sorted(runner.results)
            own.resume()
            assert own.keys(bucket) == written  # the outage lost nothing already written
            assert own.secret_key not in op.output
            assert own.secret_key not in _everything_written(admin_rest, namespace)
    finally:
        own.stop()
