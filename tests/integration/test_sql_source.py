"""Datasets from SQL on the real control plane: a real PostgreSQL 15 (hack/postgres), the
connection URL in a Secret reaching the validation pod as a secretKeyRef, and the pod's real
validator run by the node stand-in."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from modelwerk.runtime.data import load, snapshot
from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.postgres import IRIS_QUERY, PostgresServer, create_iris
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until

GROUP = "/apis/modelwerk.dev/v1alpha1"
USER = "iris_reader"
PASSWORD = "s3cr:t@iris/%x"


@pytest.fixture(scope="module")
def iris_url(postgres: PostgresServer) -> str:
    return create_iris(postgres, "iris", USER, PASSWORD)


@pytest.fixture
def runner(node: StandInNode, namespace: str):  # type: ignore[no-untyped-def]
    return node.auto(namespace, "app.kubernetes.io/managed-by=modelwerk", mode="run")


def create(rest: Rest, namespace: str, name: str, url: str) -> None:
    rest.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": f"{name}-db"}, "stringData": {"url": url}},
    )
    rest.create(
        f"{GROUP}/namespaces/{namespace}/datasets",
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": name, "namespace": namespace},
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
    )


def judged(rest: Rest, namespace: str, name: str) -> dict[str, Any]:
    def phase() -> dict[str, Any] | None:
        status = rest.get(f"{GROUP}/namespaces/{namespace}/datasets/{name}").get("status", {})
        return status if status.get("phase") in ("Ready", "Invalid", "Failed") else None

    result: dict[str, Any] = wait_until(phase, timeout=120, what=f"Dataset {name} to be judged")
    return result


def jobs(rest: Rest, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = rest.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
    return items


def credential_spellings(*secrets: str) -> set[str]:
    return {s.lower() for secret in secrets for s in (secret, quote(secret, safe=""))}


def test_a_query_becomes_a_ready_version_with_the_url_only_in_the_secret(
    admin_rest: Rest,
    namespace: str,
    operator: InProcessOperator,
    runner: Any,
    iris_url: str,
) -> None:
    create(admin_rest, namespace, "iris-sql", iris_url)
    ds = judged(admin_rest, namespace, "iris-sql")
    assert ds["phase"] == "Ready", ds
    assert ds["rows"] == 150 and ds["columns"] == 5
    # Content addressing: the table holds iris exactly, so it is the bundled iris's version.
    assert ds["version"] == snapshot.version_of(load.load_builtin("iris"))
    (job,) = jobs(admin_rest, namespace)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert {
        "name": "MODELWERK_SQL_URL",
        "valueFrom": {"secretKeyRef": {"name": "iris-sql-db", "key": "url"}},
    } in container["env"]
    spec_text = json.dumps(job).lower()
    for spelling in credential_spellings(PASSWORD, iris_url):
        assert spelling not in spec_text


def test_a_wrong_password_fails_once_with_the_servers_message_scrubbed(
    admin_rest: Rest,
    namespace: str,
    operator: InProcessOperator,
    runner: Any,
    iris_url: str,
    postgres: PostgresServer,
) -> None:
    wrong = "n0t-" + PASSWORD
    url = f"postgresql://{USER}:{quote(wrong, safe='')}@{postgres.host}:{postgres.port}/iris"
    create(admin_rest, namespace, "iris-wrong", url)
    ds = judged(admin_rest, namespace, "iris-wrong")
    assert ds["phase"] == "Failed", ds
    ready = next(c for c in ds["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ConnectionFailed"
    assert 'password authentication failed for user "***"' in ds["message"]
    # No retry storm: the one Job failed once (backoffLimit 0) and nothing starts again.
    time.sleep(5)
    (job,) = jobs(admin_rest, namespace)
    assert job["status"].get("failed") == 1 and not job["status"].get("active")
    pods = admin_rest.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
    assert len(pods) == 1
    events = admin_rest.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    assert any(e["reason"] == "ValidationFailed" for e in events)
    published = json.dumps([ds, events, pods]).lower() + operator.output.lower()
    for spelling in credential_spellings(wrong, USER, url):
        assert spelling not in published, spelling
