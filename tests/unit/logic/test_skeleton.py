"""Every kind's reconcile acknowledges the generation it saw and always sets Ready."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1 import KINDS
from modelwerk.logic.dataset import reconcile_dataset
from modelwerk.logic.deployment import reconcile_deployment
from modelwerk.logic.model_version import reconcile_model_version
from modelwerk.logic.training_job import reconcile_training_job

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DECIDE = {
    "Dataset": reconcile_dataset,
    "TrainingJob": reconcile_training_job,
    "ModelVersion": reconcile_model_version,
    "Deployment": reconcile_deployment,
}
MV = {
    "apiVersion": "modelwerk.dev/v1alpha1",
    "kind": "ModelVersion",
    "metadata": {"name": "iris-classifier-v1", "namespace": "ns", "generation": 3},
    "spec": {
        "model": "iris-classifier",
        "version": 1,
        "task": "classification",
        "artifact": {"uri": "pvc://modelwerk-artifacts/models/iris/x/model.joblib", "sha256": "a" * 64},
    },
}


def _objects() -> list[dict]:
    docs = [MV]
    for path in (ROOT / "manifests/samples/iris").glob("*.yaml"):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] in DECIDE]
    for doc in docs:
        doc.setdefault("metadata", {}).setdefault("generation", 2)
    return docs


@pytest.mark.parametrize("doc", _objects(), ids=lambda d: d["kind"])
def test_reconcile_sets_observed_generation_and_ready(doc: dict) -> None:
    model = {k.crd.kind: k for k in KINDS}[doc["kind"]]
    obj = model.from_k8s(doc)
    plan = DECIDE[doc["kind"]](obj, now=NOW)  # type: ignore[operator]
    assert plan.status.observed_generation == doc["metadata"]["generation"]
    ready = get_condition(plan.status.conditions, "Ready")
    assert ready is not None and ready.observed_generation == doc["metadata"]["generation"]
    # Deciding again from the new status changes nothing: no status write, no event loop.
    again = DECIDE[doc["kind"]](obj.model_copy(update={"status": plan.status}), now=NOW)  # type: ignore[operator]
    assert again.status == plan.status
