"""Dataset decisions: one validation Job per spec, verdicts recorded, no retry loops."""

from __future__ import annotations

from typing import Any

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1 import Dataset
from modelwerk.builders.dataset import validation_fingerprint, validation_job_name
from modelwerk.logic.dataset import ObservedDataset, reconcile_dataset
from modelwerk.logic.jobs import job_outcome
from modelwerk.logic.plan import Plan

from .conftest import NOW, WORKLOAD, job

CONFIG = WORKLOAD
VERSION = "sha256:" + "ab" * 32


def dataset(generation: int = 1, status: dict[str, Any] | None = None, **spec: Any) -> Dataset:
    return Dataset.from_k8s(
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "iris", "namespace": "ns", "uid": "u-1", "generation": generation},
            "spec": {"source": {"builtin": "iris"}, "target": "target", **spec},
            "status": status or {},
        }
    )


def observed(*jobs: tuple[dict, list[dict]], pvc: bool = True) -> ObservedDataset:
    return ObservedDataset(
        jobs={body["metadata"]["name"]: job_outcome(body, pods) for body, pods in jobs},
        artifact_pvc_exists=pvc,
    )


def name_of(ds: Dataset) -> str:
    return validation_job_name(ds, validation_fingerprint(ds))


def decide(ds: Dataset, obs: ObservedDataset) -> Plan:
    return reconcile_dataset(ds, obs, now=NOW, config=CONFIG)


def test_a_new_dataset_gets_its_artifact_volume_and_one_validation_job() -> None:
    ds = dataset()
    plan = decide(ds, observed(pvc=False))
    kinds = [c["kind"] for c in plan.create]
    assert kinds == ["PersistentVolumeClaim", "Job"]
    job_body = plan.create[1]
    assert job_body["metadata"]["name"] == name_of(ds)
    assert job_body["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert job_body["spec"]["backoffLimit"] == 0
    pod = job_body["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["modelwerk", "data", "validate"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert plan.status.phase == "Validating"
    assert get_condition(plan.status.conditions, "Ready").status == "False"  # type: ignore[union-attr]
    assert [e.reason for e in plan.events] == ["ValidationStarted"]


def test_a_running_job_is_not_started_again() -> None:
    ds = dataset()
    plan = decide(ds, observed(job(name_of(ds), "Running")))
    assert plan.create == ()
    assert plan.status.phase == "Validating"


def test_a_valid_result_makes_the_dataset_ready_with_its_version() -> None:
    ds = dataset()
    result = {
        "valid": True,
        "version": VERSION,
        "rows": 150,
        "columns": 5,
        "snapshotUri": "pvc://modelwerk-artifacts/datasets/iris/ab/snapshot.parquet",
        "profileUri": "pvc://modelwerk-artifacts/datasets/iris/ab/profile.json",
        "inferredSchema": [{"name": "target", "type": "integer", "missing": 0}],
        "violations": [],
    }
    plan = decide(ds, observed(job(name_of(ds), "Succeeded", result)))
    status = plan.status
    assert (status.phase, status.version, status.rows, status.short_version) == (
        "Ready",
        VERSION,
        150,
        "ab" * 6,
    )
    assert get_condition(status.conditions, "Ready").status == "True"  # type: ignore[union-attr]
    assert get_condition(status.conditions, "Validated").reason == "ContractMet"  # type: ignore[union-attr]
    assert status.observed_generation == 1


def test_contract_violations_make_the_dataset_invalid_with_reasons_and_no_retry() -> None:
    ds = dataset()
    violations = [
        {
            "column": "petal width (cm)",
            "rule": "max",
            "observed": "2.5",
            "count": 23,
            "message": "petal width (cm): 23 values above max 2.0",
        }
    ]
    result = {
        "valid": False,
        "rows": 150,
        "columns": 5,
        "violations": violations,
        "violationCount": 1,
    }
    plan = decide(ds, observed(job(name_of(ds), "Succeeded", result)))
    assert plan.status.phase == "Invalid"
    assert plan.status.violations[0].count == 23  # type: ignore[index]
    assert "23 values above max 2.0" in (plan.status.message or "")
    assert plan.create == ()
    # The verdict stands: with the Job gone, nothing is started again for the same spec.
    again = decide(ds.model_copy(update={"status": plan.status}), observed())
    assert again.create == () and again.status.phase == "Invalid"


def test_an_unreadable_source_fails_with_the_cause() -> None:
    ds = dataset(source={"uri": "https://example.invalid/iris.csv"})
    result = {
        "valid": False,
        "reason": "Unreadable",
        "error": "cannot resolve host example.invalid",
    }
    plan = decide(ds, observed(job(name_of(ds), "Failed", result, exit_code=2)))
    assert plan.status.phase == "Failed"
    assert get_condition(plan.status.conditions, "Ready").reason == "Unreadable"  # type: ignore[union-attr]
    assert "cannot resolve host" in (plan.status.message or "")
    assert [e.type for e in plan.events] == ["Warning"]


def test_a_sql_source_gets_its_url_as_a_secret_key_and_a_failed_query_is_final() -> None:
    sql = {"query": "SELECT * FROM t", "urlSecretRef": {"name": "db", "key": "url"}}
    ds = dataset(source={"sql": sql})
    (body,) = decide(ds, observed()).create
    container = body["spec"]["template"]["spec"]["containers"][0]
    assert {
        "name": "MODELWERK_SQL_URL",
        "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}},
    } in container["env"]
    assert "envFrom" not in container  # only the one key, not the whole Secret
    result = {"valid": False, "reason": "ConnectionFailed", "error": "cannot connect: …"}
    plan = decide(ds, observed(job(name_of(ds), "Failed", result, exit_code=2)))
    assert plan.status.phase == "Failed"
    assert get_condition(plan.status.conditions, "Ready").reason == "ConnectionFailed"  # type: ignore[union-attr]
    again = decide(ds.model_copy(update={"status": plan.status}), observed())
    assert again.create == () and again.events == ()  # the verdict stands: no retry loop


def test_a_spec_change_starts_a_new_validation_and_cleans_the_old_job() -> None:
    old = dataset()
    old_name = name_of(old)
    ready = decide(
        old, observed(job(old_name, "Succeeded", {"valid": True, "version": VERSION, "rows": 1}))
    )
    changed = dataset(generation=2, status=ready.status.to_k8s(), schema={"minRows": 10})
    plan = decide(
        changed, observed(job(old_name, "Succeeded", {"valid": True, "version": VERSION}))
    )
    assert [c["metadata"]["name"] for c in plan.create] == [name_of(changed)]
    assert [k.name for k in plan.delete] == [old_name]
    # The contract changed, so the old verdict no longer certifies the data.
    assert plan.status.phase == "Validating"


def test_a_refresh_keeps_serving_the_last_good_version() -> None:
    ds = dataset(refreshIntervalSeconds=3600)
    first = decide(
        ds, observed(job(name_of_refresh(ds, 0), "Succeeded", {"valid": True, "version": VERSION}))
    )
    plan = decide(ds.model_copy(update={"status": first.status}), observed())
    assert plan.status.phase == "Ready"
    assert plan.requeue_after is not None and 0 < plan.requeue_after <= 3600


def name_of_refresh(ds: Dataset, offset: int) -> str:
    from modelwerk.logic.dataset import refresh_epoch

    epoch, _ = refresh_epoch(ds, NOW)
    return validation_job_name(ds, validation_fingerprint(ds, epoch + offset))


def test_deciding_twice_is_stable() -> None:
    ds = dataset()
    plan = decide(ds, observed(job(name_of(ds), "Succeeded", {"valid": True, "version": VERSION})))
    again = decide(
        ds.model_copy(update={"status": plan.status}),
        observed(job(name_of(ds), "Succeeded", {"valid": True, "version": VERSION})),
    )
    assert again.status == plan.status
    assert again.events == ()


def test_the_next_refresh_period_revalidates_while_staying_ready() -> None:
    from datetime import timedelta

    ds = dataset(refreshIntervalSeconds=3600)
    first = decide(
        ds, observed(job(name_of_refresh(ds, 0), "Succeeded", {"valid": True, "version": VERSION}))
    )
    later = reconcile_dataset(
        ds.model_copy(update={"status": first.status}),
        observed(),
        now=NOW + timedelta(hours=1),
        config=CONFIG,
    )
    assert [c["metadata"]["name"] for c in later.create] == [name_of_refresh(ds, 1)]
    assert later.status.phase == "Ready"
    assert get_condition(later.status.conditions, "Validated").status == "Unknown"  # type: ignore[union-attr]


def test_a_refresh_supersedes_a_run_that_is_still_pending() -> None:
    # Found by admission fuzzing: with refreshIntervalSeconds and a validation pod that never
    # starts (unschedulable, image not pulled), every period used to add one more Job.
    ds = dataset(refreshIntervalSeconds=60)
    previous = name_of_refresh(ds, -1)
    plan = decide(ds, observed(job(previous, "Pending")))
    assert [c["metadata"]["name"] for c in plan.create] == [name_of_refresh(ds, 0)]
    assert [k.name for k in plan.delete] == [previous]


def test_a_pod_that_cannot_start_says_why_and_nothing_is_retried() -> None:
    """A Secret (or key) that does not exist: the kubelet retries the container without end, so
    the run waits; the status says which Secret, so the user can create it."""
    ds = dataset()
    body, _ = job(name_of(ds), "Running")
    waiting = {
        "reason": "CreateContainerConfigError",
        "message": 'secret "artifact-store" not found',
    }
    pod = {
        "metadata": {"name": "p", "labels": {"job-name": name_of(ds)}},
        "status": {"containerStatuses": [{"state": {"waiting": waiting}}]},
    }
    plan = decide(ds, observed((body, [pod])))
    assert plan.create == () and plan.delete == () and plan.requeue_after is None
    assert plan.status.phase == "Validating"
    assert plan.status.message == (
        f"Validation Job {name_of(ds)} cannot start its pod: "
        'CreateContainerConfigError: secret "artifact-store" not found'
    )


def test_a_remote_store_needs_no_claim() -> None:
    from dataclasses import replace

    from modelwerk.builders.artifact_store import parse_store

    config = replace(CONFIG, store=parse_store("s3://mlops/artifacts"))
    plan = reconcile_dataset(dataset(), observed(pvc=False), now=NOW, config=config)
    assert [c["kind"] for c in plan.create] == ["Job"]
