"""Regressions from admission fuzzing (tests/reliability): the operator's models refuse what the
CRDs refuse, and the CRDs carry the rules (the real API server runs them in
tests/integration/test_admission_regressions.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modelwerk import crdgen
from modelwerk.api.v1alpha1 import KINDS, Dataset, Deployment, ModelVersion, TrainingJob
from modelwerk.api.v1alpha1.common import ResourceRequirements, parse_quantity
from modelwerk.logic.jobs import JobOutcome, failure

SHA = "ab" * 32


def model_version(uri: str) -> dict[str, Any]:
    return {
        "spec": {
            "model": "m",
            "version": 1,
            "task": "classification",
            "artifact": {"uri": uri, "sha256": SHA},
        }
    }


def training(**spec: Any) -> dict[str, Any]:
    base = {"datasetRef": {"name": "d"}, "model": {"name": "m"}, "estimator": {"name": "SVC"}}
    return {"spec": {**base, **spec}}


@pytest.mark.parametrize(
    "uri",
    [
        "pvc://claim/../..",
        "pvc://claim/../../etc/passwd",
        "file:///../etc/passwd",
        "s3://bucket/a/../../b",
        "pvc://UPPER/model.joblib",
        "pvc://under_score/model.joblib",
        "pvc:///model.joblib",
        "pvc://claim",
        "pvc://" + "c" * 254 + "/model.joblib",
    ],
)
def test_artifact_and_dataset_uris_cannot_traverse_or_name_an_impossible_claim(uri: str) -> None:
    with pytest.raises(ValidationError, match=r"artifact\.uri"):
        ModelVersion.from_k8s(model_version(uri))
    with pytest.raises(ValidationError, match=r"source\.uri"):
        Dataset.from_k8s({"spec": {"source": {"uri": uri}}})


def test_well_formed_uris_are_accepted() -> None:
    for uri in ["pvc://modelwerk-artifacts/models/m/x/model.joblib", "s3://b/k", "file:///a/b"]:
        ModelVersion.from_k8s(model_version(uri))
        Dataset.from_k8s({"spec": {"source": {"uri": uri}}})


def test_gs_uris_are_refused_since_no_pod_could_read_them() -> None:
    """The runtime image has no gcsfs: GCS is reached as s3:// through its interoperability
    endpoint, so a gs:// URI is refused when the object is written, not when a pod fails."""
    with pytest.raises(ValidationError, match=r"source\.uri"):
        Dataset.from_k8s({"spec": {"source": {"uri": "gs://bucket/iris.csv"}}})
    with pytest.raises(ValidationError, match=r"artifact\.uri"):
        ModelVersion.from_k8s(model_version("gs://bucket/model.joblib"))


@pytest.mark.parametrize("name", ["..", ".", "a/b", "Bad_Name", "x?watch=true", "-x", "é"])
def test_references_are_object_names_never_url_fragments(name: str) -> None:
    with pytest.raises(ValidationError, match=r"datasetRef\.name"):
        TrainingJob.from_k8s(training(datasetRef={"name": name}))
    with pytest.raises(ValidationError, match=r"secretRef\.name"):
        Dataset.from_k8s({"spec": {"source": {"uri": "s3://b/k", "secretRef": {"name": name}}}})
    with pytest.raises(ValidationError, match="modelVersion"):
        Deployment.from_k8s({"spec": {"modelVersion": name}})


@pytest.mark.parametrize(
    "resources,problem",
    [
        ({"requests": {"cpu": "lots"}}, "not a quantity"),
        ({"requests": {"cpu": "-1"}}, "not a quantity"),
        ({"limits": {"memory": -5}}, "must not be negative"),
        ({"requests": {"foo": "1"}}, "unknown resource foo"),
        ({"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}, "must not exceed"),
        ({"requests": {"cpu": "1e99999999"}}, "too large"),
    ],
)
def test_resources_a_pod_cannot_have_are_refused(resources: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        ResourceRequirements.model_validate(resources)


def test_resources_a_pod_can_have_are_accepted() -> None:
    ResourceRequirements.model_validate(
        {
            "requests": {"cpu": "250m", "memory": "1Gi", "nvidia.com/gpu": 1, "hugepages-2Mi": 0},
            "limits": {"cpu": 1, "memory": "1.5Gi", "nvidia.com/gpu": 1},
        }
    )
    assert parse_quantity("1Ki") == 1024 and parse_quantity("1k") == 1000
    assert parse_quantity("100m") == Decimal("0.1") and parse_quantity("1e3") == 1000


def test_training_fields_that_must_fit_their_children() -> None:
    TrainingJob.from_k8s(training(model={"name": "m" * 53}))
    with pytest.raises(ValidationError, match=r"model\.name"):
        TrainingJob.from_k8s(training(model={"name": "m" * 54}))  # m...m-v1 would exceed 63
    with pytest.raises(ValidationError, match="ttlSecondsAfterFinished"):
        TrainingJob.from_k8s(training(ttlSecondsAfterFinished=2**31))  # an int32 in the Job


def _crd(kind: type[Any]) -> dict[str, Any]:
    text = crdgen.render()[f"{kind.crd.plural}.modelwerk.dev.yaml"]
    schema: dict[str, Any] = yaml.safe_load(text)["spec"]["versions"][0]["schema"]
    return schema["openAPIV3Schema"]


def test_every_kind_limits_its_name_to_a_label_value() -> None:
    for kind in KINDS:
        rules = _crd(kind)["x-kubernetes-validations"]
        assert any("self.metadata.name.size() <= 63" in r["rule"] for r in rules), kind
        assert all("metadata.name" in r["message"] for r in rules)
    (service_rule,) = _crd(Deployment)["x-kubernetes-validations"]
    assert "^[a-z]([-a-z0-9]*[a-z0-9])?$" in service_rule["rule"]  # a Service name


def test_metric_rules_name_the_field_they_check() -> None:
    rules = _crd(TrainingJob)["properties"]["spec"]["x-kubernetes-validations"]
    metric_rules = [r for r in rules if "scored on" in r["message"]]
    assert sorted({r["fieldPath"] for r in metric_rules}) == [".gates", ".search.scoring"]


def test_an_onnx_artifact_carries_no_compilation() -> None:
    onnx = model_version(f"pvc://modelwerk-artifacts/models/m/{SHA}/model.onnx")
    onnx["spec"]["artifact"] |= {"format": "onnx", "framework": "onnx"}
    ModelVersion.from_k8s(onnx)
    onnx["spec"]["compiled"] = {"verified": False, "reason": "x"}
    with pytest.raises(ValidationError, match="compiled to ONNX"):
        ModelVersion.from_k8s(onnx)
    rules = _crd(ModelVersion)["properties"]["spec"]["x-kubernetes-validations"]
    assert any("self.artifact.format != 'onnx'" in r["rule"] for r in rules)


@pytest.mark.parametrize("reason", ["_private", "has space", "Ünïcode", "x" * 1025, "Bad-Dash"])
def test_a_pod_reason_that_is_no_condition_reason_falls_back(reason: str) -> None:
    job = JobOutcome("j", "Failed", {"reason": reason, "error": "boom"}, None, None, None)
    assert failure(job, "TrainingFailed") == ("TrainingFailed", "boom")
