"""The CRDs on a real API server: accepted, listed together, strict at admission, and a status
the operator writes is stored whole (a structural schema silently prunes unknown fields)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelwerk import crdgen
from modelwerk.api.v1alpha1 import KINDS
from tests.cluster.controlplane import ControlPlane
from tests.cluster.rest import Rest, RestError

ROOT = Path(__file__).resolve().parents[2]
PLURAL = {k.crd.kind: k.crd.plural for k in KINDS}
SHA = "0123456789abcdef" * 4


def path(namespace: str, kind: str, name: str | None = None, sub: str | None = None) -> str:
    base = f"/apis/modelwerk.dev/v1alpha1/namespaces/{namespace}/{PLURAL[kind]}"
    return "/".join(p for p in (base, name, sub) if p)


def create(rest: Rest, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
    doc = {"apiVersion": "modelwerk.dev/v1alpha1", **doc}
    doc["metadata"] = {**doc.get("metadata", {}), "namespace": namespace}
    return rest.create(path(namespace, doc["kind"]), doc)


def refused(rest: Rest, namespace: str, doc: dict[str, Any]) -> str:
    with pytest.raises(RestError) as caught:
        create(rest, namespace, doc)
    assert caught.value.status == 422, caught.value
    return str(caught.value.body["message"])


def model_version(name: str = "m-v1", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "ModelVersion",
        "metadata": {"name": name},
        "spec": {
            "model": "m",
            "version": 1,
            "task": "classification",
            "artifact": {
                "uri": f"pvc://modelwerk-artifacts/models/m/{SHA}/model.joblib",
                "sha256": SHA,
            },
            "metrics": {"accuracy": 0.9},
            **spec,
        },
    }


def kubectl(cp: ControlPlane, *args: str) -> str:
    done = subprocess.run(
        # A cache of its own: discovery cached for another control plane on the same port lies.
        [
            "kubectl",
            "--kubeconfig",
            str(cp.admin_kubeconfig),
            "--cache-dir",
            str(cp.workdir / "kubectl-cache"),
            *args,
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def samples() -> list[dict[str, Any]]:
    docs = []
    for file in sorted((ROOT / "manifests/samples/iris").glob("*.yaml")):
        docs += [
            d
            for d in yaml.safe_load_all(file.read_text())
            if d and d["apiVersion"].startswith("modelwerk.dev")
        ]
    return docs


def test_every_crd_is_established(admin_rest: Rest) -> None:
    for kind in KINDS:
        crd = admin_rest.get(
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{kind.crd.plural}.modelwerk.dev"
        )
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", kind.crd.kind
        assert conditions.get("NamesAccepted") == "True", kind.crd.kind


def test_samples_are_accepted_and_kubectl_get_modelwerk_lists_every_kind(
    control_plane: ControlPlane, admin_rest: Rest, namespace: str
) -> None:
    for doc in [*samples(), model_version()]:
        create(admin_rest, namespace, doc)
    out = kubectl(control_plane, "get", "modelwerk", "-n", namespace)
    for resource in (
        "dataset.modelwerk.dev/iris",
        "trainingjob.modelwerk.dev/iris-rf",
        "deployment.modelwerk.dev/iris",
        "modelversion.modelwerk.dev/m-v1",
    ):
        assert resource in out, out
    short = kubectl(control_plane, "get", "mv,mwd,tj,dset", "-n", namespace)
    assert "m-v1" in short and "iris-rf" in short


INVALID = [
    pytest.param(
        {
            "kind": "Dataset",
            "metadata": {"name": "two-sources"},
            "spec": {"source": {"builtin": "iris", "uri": "s3://bucket/iris.csv"}},
        },
        "set exactly one of source.builtin, source.uri, source.sql or source.production",
        id="dataset-two-sources",
    ),
    pytest.param(
        {
            "kind": "Dataset",
            "metadata": {"name": "production-no-target"},
            "spec": {"source": {"production": {"deployment": "iris"}}},
        },
        "a production source needs spec.target",
        id="dataset-production-without-target",
    ),
    pytest.param(
        {
            "kind": "Dataset",
            "metadata": {"name": "two-windows"},
            "spec": {
                "target": "y",
                "source": {
                    "production": {
                        "deployment": "iris",
                        "window": {"hours": 2, "start": "2026-01-01T00:00:00Z"},
                    }
                },
            },
        },
        "set window.hours or window.start, not both",
        id="dataset-production-two-windows",
    ),
    pytest.param(
        {
            "kind": "Dataset",
            "metadata": {"name": "sql-and-builtin"},
            "spec": {
                "source": {
                    "builtin": "iris",
                    "sql": {"query": "SELECT 1", "urlSecretRef": {"name": "db", "key": "url"}},
                }
            },
        },
        "set exactly one of source.builtin, source.uri, source.sql or source.production",
        id="dataset-sql-and-builtin",
    ),
    pytest.param(
        {
            "kind": "Dataset",
            "metadata": {"name": "production-and-uri"},
            "spec": {
                "target": "y",
                "source": {"production": {"deployment": "iris"}, "uri": "s3://b/x.csv"},
            },
        },
        "set exactly one of source.builtin, source.uri, source.sql or source.production",
        id="dataset-production-and-uri",
    ),
    pytest.param(
        {
            "kind": "Dataset",
            "metadata": {"name": "sql-key"},
            "spec": {
                "source": {
                    "sql": {"query": "SELECT 1", "urlSecretRef": {"name": "db", "key": "a/b"}}
                }
            },
        },
        "spec.source.sql.urlSecretRef.key",
        id="dataset-sql-secret-key",
    ),
    pytest.param(
        {
            "kind": "Dataset",
            "metadata": {"name": "traversal"},
            "spec": {"source": {"uri": "pvc://claim/../../etc/passwd"}},
        },
        "must not contain '..' path segments",
        id="dataset-path-traversal",
    ),
    pytest.param(
        {
            "kind": "Dataset",
            "metadata": {"name": "ftp"},
            "spec": {"source": {"uri": "ftp://host/x.csv"}},
        },
        "spec.source.uri",
        id="dataset-bad-scheme",
    ),
    pytest.param(
        {
            "kind": "Dataset",
            "metadata": {"name": "minmax"},
            "spec": {
                "source": {"builtin": "iris"},
                "schema": {"columns": [{"name": "a", "type": "float", "min": 5, "max": 1}]},
            },
        },
        "min must not exceed max",
        id="dataset-min-above-max",
    ),
    pytest.param(
        {
            "kind": "TrainingJob",
            "metadata": {"name": "evil"},
            "spec": {
                "datasetRef": {"name": "d"},
                "model": {"name": "m"},
                "estimator": {"name": "os.system"},
            },
        },
        'spec.estimator.name: Unsupported value: "os.system"',
        id="training-not-allowlisted",
    ),
    pytest.param(
        {
            "kind": "TrainingJob",
            "metadata": {"name": "wrong-metric"},
            "spec": {
                "datasetRef": {"name": "d"},
                "model": {"name": "m"},
                "estimator": {"name": "Ridge"},
                "gates": [{"metric": "accuracy", "threshold": 0.9}],
            },
        },
        "a regression estimator can only be scored on rmse, mae, r2",
        id="training-metric-task",
    ),
    pytest.param(
        {
            "kind": "TrainingJob",
            "metadata": {"name": "split"},
            "spec": {
                "datasetRef": {"name": "d"},
                "model": {"name": "m"},
                "estimator": {"name": "SVC"},
                "split": {"testSize": 1.5},
            },
        },
        "spec.split.testSize",
        id="training-test-size",
    ),
    pytest.param(
        {
            "kind": "TrainingJob",
            "metadata": {"name": "fairness-gate"},
            "spec": {
                "datasetRef": {"name": "d"},
                "model": {"name": "m"},
                "estimator": {"name": "SVC"},
                "gates": [{"metric": "fairness.demographicParityRatio", "threshold": 0.8}],
            },
        },
        "fairness gates need spec.fairness.sensitiveFeatures",
        id="training-fairness-gate-without-fairness",
    ),
    pytest.param(
        {
            "kind": "TrainingJob",
            "metadata": {"name": "robustness-name"},
            "spec": {
                "datasetRef": {"name": "d"},
                "model": {"name": "m"},
                "estimator": {"name": "SVC"},
                "gates": [{"metric": "robustness.swap.flipRate@0.1", "threshold": 0.1}],
            },
        },
        "gates may also name fairness.demographicParityDifference",
        id="training-robustness-gate-name",
    ),
    pytest.param(
        {
            "kind": "TrainingJob",
            "metadata": {"name": "typo"},
            "spec": {
                "datasetRef": {"name": "d"},
                "model": {"name": "m"},
                "estimater": {"name": "SVC"},
            },
        },
        "set exactly one of spec.estimator and spec.trainer",
        id="training-typo-is-not-ignored",
    ),
    pytest.param(
        {
            "kind": "Deployment",
            "metadata": {"name": "both"},
            "spec": {"modelVersion": "m-v1", "modelSelector": {"model": "m"}},
        },
        "set exactly one of modelVersion, modelSelector",
        id="deployment-two-sources",
    ),
    pytest.param(
        {
            "kind": "Deployment",
            "metadata": {"name": "step"},
            "spec": {
                "modelVersion": "m-v1",
                "strategy": {"canary": {"steps": [{"setWeight": 10, "pause": {}}]}},
            },
        },
        "set exactly one of setWeight, pause, analysis",
        id="deployment-step-one-of",
    ),
    pytest.param(
        {
            "kind": "Deployment",
            "metadata": {"name": "weight"},
            "spec": {
                "modelVersion": "m-v1",
                "strategy": {"canary": {"steps": [{"setWeight": 150}]}},
            },
        },
        "should be less than or equal to 100",
        id="deployment-weight-range",
    ),
    pytest.param(
        {
            "kind": "Deployment",
            "metadata": {"name": "strategies"},
            "spec": {"modelVersion": "m-v1", "strategy": {"canary": {}, "blueGreen": {}}},
        },
        "set at most one of blueGreen, canary",
        id="deployment-two-strategies",
    ),
    pytest.param(
        model_version("bad-hash", artifact={"uri": "pvc://a/b", "sha256": "not-a-hash"}),
        "spec.artifact.sha256",
        id="modelversion-bad-hash",
    ),
    pytest.param(
        model_version(
            "onnx-compiled",
            artifact={
                "uri": f"pvc://modelwerk-artifacts/models/m/{SHA}/model.onnx",
                "sha256": SHA,
                "format": "onnx",
                "framework": "onnx",
            },
            compiled={"verified": False, "reason": "x"},
        ),
        "an ONNX artifact (spec.artifact.format: onnx) is served as it is",
        id="modelversion-onnx-with-compiled",
    ),
]


@pytest.mark.parametrize("doc,message", INVALID)
def test_invalid_objects_are_refused_with_a_readable_message(
    admin_rest: Rest, namespace: str, doc: dict[str, Any], message: str
) -> None:
    assert message in refused(admin_rest, namespace, doc)


def test_model_versions_are_immutable_except_stage(admin_rest: Rest, namespace: str) -> None:
    create(admin_rest, namespace, model_version())
    url = path(namespace, "ModelVersion", "m-v1")
    admin_rest.merge_patch(url, {"spec": {"stage": "Production"}})
    assert admin_rest.get(url)["spec"]["stage"] == "Production"
    for change, field in [
        ({"metrics": {"accuracy": 0.99}}, "spec.metrics"),
        ({"artifact": {"sha256": "f" * 64}}, "spec.artifact"),
        ({"version": 2}, "spec.version"),
        ({"lineage": {"dataset": "other"}}, "spec.lineage"),  # adding an absent field counts too
        ({"metrics": None}, "spec.metrics"),  # and so does removing one
        ({"fairness": {"sensitiveFeatures": ["sex"], "figures": {"x": 1.0}}}, "spec.fairness"),
        ({"environment": {"python": "3.13.0"}}, "spec.environment"),
        ({"tracking": {"mlflow": {"trackingUri": "http://m", "runId": "r"}}}, "spec.tracking"),
    ]:
        with pytest.raises(RestError) as caught:
            admin_rest.merge_patch(url, {"spec": change})
        assert caught.value.status == 422
        assert f"{field} is immutable: only spec.stage may change" in caught.value.body["message"]


def _example(schema: dict[str, Any], name: str = "") -> Any:
    """A value for every field of ``schema``: the fullest object the schema allows."""
    if "enum" in schema:
        return schema["enum"][-1]
    if schema.get("x-kubernetes-int-or-string"):
        return "500m"
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        return {k: _example(v, k) for k, v in schema["properties"].items()}
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return {"key": _example(schema["additionalProperties"])}
    if kind == "object" or schema.get("x-kubernetes-preserve-unknown-fields"):
        return {"nested": {"free": [1, "two", None]}}
    if kind == "array":
        return [_example(schema["items"], name)]
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1) if schema.get("maximum", 2) >= 1 else 0
    if kind == "number":
        return 0.5
    if kind == "boolean":
        return True
    if schema.get("format") == "date-time":
        return "2026-11-22T12:00:00Z"
    if name == "version" and "sha256" in schema.get("pattern", ""):
        return "sha256:" + SHA
    if name in {"type", "reason"}:
        return "Ready" if name == "type" else "AllGood"
    if name in {"verifiedSha256"}:
        return SHA
    return f"example-{name or 'value'}"


def _status_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load(crdgen.render()[f"{PLURAL[kind]}.modelwerk.dev.yaml"])
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]


@pytest.mark.parametrize("kind", list(PLURAL))
def test_the_status_subresource_keeps_every_field(
    admin_rest: Rest, namespace: str, kind: str
) -> None:
    name = {
        "Dataset": "iris",
        "TrainingJob": "iris-rf",
        "Deployment": "iris",
        "ModelVersion": "m-v1",
    }[kind]
    doc = next((d for d in samples() if d["kind"] == kind), None) or model_version()
    create(admin_rest, namespace, doc)
    status = _example(_status_schema(kind))
    model = {k.crd.kind: k for k in KINDS}[kind]
    model.model_fields["status"].annotation.model_validate(status)  # type: ignore[union-attr]
    admin_rest.merge_patch(path(namespace, kind, name, "status"), {"status": status})
    stored = admin_rest.get(path(namespace, kind, name))["status"]
    assert stored == status


def test_status_writes_cannot_change_the_spec(admin_rest: Rest, namespace: str) -> None:
    create(admin_rest, namespace, model_version())
    url = path(namespace, "ModelVersion", "m-v1")
    admin_rest.merge_patch(
        url + "/status", {"spec": {"stage": "Archived"}, "status": {"phase": "Ready"}}
    )
    stored = admin_rest.get(url)
    assert "stage" not in stored["spec"] and stored["status"]["phase"] == "Ready"


def test_promoting_a_version_archives_the_previous_production_version(
    admin_rest: Rest, namespace: str, operator: Any
) -> None:
    from tests.cluster.wait import wait_until

    create(admin_rest, namespace, model_version("m-v1", stage="Production"))
    v1 = path(namespace, "ModelVersion", "m-v1")
    wait_until(
        lambda: (
            (admin_rest.get(v1).get("status", {}).get("stageHistory") or [{}])[-1].get("stage")
            == "Production"
        ),
        timeout=30,
        what="v1's promotion to be recorded",
    )
    v2_doc = model_version("m-v2", stage="Production", version=2)
    create(admin_rest, namespace, v2_doc)
    wait_until(
        lambda: admin_rest.get(v1)["spec"].get("stage") == "Archived",
        timeout=30,
        what="v1 to be archived",
    )
    assert admin_rest.get(path(namespace, "ModelVersion", "m-v2"))["spec"]["stage"] == "Production"
    history = wait_until(
        lambda: (h := admin_rest.get(v1)["status"].get("stageHistory")) and len(h) >= 2 and h,
        timeout=30,
        what="v1's archival to be recorded",
    )
    assert [h["stage"] for h in history][-2:] == ["Production", "Archived"]
    events = admin_rest.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    assert any(
        e["reason"] == "ArchivedByNewerProduction" and e["involvedObject"]["name"] == "m-v1"
        for e in events
    )
