"""Tagging a ModelVersion's MLflow run from its verification Job: the Job's arguments and
credentials, and the Tracked condition its report becomes (never the phase)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1 import ModelVersion, TrainingJob
from modelwerk.builders.model_version import verification_job_name
from modelwerk.builders.workload import MlflowDefault
from modelwerk.logic.jobs import job_outcome
from modelwerk.logic.model_version import ObservedModelVersion, reconcile_model_version
from modelwerk.logic.version_tags import training_job_to_observe
from modelwerk.metrics import REGISTRY, record_model_version

from .conftest import NOW, WORKLOAD, job

SHA = "34" * 32
TRACKER = "http://mlflow.team.example:5000"
RUN = "0123456789abcdef0123456789abcdef"


def model_version(
    tracking_uri: str = TRACKER, status: dict[str, Any] | None = None
) -> ModelVersion:
    return ModelVersion.from_k8s(
        {
            "metadata": {"name": "churn-v3", "namespace": "ns", "uid": "m-3", "generation": 1},
            "spec": {
                "model": "churn",
                "version": 3,
                "task": "classification",
                "artifact": {"uri": f"pvc://modelwerk-artifacts/models/churn/{SHA}/model.joblib", "sha256": SHA},
                "lineage": {"trainingJob": "churn-lr", "trainingJobUid": "t-1"},
                "tracking": {"mlflow": {"trackingUri": tracking_uri, "experimentId": "4", "runId": RUN}},
            },
            "status": status or {},
        }
    )  # fmt: skip


def training_job(uid: str = "t-1", tracking: dict[str, Any] | None = None) -> TrainingJob:
    spec: dict[str, Any] = {
        "datasetRef": {"name": "churn"},
        "model": {"name": "churn"},
        "estimator": {"name": "LogisticRegression"},
    }
    if tracking is not None:
        spec["tracking"] = {"mlflow": tracking}
    return TrainingJob.from_k8s(
        {"metadata": {"name": "churn-lr", "namespace": "ns", "uid": uid}, "spec": spec}
    )


def container_of(
    mv: ModelVersion, trainer: TrainingJob | None = None, default: MlflowDefault | None = None
) -> dict[str, Any]:
    config = replace(WORKLOAD, mlflow=default)
    observed = ObservedModelVersion(jobs={}, training_job=trainer)
    (body,) = reconcile_model_version(mv, observed, now=NOW, config=config).create
    container: dict[str, Any] = body["spec"]["template"]["spec"]["containers"][0]
    return container


def secret_of(container: dict[str, Any]) -> str | None:
    sources = container.get("envFrom") or []
    assert all(s["secretRef"].get("optional") is True for s in sources)
    return sources[0]["secretRef"]["name"] if sources else None


def test_the_verification_job_tags_the_run_with_the_trainers_secret() -> None:
    own = {"trackingUri": TRACKER, "credentialsSecret": {"name": "team-mlflow"}}
    container = container_of(model_version(), training_job(tracking=own))
    command = container["command"]
    assert command[:2] == ["modelwerk", "verify"]
    flags = dict(zip(command[2::2], command[3::2], strict=True))
    assert flags["--mlflow-tracking-uri"] == TRACKER and flags["--mlflow-run-id"] == RUN
    assert flags["--model-version"] == "churn-v3" and flags["--model-version-number"] == "3"
    # Optional: a deleted Secret makes the tag fail, never holds the verification back.
    assert container["envFrom"] == [{"secretRef": {"name": "team-mlflow", "optional": True}}]
    # The operator names the Secret; its values never appear in the Job.
    assert not any("valueFrom" in e and "secretKeyRef" in e["valueFrom"] for e in container["env"])


def test_a_run_on_the_default_server_gets_the_defaults_secret() -> None:
    default = MlflowDefault(TRACKER + "/", credentials_secret="mlflow-default")
    # The TrainingJob named no server: its pod had the operator-wide default's Secret.
    assert secret_of(container_of(model_version(), training_job(), default)) == "mlflow-default"
    # The TrainingJob is gone: the default's Secret still belongs to the run's server.
    assert secret_of(container_of(model_version(), None, default)) == "mlflow-default"


@pytest.mark.parametrize(
    ("mv_uri", "trainer", "default"),
    [
        # A version applied by hand pointing elsewhere: no credentials leave for that server.
        ("http://elsewhere.example", None, MlflowDefault(TRACKER, credentials_secret="d")),
        # Another TrainingJob of the same name (new uid) does not lend its Secret.
        (TRACKER, training_job("t-2", {"trackingUri": TRACKER, "credentialsSecret": {"name": "x"}}), None),
        # The TrainingJob now names another server: its Secret is for that one.
        (TRACKER, training_job("t-1", {"trackingUri": "http://new.example", "credentialsSecret": {"name": "x"}}), None),
        # The trainer had no credentials for this server, though the default has some.
        (TRACKER, training_job("t-1", {"trackingUri": TRACKER}), MlflowDefault(TRACKER, credentials_secret="d")),
    ],
)  # fmt: skip
def test_credentials_only_go_to_the_server_they_were_given_for(
    mv_uri: str, trainer: TrainingJob | None, default: MlflowDefault | None
) -> None:
    container = container_of(model_version(mv_uri), trainer, default)
    assert "--mlflow-run-id" in container["command"]
    assert secret_of(container) is None


def test_a_version_without_a_run_is_verified_as_before() -> None:
    mv = model_version()
    untracked = mv.model_copy(update={"spec": mv.spec.model_copy(update={"tracking": None})})
    own = {"trackingUri": TRACKER, "credentialsSecret": {"name": "team-mlflow"}}
    container = container_of(untracked, training_job(tracking=own))
    assert not any(a.startswith("--mlflow") for a in container["command"])
    assert "envFrom" not in container
    assert training_job_to_observe(untracked) is None


def test_the_trainer_is_observed_only_until_the_version_is_verified() -> None:
    assert training_job_to_observe(model_version()) == "churn-lr"
    assert training_job_to_observe(model_version(status={"verifiedSha256": SHA})) is None
    assert training_job_to_observe(model_version(status={"phase": "Failed"})) is None


def finished(mv: ModelVersion, state: str, result: dict[str, Any], exit_code: int = 0) -> Any:
    body, pods = job(verification_job_name(mv), state, result, exit_code)
    observed = ObservedModelVersion({body["metadata"]["name"]: job_outcome(body, pods)})
    return reconcile_model_version(mv, observed, now=NOW, config=WORKLOAD)


def test_an_unreachable_tracker_leaves_the_version_ready_with_the_reason() -> None:
    mv = model_version()
    report = {"tagged": False, "reason": "TrackingUnavailable", "error": f"cannot reach {TRACKER}: [Errno 111] Connection refused"}  # fmt: skip
    plan = finished(mv, "Succeeded", {"ok": True, "sha256": SHA, "tracking": report})
    assert plan.status.phase == "Ready" and plan.status.verified_sha256 == SHA
    tracked = get_condition(plan.status.conditions, "Tracked")
    assert tracked is not None and (tracked.status, tracked.reason) == (
        "False",
        "TrackingUnavailable",
    )
    assert "Connection refused" in tracked.message and "churn-v3" in tracked.message
    assert [(e.type, e.reason) for e in plan.events] == [
        ("Normal", "Verified"),
        ("Warning", "TrackingUnavailable"),
    ]
    # Later reconciles keep the condition and do not warn again.
    again = reconcile_model_version(
        mv.model_copy(update={"status": plan.status}),
        ObservedModelVersion({}),
        now=NOW,
        config=WORKLOAD,
    )
    assert again.events == () and again.status.phase == "Ready"
    assert get_condition(again.status.conditions, "Tracked") == tracked


def test_a_tagged_run_is_tracked_and_a_garbled_reason_is_a_refusal() -> None:
    mv = model_version()
    plan = finished(mv, "Succeeded", {"ok": True, "sha256": SHA, "tracking": {"tagged": True}})
    tracked = get_condition(plan.status.conditions, "Tracked")
    assert tracked is not None and (tracked.status, tracked.reason) == ("True", "Tagged")
    assert [e.reason for e in plan.events] == ["Verified"]
    odd = {"tagged": False, "reason": "not a CamelCase reason!", "error": "HTTP 403"}
    plan = finished(mv, "Succeeded", {"ok": True, "sha256": SHA, "tracking": odd})
    refused = get_condition(plan.status.conditions, "Tracked")
    assert refused is not None and refused.reason == "TagRefused" and "HTTP 403" in refused.message


def test_a_refused_artifact_is_failed_for_its_hash_and_tracked_on_its_own() -> None:
    mv = model_version()
    result = {
        "ok": False,
        "reason": "HashMismatch",
        "error": "altered",
        "tracking": {"tagged": True},
    }
    plan = finished(mv, "Failed", result, exit_code=1)
    assert plan.status.phase == "Failed"
    ready = get_condition(plan.status.conditions, "Ready")
    assert ready is not None and ready.reason == "HashMismatch"
    assert get_condition(plan.status.conditions, "Tracked").status == "True"  # type: ignore[union-attr]


def _failures(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "modelwerk_tracking_tag_failures_total", {"namespace": "ns", "reason": reason}
    )
    return value or 0.0


def test_a_tag_failure_is_counted_once() -> None:
    mv = model_version()
    report = {"tagged": False, "reason": "TagRefused", "error": "HTTP 401"}
    plan = finished(mv, "Succeeded", {"ok": True, "sha256": SHA, "tracking": report})
    before = _failures("TagRefused")
    record_model_version(mv, plan)
    record_model_version(mv.model_copy(update={"status": plan.status}), plan)  # seen again
    assert _failures("TagRefused") == before + 1
