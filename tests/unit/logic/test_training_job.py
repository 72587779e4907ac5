"""TrainingJob decisions: wait for data, one Job per spec, gates, exactly-once registration."""

from __future__ import annotations

from typing import Any

import pytest

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1 import Dataset, TrainingJob
from modelwerk.builders.training_job import run_fingerprint, training_job_name
from modelwerk.logic.jobs import job_outcome
from modelwerk.logic.plan import Plan
from modelwerk.logic.training_job import (
    ObservedTraining,
    RegisteredVersion,
    reconcile_training_job,
)

from .conftest import NOW, WORKLOAD, job

CONFIG = WORKLOAD
VERSION = "sha256:" + "cd" * 32
SHA = "ef" * 32
RESULT = {
    "ok": True,
    "task": "classification",
    "metrics": {"accuracy": 0.97, "f1": 0.96, "precision": 0.96, "recall": 0.96},
    "bestParams": {"max_depth": 5},
    "artifact": {
        "uri": f"pvc://modelwerk-artifacts/models/iris-classifier/{SHA}/model.joblib",
        "sha256": SHA,
        "sizeBytes": 1000,
        "frameworkVersion": "1.5.2",
    },
    "signature": {
        "inputs": [["sepal length (cm)", "FP64"], ["sepal width (cm)", "FP64"]],
        "outputs": [["predict", "INT64"]],
        "classes": [0, 1, 2],
    },
}


def training(generation: int = 1, status: dict[str, Any] | None = None, **spec: Any) -> TrainingJob:
    return TrainingJob.from_k8s(
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {
                "name": "iris-rf",
                "namespace": "ns",
                "uid": "t-1",
                "generation": generation,
            },
            "spec": {
                "datasetRef": {"name": "iris"},
                "model": {"name": "iris-classifier"},
                "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 50}},
                "gates": [{"metric": "accuracy", "threshold": 0.9}],
                **spec,
            },
            "status": status or {},
        }
    )


def ready_dataset(phase: str = "Ready", message: str | None = None) -> Dataset:
    status = {"phase": phase, "observedGeneration": 1, "message": message}
    if phase == "Ready":
        status |= {
            "version": VERSION,
            "shortVersion": "cd" * 6,
            "snapshotUri": "pvc://modelwerk-artifacts/datasets/iris/cd/snapshot.parquet",
            "profileUri": "pvc://modelwerk-artifacts/datasets/iris/cd/profile.json",
        }
    return Dataset.from_k8s(
        {
            "metadata": {"name": "iris", "namespace": "ns", "generation": 1},
            "spec": {"source": {"builtin": "iris"}, "target": "target"},
            "status": {k: v for k, v in status.items() if v is not None},
        }
    )


def observed(
    *jobs: tuple[dict, list[dict]],
    dataset: Dataset | None = None,
    versions: list[RegisteredVersion] | None = None,
) -> ObservedTraining:
    return ObservedTraining(
        dataset=dataset if dataset is not None else ready_dataset(),
        jobs={body["metadata"]["name"]: job_outcome(body, pods) for body, pods in jobs},
        versions=versions or [],
        artifact_pvc_exists=True,
    )


def name_of(tj: TrainingJob) -> str:
    return training_job_name(tj, run_fingerprint(tj))


def decide(tj: TrainingJob, obs: ObservedTraining) -> Plan:
    return reconcile_training_job(tj, obs, now=NOW, config=CONFIG)


def test_a_missing_dataset_is_named_in_the_condition() -> None:
    plan = reconcile_training_job(
        training(), ObservedTraining(None, {}, [], True), now=NOW, config=CONFIG
    )
    assert plan.status.phase == "Pending"
    condition = get_condition(plan.status.conditions, "DatasetReady")
    assert condition is not None and condition.reason == "DatasetNotFound"
    assert "Dataset iris does not exist" in (plan.status.message or "")
    assert plan.create == () and plan.requeue_after


def test_an_invalid_dataset_keeps_the_run_waiting_with_the_reason() -> None:
    plan = decide(
        training(), observed(dataset=ready_dataset("Invalid", "2 contract violations: …"))
    )
    assert plan.status.phase == "Pending"
    assert get_condition(plan.status.conditions, "Ready").reason == "DatasetInvalid"  # type: ignore[union-attr]
    assert "2 contract violations" in (plan.status.message or "")
    assert plan.create == ()


def test_a_ready_dataset_starts_one_job_pinned_to_its_version() -> None:
    tj = training()
    plan = decide(tj, observed())
    (job_body,) = plan.create
    assert job_body["metadata"]["name"] == name_of(tj)
    env = {
        e["name"]: e.get("value")
        for e in job_body["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MODELWERK_DATASET_VERSION"] == VERSION
    assert env["MODELWERK_DATASET_SNAPSHOT_URI"].endswith("snapshot.parquet")
    assert plan.status.phase == "Running" and plan.status.dataset_version == VERSION


def test_after_a_restart_the_running_job_is_found_not_duplicated() -> None:
    tj = training()
    plan = decide(tj, observed(job(name_of(tj), "Running")))
    assert plan.create == ()
    assert plan.status.phase == "Running"


def test_passing_gates_register_the_next_version_once() -> None:
    tj = training()
    existing = [RegisteredVersion("iris-classifier-v1", "iris-classifier", 1, "other", "old")]
    plan = decide(tj, observed(job(name_of(tj), "Succeeded", RESULT), versions=existing))
    (mv,) = plan.create
    assert mv["metadata"]["name"] == "iris-classifier-v2"
    assert "ownerReferences" not in mv["metadata"]
    spec = mv["spec"]
    assert spec["artifact"]["sha256"] == SHA
    assert spec["lineage"] == {
        "dataset": "iris",
        "datasetVersion": VERSION,
        "trainingJob": "iris-rf",
        "trainingJobUid": "t-1",
    }
    assert spec["signature"]["inputs"][0] == {
        "name": "sepal length (cm)",
        "datatype": "FP64",
        "shape": [-1],
    }
    assert spec["signature"]["classes"] == ["0", "1", "2"]
    assert spec["params"] == {"n_estimators": 50, "max_depth": 5}
    # Once the ModelVersion carrying this run's label exists, the run is Succeeded.
    fingerprint = run_fingerprint(tj)
    registered = [
        *existing,
        RegisteredVersion("iris-classifier-v2", "iris-classifier", 2, fingerprint, "iris-rf"),
    ]
    done = decide(
        tj.model_copy(update={"status": plan.status}),
        observed(job(name_of(tj), "Succeeded", RESULT), versions=registered),
    )
    assert done.create == ()
    assert (done.status.phase, done.status.model_version) == ("Succeeded", "iris-classifier-v2")
    assert done.status.primary_metric == "accuracy=0.97"


def test_an_onnx_artifact_is_registered_as_onnx() -> None:
    tj = training()
    artifact = {
        **RESULT["artifact"],  # type: ignore[dict-item]
        "uri": f"pvc://modelwerk-artifacts/models/iris-classifier/{SHA}/model.onnx",
        "format": "onnx",
        "frameworkVersion": "opset 18",
    }
    plan = decide(tj, observed(job(name_of(tj), "Succeeded", {**RESULT, "artifact": artifact})))
    (mv,) = plan.create
    assert mv["spec"]["artifact"]["format"] == "onnx"
    assert mv["spec"]["artifact"]["framework"] == "onnx"
    assert mv["spec"]["artifact"]["frameworkVersion"] == "opset 18"
    assert "compiled" not in mv["spec"]


def test_registration_race_moves_on_to_the_next_free_version() -> None:
    tj = training()
    taken = [RegisteredVersion("iris-classifier-v1", "iris-classifier", 1, "someone-else", "other")]
    plan = decide(tj, observed(job(name_of(tj), "Succeeded", RESULT), versions=taken))
    assert plan.create[0]["metadata"]["name"] == "iris-classifier-v2"
    assert plan.status.phase == "Running" and plan.status.model_version is None


def test_failing_gates_reject_without_a_model_version() -> None:
    tj = training(gates=[{"metric": "accuracy", "threshold": 0.99}])
    plan = decide(tj, observed(job(name_of(tj), "Succeeded", RESULT)))
    assert plan.create == ()
    assert plan.status.phase == "Rejected"
    assert "accuracy 0.97 is not >= 0.99" in (plan.status.message or "")
    assert plan.status.gate_results[0].passed is False  # type: ignore[index]


@pytest.mark.parametrize(
    "result,reason",
    [
        (
            {
                "ok": False,
                "reason": "InvalidParams",
                "error": "invalid params for RandomForestClassifier: n_estimatorz",
            },
            "InvalidParams",
        ),
        ("Traceback (most recent call last): ... MemoryError", "TrainingFailed"),
    ],
)
def test_a_failed_job_ends_failed_with_the_cause(result: Any, reason: str) -> None:
    tj = training()
    plan = decide(tj, observed(job(name_of(tj), "Failed", result, exit_code=1)))
    assert plan.status.phase == "Failed"
    assert get_condition(plan.status.conditions, "Ready").reason == reason  # type: ignore[union-attr]
    assert plan.create == ()
    # Terminal: deciding again starts nothing.
    again = decide(tj.model_copy(update={"status": plan.status}), observed())
    assert again.create == () and again.status.phase == "Failed"


def test_a_job_marked_failure_target_is_failed_before_its_pods_are_gone() -> None:
    # Kubernetes 1.31+: FailureTarget first, zero active pods while they terminate, Failed last.
    # The run is Failed from the first of these, so its status is written once, not twice.
    tj = training()
    body, pods = job(name_of(tj), "Pending")
    body["status"]["conditions"] = [
        {
            "type": "FailureTarget",
            "status": "True",
            "reason": "DeadlineExceeded",
            "message": "Job was active longer than specified deadline",
        }
    ]
    first = decide(tj, observed((body, pods)))
    assert first.status.phase == "Failed"
    assert "DeadlineExceeded" in (first.status.message or "")
    body["status"]["conditions"].append({**body["status"]["conditions"][0], "type": "Failed"})
    settled = decide(tj.model_copy(update={"status": first.status}), observed((body, pods)))
    assert settled.status == first.status and settled.create == ()


def test_a_suspended_training_job_starts_no_run_until_it_is_resumed() -> None:
    tj = training(suspend=True)
    plan = decide(tj, observed())
    assert plan.create == () and plan.status.phase == "Suspended"
    assert get_condition(plan.status.conditions, "Ready").reason == "Suspended"  # type: ignore[union-attr]
    resumed = training(suspend=False)
    # Lifting suspend starts the run the spec describes: the same Job as if it had never been set.
    assert name_of(resumed) == name_of(tj)
    (job_body,) = [o for o in decide(resumed, observed()).create if o["kind"] == "Job"]
    assert job_body["metadata"]["name"] == name_of(tj)


def test_editing_the_spec_starts_a_new_run() -> None:
    tj = training()
    done = decide(
        tj,
        observed(
            job(name_of(tj), "Succeeded", RESULT),
            versions=[
                RegisteredVersion(
                    "iris-classifier-v1", "iris-classifier", 1, run_fingerprint(tj), "iris-rf"
                )
            ],
        ),
    )
    edited = training(
        generation=2,
        status=done.status.to_k8s(),
        estimator={"name": "RandomForestClassifier", "params": {"n_estimators": 60}},
    )
    plan = decide(edited, observed(job(name_of(tj), "Succeeded", RESULT)))
    assert [c["metadata"]["name"] for c in plan.create] == [name_of(edited)]
    assert plan.status.phase == "Running" and plan.status.model_version is None


FAIR_RESULT = {
    **RESULT,
    "fairness": {
        "sensitiveFeatures": ["sex"],
        "figures": {"demographicParityRatio": 0.7},
        "groups": [{"feature": "sex", "group": "f", "count": 40, "gated": True, "metrics": {}}],
        "groupsTruncated": True,
    },
    "robustness": {"metric": "accuracy", "figures": {"noise.flipRate@0.1": 0.02}},
    "trials": [{"rank": 1, "params": {"max_depth": 5}, "meanScore": 0.95}],
    "trialCount": 3,
    "environment": {"python": "3.11.2", "libraries": {"scikit-learn": "1.9.1"}},
}


def test_fairness_and_robustness_figures_are_gated_and_recorded() -> None:
    fair = {"sensitiveFeatures": ["sex"]}
    tj = training(
        fairness=fair,
        gates=[{"metric": "fairness.demographicParityRatio", "threshold": 0.8}],
    )
    plan = decide(tj, observed(job(name_of(tj), "Succeeded", FAIR_RESULT)))
    assert plan.status.phase == "Rejected" and plan.create == ()
    assert "fairness.demographicParityRatio 0.7 is not >= 0.8" in (plan.status.message or "")
    assert plan.status.fairness is not None and plan.status.trial_count == 3
    tj = training(
        fairness=fair,
        gates=[{"metric": "robustness.noise.flipRate@0.10", "operator": "<=", "threshold": 0.05}],
    )
    plan = decide(tj, observed(job(name_of(tj), "Succeeded", FAIR_RESULT)))
    (mv,) = plan.create
    spec = mv["spec"]
    assert spec["fairness"]["figures"] == {"demographicParityRatio": 0.7}
    assert spec["robustness"]["figures"] == {"noise.flipRate@0.1": 0.02}
    assert spec["environment"]["libraries"]["scikit-learn"] == "1.9.1"


@pytest.mark.parametrize(
    "tracking,error,state,reason",
    [
        ({"mlflow": {"trackingUri": "http://m", "runId": "r1"}}, None, "True", "Logged"),
        (None, "cannot reach http://m: refused", "False", "TrackingUnavailable"),
        (
            {"mlflow": {"trackingUri": "http://m", "runId": "r1"}},
            "artifacts",
            "False",
            "TrackingIncomplete",
        ),
    ],
)
def test_tracking_never_fails_a_run_but_is_a_condition(
    tracking: Any, error: str | None, state: str, reason: str
) -> None:
    tj = training()
    result = {**RESULT, "tracking": tracking, "trackingError": error}
    plan = decide(tj, observed(job(name_of(tj), "Succeeded", result)))
    assert plan.status.phase == "Running" and len(plan.create) == 1  # registering
    condition = get_condition(plan.status.conditions, "Tracked")
    assert condition is not None and (condition.status, condition.reason) == (state, reason)
    warned = [e for e in plan.events if e.reason == reason]
    assert bool(warned) == (state == "False")
    if tracking:
        assert plan.create[0]["spec"]["tracking"]["mlflow"]["runId"] == "r1"


def test_a_byte_identical_artifact_registers_nothing_and_names_the_duplicate() -> None:
    tj = training()
    twin = [RegisteredVersion("iris-classifier-v3", "iris-classifier", 3, "old-run", "old", SHA)]
    other = [RegisteredVersion("iris-classifier-v4", "iris-classifier", 4, "x", "y", "00" * 32)]
    plan = decide(tj, observed(job(name_of(tj), "Succeeded", RESULT), versions=twin + other))
    assert plan.create == ()
    ready = get_condition(plan.status.conditions, "Ready")
    assert ready is not None and ready.reason == "AlreadyRegistered"
    assert plan.status.phase == "Succeeded"
    assert plan.status.model_version == "iris-classifier-v3"
    assert "byte-identical" in (plan.status.message or "")
    assert "iris-classifier-v3" in (plan.status.message or "")
    assert [e.reason for e in plan.events] == ["AlreadyRegistered"]
    # another artifact of the same model is registered as usual
    plan = decide(tj, observed(job(name_of(tj), "Succeeded", RESULT), versions=other))
    assert plan.create[0]["metadata"]["name"] == "iris-classifier-v5"
