"""ModelVersion decisions: verify the artifact once, refuse a tampered one, record stages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1 import ModelVersion
from modelwerk.builders.model_version import verification_job_name
from modelwerk.logic.jobs import job_outcome
from modelwerk.logic.model_version import ObservedModelVersion, reconcile_model_version

from .conftest import NOW, WORKLOAD, job

SHA = "12" * 32


def model_version(stage: str = "None", status: dict[str, Any] | None = None) -> ModelVersion:
    return ModelVersion.from_k8s(
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {
                "name": "iris-classifier-v1",
                "namespace": "ns",
                "uid": "m-1",
                "generation": 1,
            },
            "spec": {
                "model": "iris-classifier",
                "version": 1,
                "task": "classification",
                "stage": stage,
                "artifact": {
                    "uri": f"pvc://modelwerk-artifacts/models/iris-classifier/{SHA}/model.joblib",
                    "sha256": SHA,
                },
                "metrics": {"accuracy": 0.9667, "f1": 0.96},
            },
            "status": status or {},
        }
    )


def observed(*jobs: tuple[dict, list[dict]]) -> ObservedModelVersion:
    return ObservedModelVersion({b["metadata"]["name"]: job_outcome(b, p) for b, p in jobs})


def test_a_new_version_starts_a_read_only_verification_job() -> None:
    mv = model_version()
    plan = reconcile_model_version(mv, observed(), now=NOW, config=WORKLOAD)
    (job_body,) = plan.create
    container = job_body["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == [
        "modelwerk",
        "verify",
        "--uri",
        mv.spec.artifact.uri,
        "--sha256",
        SHA,
    ]
    assert all(m["readOnly"] for m in container["volumeMounts"] if m["name"].startswith("pvc-"))
    assert plan.status.phase == "Pending"
    assert plan.status.key_metric == "accuracy=0.9667"


def test_a_matching_hash_makes_it_ready_and_stays_ready_without_new_jobs() -> None:
    mv = model_version()
    name = verification_job_name(mv)
    plan = reconcile_model_version(
        mv, observed(job(name, "Succeeded", {"ok": True, "sha256": SHA})), now=NOW, config=WORKLOAD
    )
    assert plan.status.phase == "Ready" and plan.status.verified_sha256 == SHA
    assert get_condition(plan.status.conditions, "Ready").status == "True"  # type: ignore[union-attr]
    again = reconcile_model_version(
        mv.model_copy(update={"status": plan.status}), observed(), now=NOW, config=WORKLOAD
    )
    assert again.create == () and again.status == plan.status


def test_a_tampered_artifact_is_refused_with_the_reason() -> None:
    mv = model_version()
    result = {
        "ok": False,
        "reason": "HashMismatch",
        "error": "sha256 of … is 99…, expected 12…: the artifact was altered",
    }
    plan = reconcile_model_version(
        mv, observed(job(verification_job_name(mv), "Failed", result, 1)), now=NOW, config=WORKLOAD
    )
    assert plan.status.phase == "Failed"
    ready = get_condition(plan.status.conditions, "Ready")
    assert ready is not None and ready.reason == "HashMismatch" and "altered" in ready.message
    assert [e.reason for e in plan.events] == ["HashMismatch"]
    again = reconcile_model_version(
        mv.model_copy(update={"status": plan.status}), observed(), now=NOW, config=WORKLOAD
    )
    assert again.create == () and again.status.phase == "Failed"


def test_stage_changes_are_recorded_with_time() -> None:
    mv = model_version()
    first = reconcile_model_version(mv, observed(), now=NOW, config=WORKLOAD).status
    promoted = model_version("Production", status=first.to_k8s())
    later = NOW + timedelta(minutes=5)
    history = reconcile_model_version(
        promoted, observed(), now=later, config=WORKLOAD
    ).status.stage_history
    assert [(h.stage, h.time) for h in history or []] == [("None", NOW), ("Production", later)]


def _production(name: str, version: int, promoted: Any = None) -> Any:
    from modelwerk.logic.model_version import ProductionVersion

    return ProductionVersion(name, version, promoted)


def test_only_the_most_recently_promoted_version_stays_in_production() -> None:
    from modelwerk.logic.model_version import superseded_by

    earlier = reconcile_model_version(
        model_version("Production"), observed(), now=NOW, config=WORKLOAD
    ).status
    v1 = model_version("Production", status=earlier.to_k8s())
    # v2 was promoted after v1 (its promotion not yet recorded): v1 archives itself.
    later = NOW + timedelta(minutes=1)
    others = ObservedModelVersion({}, [_production("iris-classifier-v2", 2)])
    plan = reconcile_model_version(v1, others, now=later, config=WORKLOAD)
    assert plan.spec_patch == {"stage": "Archived"}
    assert [e.reason for e in plan.events] == ["ArchivedByNewerProduction"]
    # An older Production version does not retire a newer one: that one archives itself.
    assert (
        superseded_by(v1, [_production("iris-classifier-v0", 0, NOW - timedelta(days=1))], later)
        is None
    )
    # Two promotions seen at once: the higher version wins, on both sides.
    fresh = model_version("Production")
    assert superseded_by(fresh, [_production("iris-classifier-v2", 2)], NOW) == "iris-classifier-v2"
    assert superseded_by(fresh, [_production("iris-classifier-v0", 0)], NOW) is None
    assert (
        superseded_by(model_version("Staging"), [_production("iris-classifier-v2", 2)], NOW) is None
    )
