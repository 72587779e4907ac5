"""A Dataset read from a real PostgreSQL 15 by a validation pod on the node.

PostgreSQL (hack/postgres) runs on the host, listening on the address pods reach the host on:
``MODELWERK_E2E_DB_HOST`` (hack/e2e.sh node sets the node's bridge address, 10.88.0.1), and it
accepts password logins from any address there. The connection URL is in a Secret of the test
namespace; the pod gets it as a secretKeyRef. Without that variable (kind, a cloud cluster) the
module is skipped with that reason.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from modelwerk.runtime.data import load, snapshot
from tests.cluster.postgres import IRIS_QUERY, PostgresServer, create_iris, running_postgres
from tests.e2e.chain import JOB_TIMEOUT, status
from tests.e2e.kubectl import JSON, Kubectl, wait_for

HOST_ENV = "MODELWERK_E2E_DB_HOST"
KIND = "datasets.modelwerk.dev"
USER = "iris_reader"
PASSWORD = "e2e:s3cr@t/%iris"

pytestmark = pytest.mark.skipif(
    not os.environ.get(HOST_ENV),
    reason=f"{HOST_ENV} is not set: no host address the cluster's pods can reach a database on",
)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with (
        tempfile.TemporaryDirectory(prefix="mw-e2e-pg-") as workdir,
        running_postgres(Path(workdir), host=os.environ[HOST_ENV], clients=("0.0.0.0/0",)) as pg,
    ):
        yield pg


@pytest.fixture(scope="module")
def iris_url(postgres: PostgresServer) -> str:
    return create_iris(postgres, "iris", USER, PASSWORD)


def apply(kubectl: Kubectl, namespace: str, name: str, url: str) -> None:
    kubectl.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{name}-db"},
                "stringData": {"url": url},
            },
            {
                "apiVersion": "modelwerk.dev/v1alpha1",
                "kind": "Dataset",
                "metadata": {"name": name},
                "spec": {
                    "source": {
                        "sql": {
                            "query": IRIS_QUERY,
                            "urlSecretRef": {"name": f"{name}-db", "key": "url"},
                            "timeoutSeconds": 60,
                        }
                    },
                    "target": "target",
                    "schema": {"minRows": 100},
                },
            },
        ],
        namespace,
    )


def judged(kubectl: Kubectl, namespace: str, name: str) -> JSON:
    def phase() -> JSON | None:
        got = status(kubectl, KIND, name, namespace)
        return got if got.get("phase") in ("Ready", "Invalid", "Failed") else None

    return wait_for(phase, timeout=JOB_TIMEOUT, what=f"Dataset {name} to be judged")


def test_a_pod_on_the_node_reads_a_dataset_from_postgresql(
    kubectl: Kubectl, namespace: str, iris_url: str
) -> None:
    apply(kubectl, namespace, "iris-sql", iris_url)
    ds = judged(kubectl, namespace, "iris-sql")
    assert ds["phase"] == "Ready", ds
    assert ds["rows"] == 150
    assert ds["version"] == snapshot.version_of(load.load_builtin("iris"))
    kubectl.wait(f"{KIND}/iris-sql", "Ready", namespace, timeout=60)


def test_a_wrong_password_fails_the_dataset_once_without_the_credentials(
    kubectl: Kubectl, namespace: str, iris_url: str, postgres: PostgresServer
) -> None:
    wrong = "n0t-" + PASSWORD
    url = f"postgresql://{USER}:{quote(wrong, safe='')}@{postgres.host}:{postgres.port}/iris"
    apply(kubectl, namespace, "iris-wrong", url)
    ds = judged(kubectl, namespace, "iris-wrong")
    assert ds["phase"] == "Failed", ds
    assert 'password authentication failed for user "***"' in ds["message"]
    selector = "modelwerk.dev/dataset=iris-wrong"
    assert len(kubectl.list("jobs", namespace, selector)) == 1
    pods = kubectl.list("pods", namespace, selector)
    assert len(pods) == 1  # backoffLimit 0: the failure is the verdict, not retried
    events = kubectl.list("events", namespace)
    published = json.dumps([ds, pods, events]).lower()
    for secret in (wrong, USER, url):
        for spelling in (secret, quote(secret, safe="")):
            assert spelling.lower() not in published, spelling
