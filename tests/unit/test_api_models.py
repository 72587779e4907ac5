"""The API models: samples parse, defaults apply, the operator-side twins of CEL rules hold."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modelwerk.api.conditions import get_condition, is_true, set_condition
from modelwerk.api.v1alpha1 import KINDS, Dataset, Deployment, ModelVersion, TrainingJob

ROOT = Path(__file__).resolve().parents[2]
BY_KIND = {k.crd.kind: k for k in KINDS}
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 2, tzinfo=UTC)


def _samples() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((ROOT / "manifests" / "samples").rglob("*.yaml")):
        docs += [
            d
            for d in yaml.safe_load_all(path.read_text())
            if d and d.get("apiVersion", "").startswith("modelwerk.dev/")
        ]
    return docs


def test_there_are_samples_of_every_kind() -> None:
    assert {d["kind"] for d in _samples()} >= {"Dataset", "TrainingJob", "Deployment"}


@pytest.mark.parametrize("doc", _samples(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_samples_parse_with_the_models(doc: dict[str, Any]) -> None:
    obj = BY_KIND[doc["kind"]].from_k8s(doc)
    assert obj.metadata.name == doc["metadata"]["name"]


def _dataset(**source: Any) -> dict[str, Any]:
    return {"kind": "Dataset", "metadata": {"name": "d"}, "spec": {"source": source}}


def test_dataset_source_needs_exactly_one_location() -> None:
    with pytest.raises(
        ValidationError,
        match=r"exactly one of source\.builtin, source\.uri, source\.sql or source\.production",
    ):
        Dataset.from_k8s(_dataset(builtin="iris", uri="file:///x.csv"))
    with pytest.raises(ValidationError, match="exactly one"):
        Dataset.from_k8s(_dataset())
    query = {"query": "SELECT 1", "urlSecretRef": {"name": "db", "key": "url"}}
    with pytest.raises(ValidationError, match="exactly one"):
        Dataset.from_k8s(_dataset(sql=query, uri="file:///x.csv"))
    sql = Dataset.from_k8s(_dataset(sql=query)).spec.source.sql
    assert sql is not None and sql.timeout_seconds == 300
    assert Dataset.from_k8s(_dataset(uri="s3://bucket/x.parquet")).spec.source.format == "auto"


@pytest.mark.parametrize("uri", ["pvc://claim/../../etc/passwd", "file:///data/../etc/shadow"])
def test_dataset_uri_refuses_path_traversal(uri: str) -> None:
    with pytest.raises(ValidationError, match=r"'\.\.'"):
        Dataset.from_k8s(_dataset(uri=uri))


def test_dataset_uri_scheme_is_checked() -> None:
    with pytest.raises(ValidationError):
        Dataset.from_k8s(_dataset(uri="ftp://host/file.csv"))


def _training(**spec: Any) -> dict[str, Any]:
    base = {
        "datasetRef": {"name": "iris"},
        "model": {"name": "iris-classifier"},
        "estimator": {"name": "RandomForestClassifier"},
    }
    return {"kind": "TrainingJob", "metadata": {"name": "t"}, "spec": {**base, **spec}}


def test_training_defaults() -> None:
    tj = TrainingJob.from_k8s(_training())
    assert tj.spec.split.test_size == 0.2
    assert tj.spec.backoff_limit == 0
    assert tj.spec.features.scaling == "none"


def test_estimators_outside_the_allowlist_are_refused() -> None:
    with pytest.raises(ValidationError, match="RandomForestClassifier"):
        TrainingJob.from_k8s(_training(estimator={"name": "os.system"}))


def test_gate_metrics_must_fit_the_task() -> None:
    with pytest.raises(ValidationError, match="cannot score a regression model"):
        TrainingJob.from_k8s(
            _training(estimator={"name": "Ridge"}, gates=[{"metric": "accuracy", "threshold": 0.5}])
        )
    with pytest.raises(ValidationError, match="cannot score a classification model"):
        TrainingJob.from_k8s(
            _training(search={"strategy": "grid", "space": {"a": [1]}, "scoring": "rmse"})
        )


def test_gates_compare() -> None:
    tj = TrainingJob.from_k8s(
        _training(
            gates=[
                {"metric": "accuracy", "threshold": 0.9},
                {"metric": "f1", "operator": "<", "threshold": 0.5},
            ]
        )
    )
    assert [g.passes(0.9) for g in tj.spec.gates] == [True, False]


def test_search_space_must_not_be_empty() -> None:
    with pytest.raises(ValidationError):
        TrainingJob.from_k8s(_training(search={"strategy": "grid", "space": {}}))


def _deployment(**spec: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"modelVersion": "m-v1", **spec},
    }


def test_deployment_needs_exactly_one_model_source() -> None:
    with pytest.raises(ValidationError, match="exactly one of modelVersion, modelSelector"):
        Deployment.from_k8s(_deployment(modelSelector={"model": "m"}))


def test_canary_steps_are_one_of() -> None:
    with pytest.raises(ValidationError, match="exactly one of setWeight, pause, analysis"):
        Deployment.from_k8s(
            _deployment(strategy={"canary": {"steps": [{"setWeight": 10, "pause": {}}]}})
        )
    with pytest.raises(ValidationError, match="at most one of blueGreen, canary"):
        Deployment.from_k8s(_deployment(strategy={"canary": {}, "blueGreen": {}}))


def test_checks_need_a_bound() -> None:
    with pytest.raises(ValidationError, match="max or min"):
        Deployment.from_k8s(_deployment(analysis={"checks": [{"metric": "errorRate"}]}))


def test_model_version_hash_is_checked() -> None:
    doc = {
        "kind": "ModelVersion",
        "metadata": {"name": "m-v1"},
        "spec": {
            "model": "m",
            "version": 1,
            "task": "regression",
            "artifact": {"uri": "pvc://a/b", "sha256": "xyz"},
        },
    }
    with pytest.raises(ValidationError, match="sha256"):
        ModelVersion.from_k8s(doc)


def test_a_compiled_model_must_sit_beside_its_artifact() -> None:
    def version(onnx_dir: str) -> dict[str, Any]:
        return {
            "kind": "ModelVersion",
            "metadata": {"name": "m-v2"},
            "spec": {
                "model": "m",
                "version": 2,
                "task": "regression",
                "artifact": {
                    "uri": f"pvc://a/models/m/{'a' * 64}/model.joblib",
                    "sha256": "a" * 64,
                },
                "compiled": {
                    "verified": True,
                    "uri": f"pvc://a/models/m/{onnx_dir}/model.onnx",
                    "sha256": "b" * 64,
                },
            },
        }

    assert ModelVersion.from_k8s(version("a" * 64)).spec.compiled is not None
    with pytest.raises(ValidationError, match=r"artifact\.uri.s directory"):
        ModelVersion.from_k8s(version("b" * 64))


def test_unknown_fields_are_errors_not_silently_ignored() -> None:
    doc = _training()
    doc["spec"]["estimater"] = {"name": "SVC"}
    with pytest.raises(ValidationError, match="estimater"):
        TrainingJob.from_k8s(doc)


def test_serialization_is_camel_case_without_unset_fields() -> None:
    tj = TrainingJob.from_k8s(_training())
    out = tj.spec.to_k8s()
    assert out["datasetRef"] == {"name": "iris"}
    assert "search" not in out
    assert out["split"]["testSize"] == 0.2


def test_unknown_status_fields_do_not_make_objects_unreadable() -> None:
    doc = _training()
    doc["status"] = {"phase": "Running", "fieldFromTheFuture": 1}
    assert TrainingJob.from_k8s(doc).status.phase == "Running"


def test_condition_transition_time_changes_only_when_status_flips() -> None:
    conditions = set_condition([], "Ready", "False", "Pending", "waiting", now=T0, generation=1)
    same = set_condition(conditions, "Ready", "False", "Pending", "waiting", now=T1, generation=1)
    assert same is conditions
    reworded = set_condition(
        conditions, "Ready", "False", "Validating", "busy", now=T1, generation=1
    )
    assert reworded[0].last_transition_time == T0
    flipped = set_condition(reworded, "Ready", "True", "Validated", "ok", now=T1, generation=1)
    assert flipped[0].last_transition_time == T1
    assert is_true(flipped, "Ready") and get_condition(flipped, "Other") is None


def test_ready_sorts_first() -> None:
    conditions = set_condition([], "Validated", "True", "Ok", "", now=T0)
    conditions = set_condition(conditions, "Ready", "True", "Ok", "", now=T0)
    assert [c.type for c in conditions] == ["Ready", "Validated"]


def test_fairness_and_robustness_gates_are_named_and_fit_the_task() -> None:
    fair = {"sensitiveFeatures": ["sex"]}
    tj = TrainingJob.from_k8s(
        _training(
            fairness=fair,
            gates=[
                {"metric": "fairness.demographicParityRatio", "threshold": 0.8},
                {"metric": "robustness.noise.flipRate@0.1", "operator": "<=", "threshold": 0.05},
                {"metric": "robustness.swap.metricDrop", "operator": "<=", "threshold": 0.01},
            ],
        )
    )
    assert tj.spec.fairness is not None and tj.spec.fairness.min_group_size == 30
    with pytest.raises(ValidationError, match=r"fairness gates need spec\.fairness"):
        TrainingJob.from_k8s(
            _training(gates=[{"metric": "fairness.demographicParityRatio", "threshold": 0.8}])
        )
    with pytest.raises(
        ValidationError, match=r"fairness\.demographicParityRatio cannot score a regression"
    ):
        TrainingJob.from_k8s(
            _training(
                estimator={"name": "Ridge"},
                fairness=fair,
                gates=[{"metric": "fairness.demographicParityRatio", "threshold": 0.8}],
            )
        )
    for wrong in ("robustness.noise.flipRate", "robustness.swap.flipRate@0.1", "robustness.x"):
        with pytest.raises(ValidationError, match="cannot score"):
            TrainingJob.from_k8s(_training(gates=[{"metric": wrong, "threshold": 0.1}]))


def test_gate_results_read_fairness_and_robustness_figures() -> None:
    from modelwerk.api.v1alpha1.evaluation import gate_figures
    from modelwerk.api.v1alpha1.training_job import Gate

    figures = gate_figures(
        {"accuracy": 0.9}, {"demographicParityRatio": 0.7}, {"noise.flipRate@0.25": 0.2}
    )
    assert not Gate(metric="fairness.demographicParityRatio", threshold=0.8).result(figures).passed
    result = Gate(metric="robustness.noise.flipRate@0.250", operator="<=", threshold=0.3).result(
        figures
    )
    assert result.passed and result.value == 0.2
    missing = Gate(metric="fairness.equalizedOddsRatio", threshold=0.8).result(figures)
    assert missing.value is None and not missing.passed
