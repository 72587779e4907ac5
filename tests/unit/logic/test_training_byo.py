"""The trainer stage of a spec.trainer run: one trainer Job, its failure causes, the upload's
result handed to the evaluation Job, and the one-of rule between estimator and trainer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1 import TrainingJob
from modelwerk.builders.byo import trainer_job_name
from modelwerk.builders.training_job import run_fingerprint, training_job_name
from modelwerk.logic.jobs import job_outcome
from modelwerk.logic.plan import Plan
from modelwerk.logic.training_job import ObservedTraining, reconcile_training_job

from .conftest import NOW, WORKLOAD
from .test_training_job import ready_dataset

TRAINER = {"image": "team/trainer:2", "command": ["python", "train.py"], "task": "regression"}
SHA = "ab" * 32


def byo(**spec: Any) -> TrainingJob:
    return TrainingJob.from_k8s(
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "house", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {
                "datasetRef": {"name": "iris"},
                "model": {"name": "prices"},
                "trainer": TRAINER,
                **spec,
            },
        }
    )


def trainer_job(
    tj: TrainingJob,
    state: str,
    *,
    exit_code: int = 0,
    reason: str = "Completed",
    message: str = "",
    upload: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    name = trainer_job_name(tj, run_fingerprint(tj))
    conditions = {
        "Succeeded": [{"type": "Complete", "status": "True"}],
        "Failed": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "x"}
        ],
    }.get(state, [])
    body = {
        "metadata": {"name": name},
        "status": {"conditions": conditions, "active": int(state == "Running")},
    }
    pods = []
    if state in ("Succeeded", "Failed"):
        status: dict[str, Any] = {
            "containerStatuses": [
                {
                    "name": "trainer",
                    "state": {
                        "terminated": {
                            "exitCode": exit_code,
                            "reason": reason,
                            "message": message,
                            "finishedAt": "2026-11-22T11:59:00Z",
                        }
                    },
                }
            ]
        }
        if upload is not None:
            status["initContainerStatuses"] = [
                {
                    "name": "prepare",
                    "state": {"terminated": {"exitCode": 0, "message": '{"ok":true}'}},
                },
                {
                    "name": "upload",
                    "state": {"terminated": {"exitCode": 0, "message": json.dumps(upload)}},
                },
            ]
        pods.append(
            {"metadata": {"name": f"{name}-p", "labels": {"job-name": name}}, "status": status}
        )
    return body, pods


def decide(tj: TrainingJob, *jobs: tuple[dict[str, Any], list[dict[str, Any]]]) -> Plan:
    observed = ObservedTraining(
        dataset=ready_dataset(),
        jobs={b["metadata"]["name"]: job_outcome(b, p) for b, p in jobs},
        versions=[],
        artifact_pvc_exists=True,
    )
    return reconcile_training_job(tj, observed, now=NOW, config=WORKLOAD)


def reason(plan: Plan) -> str | None:
    ready = get_condition(plan.status.conditions, "Ready")
    return ready.reason if ready else None


def test_a_run_starts_with_the_trainer_job() -> None:
    tj = byo(trainer={**TRAINER, "env": [{"name": "MODELWERK_TARGET", "value": "spoofed"}]})
    (job,) = decide(tj).create
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["name"] == trainer_job_name(tj, run_fingerprint(tj))
    (main,) = pod["containers"]
    assert (main["image"], main["command"]) == ("team/trainer:2", ["python", "train.py"])
    env = {e["name"]: e["value"] for e in main["env"]}
    assert env["MODELWERK_TARGET"] == "target"  # the contract wins over the user's variables
    assert env["MODELWERK_TASK"] == "regression"
    assert env["MODELWERK_TRAIN_PATH"] == "/var/run/modelwerk/input/train.parquet"
    assert main["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert not any(
        "persistentVolumeClaim" in v
        for v in pod["volumes"]
        if v["name"] in {m["name"] for m in main["volumeMounts"]}
    )
    upload = pod["initContainers"][1]
    assert upload["restartPolicy"] == "Always" and "startupProbe" in upload
    assert pod["terminationGracePeriodSeconds"] >= 60


def test_an_oom_killed_trainer_fails_the_run_with_the_cause() -> None:
    tj = byo()
    plan = decide(tj, trainer_job(tj, "Failed", exit_code=137, reason="OOMKilled"))
    assert plan.status.phase == "Failed" and reason(plan) == "TrainerOOMKilled"
    assert plan.status.trainer is not None and plan.status.trainer.exit_code == 137
    assert "exit code 137 (OOMKilled)" in (plan.status.message or "")
    assert plan.create == ()


def test_a_trainer_that_wrote_no_model_fails_with_the_uploads_words() -> None:
    tj = byo()
    upload = {"ok": False, "reason": "NoModel", "error": "the trainer wrote no model.joblib"}
    plan = decide(tj, trainer_job(tj, "Succeeded", upload=upload))
    assert reason(plan) == "NoModel" and "wrote no model.joblib" in (plan.status.message or "")


@pytest.mark.parametrize("model_format", ["joblib", "onnx"])
def test_a_finished_trainer_hands_the_recorded_hash_to_the_evaluation(model_format: str) -> None:
    tj = byo()
    uri = f"pvc://c/runs/x/model.{model_format}"
    upload = {"ok": True, "format": model_format, "uri": uri, "sha256": SHA}
    plan = decide(tj, trainer_job(tj, "Succeeded", upload=upload))
    (evaluation,) = plan.create
    assert evaluation["metadata"]["name"] == training_job_name(tj, run_fingerprint(tj))
    container = evaluation["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["modelwerk", "byo", "evaluate"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["MODELWERK_BYO_SHA256"], env["MODELWERK_BYO_MODEL_URI"]) == (SHA, upload["uri"])
    assert env["MODELWERK_BYO_FORMAT"] == model_format
    assert plan.status.trainer is not None and plan.status.trainer.model_sha256 == SHA
    assert plan.status.trainer.model_format == model_format


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"estimator": {"name": "Ridge"}}, "exactly one of spec.estimator and spec.trainer"),
        ({"search": {"strategy": "grid", "space": {"a": [1]}}}, "search and features"),
        ({"features": {"scaling": "standard"}}, "search and features"),
        ({"gates": [{"metric": "accuracy", "threshold": 0.9}]}, "cannot score a regression"),
    ],
)
def test_estimator_and_trainer_are_one_of(spec: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        byo(**spec)
