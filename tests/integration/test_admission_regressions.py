"""Defects found by admission fuzzing, each pinned on the real control plane: refused at
admission with the field named, or handled by the operator with a clear status, nothing
half-created and nothing taken over."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest, RestError
from tests.cluster.wait import wait_until
from tests.reliability.admission import prepare, scrape
from tests.reliability.admission_cases import READY_VERSION

SHA = "ab" * 32
API = "/apis/modelwerk.dev/v1alpha1/namespaces"


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "modelwerk.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def _create(rest: Rest, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
    plural = doc["kind"].lower() + "s"
    return rest.request(
        "POST", f"{API}/{namespace}/{plural}", doc, query={"fieldValidation": "Strict"}
    )


def _mv(uri: str) -> dict[str, Any]:
    return {
        "model": "m",
        "version": 1,
        "task": "classification",
        "artifact": {"uri": uri, "sha256": SHA},
    }


def _tj(**spec: Any) -> dict[str, Any]:
    return {
        "datasetRef": {"name": "d"},
        "model": {"name": "m"},
        "estimator": {"name": "SVC"},
        **spec,
    }


REFUSED = [
    pytest.param(
        _doc("ModelVersion", "trav", _mv("pvc://claim/../../etc/passwd")),
        "spec.artifact.uri",
        "'..' path segments",
        id="artifact-traversal",
    ),
    pytest.param(
        _doc("ModelVersion", "claim", _mv("pvc://Bad_Claim/model.joblib")),
        "spec.artifact.uri",
        "pvc://<claim>/<path>",
        id="artifact-bad-claim",
    ),
    pytest.param(
        _doc(
            "ModelVersion",
            "copied",
            {
                **_mv(f"pvc://claim/models/m/{'cd' * 32}/model.joblib"),
                # A spec copied from another version: its compiled model is not this artifact's.
                "compiled": {
                    "verified": True,
                    "uri": f"pvc://claim/models/m/{SHA}/model.onnx",
                    "sha256": SHA,
                },
            },
        ),
        "spec",
        "spec.compiled.uri must be in spec.artifact.uri's directory",
        id="compiled-from-another-artifact",
    ),
    pytest.param(
        _doc("Dataset", "claim", {"source": {"uri": "pvc:///x.csv"}}),
        "spec.source.uri",
        "pvc://<claim>/<path>",
        id="dataset-empty-claim",
    ),
    pytest.param(
        _doc(
            "Dataset",
            "secret",
            {"source": {"uri": "s3://b/k", "secretRef": {"name": "Bad_Secret"}}},
        ),
        "spec.source.secretRef.name",
        "should match",
        id="secret-name",
    ),
    pytest.param(
        _doc("TrainingJob", "ref", _tj(datasetRef={"name": ".."})),
        "spec.datasetRef.name",
        "should match",
        id="dataset-ref-dot-dot",
    ),
    pytest.param(
        _doc("Dataset", "d" * 64, {"source": {"builtin": "iris"}}),
        "metadata.name",
        "at most 63 characters",
        id="name-too-long",
    ),
    pytest.param(
        _doc("Deployment", "a.b", {"modelVersion": "m-v1"}),
        "metadata.name",
        "starts with a letter",
        id="deployment-name-not-a-service",
    ),
    pytest.param(
        _doc(
            "Dataset",
            "qty",
            {"source": {"builtin": "iris"}, "resources": {"requests": {"cpu": "lots"}}},
        ),
        "spec.resources.requests.cpu",
        "should match",
        id="bad-quantity",
    ),
    pytest.param(
        _doc(
            "Dataset",
            "res",
            {"source": {"builtin": "iris"}, "resources": {"requests": {"foo": "1"}}},
        ),
        "spec.resources.requests",
        "nvidia.com/gpu",
        id="unknown-resource",
    ),
    pytest.param(
        _doc(
            "TrainingJob",
            "over",
            _tj(resources={"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}),
        ),
        "spec.resources",
        "must not exceed its limit",
        id="request-above-limit",
    ),
    pytest.param(
        _doc("TrainingJob", "gate", _tj(gates=[{"metric": "rmse", "threshold": 1}])),
        "spec.gates",
        "classification estimator",
        id="metric-names-gates",
    ),
    pytest.param(
        _doc("TrainingJob", "ttl", _tj(ttlSecondsAfterFinished=2**31)),
        "spec.ttlSecondsAfterFinished",
        "less than or equal",
        id="ttl-int32",
    ),
    pytest.param(
        _doc("TrainingJob", "model", _tj(model={"name": "m" * 54})),
        "spec.model.name",
        "may not be more than 53",
        id="model-name-length",
    ),
]


@pytest.mark.parametrize("doc,field,words", REFUSED)
def test_refused_at_admission_naming_the_field(
    admin_rest: Rest, namespace: str, doc: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(RestError) as caught:
        _create(admin_rest, namespace, doc)
    message = str(caught.value.body["message"])
    assert caught.value.status == 422, message
    assert field in message and words in message, message


def _ready(rest: Rest, namespace: str, kind: str, name: str, reason: str) -> dict[str, Any]:
    url = f"{API}/{namespace}/{kind.lower()}s/{name}"

    def judged() -> dict[str, Any] | None:
        obj = rest.get(url)
        status = obj.get("status") or {}
        ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
        current = status.get("observedGeneration") == obj["metadata"]["generation"]
        return ready[0] if ready and current and ready[0]["reason"] == reason else None

    found: dict[str, Any] = wait_until(judged, timeout=60, what=f"{kind} {name}: {reason}")
    return found


def _errors(operator: InProcessOperator, kind: str) -> int:
    # The metrics endpoint comes up with the operator, a moment after the fixture returns.
    (counts,) = wait_until(lambda: (scrape(operator.metrics_port),), what="operator metrics")
    return counts[(kind, "error")]


def _owned(rest: Rest, path: str, uid: str) -> list[str]:
    return [
        item["metadata"]["name"]
        for item in rest.get(path)["items"]
        if any(r["uid"] == uid for r in item["metadata"].get("ownerReferences") or [])
    ]


def test_a_deployment_never_half_creates_or_takes_over_children(
    admin_rest: Rest, namespace: str, node: StandInNode, operator: InProcessOperator
) -> None:
    prepare(admin_rest, node, namespace)
    errors = _errors(operator, "Deployment")
    port = {"type": "NodePort", "nodePort": 30099}
    first = _create(
        admin_rest,
        namespace,
        _doc("Deployment", "first", {"modelVersion": READY_VERSION, "service": port}),
    )
    _ready(admin_rest, namespace, "Deployment", "first", "RollingOut")
    second = _create(
        admin_rest,
        namespace,
        _doc("Deployment", "second", {"modelVersion": READY_VERSION, "service": port}),
    )
    refused = _ready(admin_rest, namespace, "Deployment", "second", "ChildRefused")
    assert "provided port is already allocated" in refused["message"]
    admin_rest.create(
        f"/api/v1/namespaces/{namespace}/services",
        {
            "metadata": {"name": "taken"},
            "spec": {"selector": {"app": "someone-else"}, "ports": [{"port": 1234}]},
        },
    )
    taken = _create(
        admin_rest, namespace, _doc("Deployment", "taken", {"modelVersion": READY_VERSION})
    )
    conflict = _ready(admin_rest, namespace, "Deployment", "taken", "NameTaken")
    assert "Service taken already exists and does not belong" in conflict["message"]

    apps = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    services = f"/api/v1/namespaces/{namespace}/services"
    assert _owned(admin_rest, apps, first["metadata"]["uid"]) == ["first-blue"]
    assert _owned(admin_rest, services, first["metadata"]["uid"]) == ["first"]
    for loser in (second, taken):
        assert _owned(admin_rest, apps, loser["metadata"]["uid"]) == []
        assert _owned(admin_rest, services, loser["metadata"]["uid"]) == []
    stranger = admin_rest.get(f"{services}/taken")
    assert stranger["spec"]["selector"] == {"app": "someone-else"}
    assert not stranger["metadata"].get("ownerReferences")
    assert _errors(operator, "Deployment") == errors


def test_a_child_the_api_server_refuses_is_reported_not_retried_as_an_error(
    admin_rest: Rest, namespace: str, operator: InProcessOperator
) -> None:
    errors = _errors(operator, "Dataset")
    # Admission cannot know that an extended resource needs a limit equal to its request;
    # the pod API can, and the operator reports its answer instead of failing on it.
    spec = {"source": {"builtin": "iris"}, "resources": {"requests": {"example.com/gpu": "1"}}}
    created = _create(admin_rest, namespace, _doc("Dataset", "gpu", spec))
    refused = _ready(admin_rest, namespace, "Dataset", "gpu", "ChildRefused")
    assert "resources.limits: Required value: Limit must be set" in refused["message"]
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    assert _owned(admin_rest, jobs, created["metadata"]["uid"]) == []
    assert _errors(operator, "Dataset") == errors
