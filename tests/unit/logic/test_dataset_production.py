"""Production Datasets in the operator's decisions: base waits, the InsufficientLabels verdict,
history and provenance, re-materialisation; TrainingJobs pinned to a past version and the
reproducibility record of a finished run."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1 import Dataset, TrainingJob
from modelwerk.builders.dataset import validation_fingerprint, validation_job_name
from modelwerk.builders.training_job import run_fingerprint, training_job_name
from modelwerk.handlers.dependents import Dependents
from modelwerk.logic.dataset import ObservedDataset, reconcile_dataset
from modelwerk.logic.jobs import job_outcome
from modelwerk.logic.plan import Plan
from modelwerk.logic.training_job import ObservedTraining, reconcile_training_job

from .conftest import NOW, WORKLOAD, job
from .test_training_job import RESULT, SHA, training

V1, V2, BASE = ("sha256:" + h * 32 for h in ("a1", "b2", "c3"))
STORE = "pvc://modelwerk-artifacts/datasets"


def production(status: dict[str, Any] | None = None, generation: int = 1, **source: Any) -> Dataset:
    return Dataset.from_k8s(
        {
            "metadata": {
                "name": "recent",
                "namespace": "ns",
                "uid": "d-1",
                "generation": generation,
            },
            "spec": {
                "target": "target",
                "source": {"production": {"deployment": "iris", "minLabelledRows": 50, **source}},
            },
            "status": status or {},
        }
    )


def base(phase: str = "Ready") -> Dataset:
    status = {"phase": phase, "observedGeneration": 1}
    if phase == "Ready":
        status |= {"version": BASE, "snapshotUri": f"{STORE}/iris/{BASE[7:]}/snapshot.parquet"}
    return Dataset.from_k8s(
        {
            "metadata": {"name": "iris", "namespace": "ns", "generation": 1},
            "spec": {"source": {"builtin": "iris"}, "target": "target"},
            "status": status,
        }
    )


def observed(
    *jobs: tuple[dict, list[dict]], base_dataset: Dataset | None = None
) -> ObservedDataset:
    return ObservedDataset(
        jobs={body["metadata"]["name"]: job_outcome(body, pods) for body, pods in jobs},
        artifact_pvc_exists=True,
        base=base_dataset,
    )


def job_name(ds: Dataset, base_version: str | None = None, now: Any = NOW) -> str:
    epoch = int(now.timestamp() // 3600)
    return validation_job_name(ds, validation_fingerprint(ds, epoch, base_version=base_version))


def valid(version: str, rows: int) -> dict[str, Any]:
    hexes = version.removeprefix("sha256:")
    return {
        "valid": True,
        "version": version,
        "rows": rows,
        "columns": 5,
        "snapshotUri": f"{STORE}/recent/{hexes}/snapshot.parquet",
        "profileUri": f"{STORE}/recent/{hexes}/profile.json",
        "provenance": {
            "base": {"dataset": "iris", "version": BASE, "rows": 150},
            "production": {
                "deployment": "iris",
                "start": "2026-11-21T12:00:00+00:00",
                "end": "2026-11-22T12:00:00+00:00",
                "rows": rows - 150,
                "labelledRows": rows - 150,
                "modelVersions": ["iris-classifier-v1"],
            },
        },
    }


def decide(ds: Dataset, obs: ObservedDataset, now: Any = NOW) -> Plan:
    return reconcile_dataset(ds, obs, now=now, config=WORKLOAD)


def env_of(body: dict[str, Any]) -> dict[str, str]:
    container = body["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_a_production_dataset_waits_for_its_base_then_fixes_window_and_base_in_the_job() -> None:
    ds = production(base={"name": "iris"})
    missing = decide(ds, observed())
    assert missing.create == () and missing.status.phase == "Pending"
    assert get_condition(missing.status.conditions, "Ready").reason == "BaseNotFound"  # type: ignore[union-attr]
    assert missing.requeue_after == 30
    waiting = decide(ds, observed(base_dataset=base("Validating")))
    assert waiting.create == ()
    assert "Waiting for base Dataset iris" in (waiting.status.message or "")
    plan = decide(ds, observed(base_dataset=base()))
    (body,) = plan.create
    assert body["metadata"]["name"] == job_name(ds, BASE)
    context = json.loads(env_of(body)["MODELWERK_PRODUCTION"])
    assert context == {
        "now": NOW.isoformat(),
        "base": {"name": "iris", "version": BASE, "snapshotUri": base().status.snapshot_uri},
    }
    # Hourly by default, so the next run starts with the next hour.
    assert plan.requeue_after == 3600.0


def test_a_new_base_version_or_a_new_hour_starts_a_new_materialisation() -> None:
    ds = production(base={"name": "iris"})
    first = job_name(ds, BASE)
    assert job_name(ds, V2) != first
    assert job_name(ds, BASE, NOW + timedelta(hours=1)) != first
    assert job_name(ds, BASE, NOW + timedelta(minutes=59)) == first
    explicit = production(base={"name": "iris"})
    explicit.spec.refresh_interval_seconds = 600  # a spec value wins over the default
    plan = decide(explicit, observed(base_dataset=base()))
    assert plan.requeue_after is not None and plan.requeue_after <= 600


def test_a_published_version_records_provenance_and_history_and_identical_data_adds_none() -> None:
    ds = production(base={"name": "iris"})
    name = job_name(ds, BASE)
    ready = decide(ds, observed(job(name, "Succeeded", valid(V1, 210)), base_dataset=base()))
    s = ready.status
    assert (s.phase, s.version, s.rows) == ("Ready", V1, 210)
    assert s.provenance is not None and s.provenance.base is not None
    assert (s.provenance.base.version, s.provenance.base.rows) == (BASE, 150)
    assert s.provenance.production is not None and s.provenance.production.rows == 60
    assert [h.version for h in s.history or []] == [V1]
    assert get_condition(s.conditions, "LabelsSufficient").status == "True"  # type: ignore[union-attr]
    # The next hour finds the same rows: same version, no new history entry.
    later = NOW + timedelta(hours=1)
    ds1 = ds.model_copy(update={"status": s})
    name2 = job_name(ds, BASE, later)
    same = decide(
        ds1, observed(job(name2, "Succeeded", valid(V1, 210)), base_dataset=base()), later
    )
    assert [h.version for h in same.status.history or []] == [V1]
    assert same.status.history[0].published_time == s.history[0].published_time  # type: ignore[index]
    assert [e.reason for e in same.events] == ["Validated"]
    # New labels: a new version in front, the old one kept.
    ds2 = ds.model_copy(update={"status": same.status})
    name3 = job_name(ds, BASE, later + timedelta(hours=1))
    newer = decide(
        ds2,
        observed(job(name3, "Succeeded", valid(V2, 260)), base_dataset=base()),
        later + timedelta(hours=1),
    )
    assert [h.version for h in newer.status.history or []] == [V2, V1]
    assert newer.status.version == V2


def insufficient(rows: int) -> dict[str, Any]:
    return {
        "valid": False,
        "reason": "InsufficientLabels",
        "labelledRows": rows,
        "requiredRows": 50,
        "provenance": {"production": valid(V1, 150)["provenance"]["production"] | {"rows": rows}},
        "message": f"{rows} labelled production rows with captured inputs in the window, 50 required",
    }


def test_too_few_labels_publish_nothing_and_keep_the_current_version() -> None:
    ds = production()
    name = job_name(ds)
    first = decide(ds, observed(job(name, "Succeeded", insufficient(12))))
    s = first.status
    assert s.phase == "Pending" and s.version is None
    labels = get_condition(s.conditions, "LabelsSufficient")
    assert labels is not None and (labels.status, labels.reason) == ("False", "InsufficientLabels")
    assert "12 labelled production rows" in labels.message and "50 required" in labels.message
    assert get_condition(s.conditions, "Ready").reason == "InsufficientLabels"  # type: ignore[union-attr]
    assert [e.reason for e in first.events] == ["InsufficientLabels"]
    # Seen again: the verdict stands, no second Job, no second event.
    again = decide(ds.model_copy(update={"status": s}), observed())
    assert again.create == () and again.events == ()
    # With a published version, too few labels later keep it current and Ready.
    current = decide(ds, observed(job(name, "Succeeded", valid(V1, 210)))).status
    later = NOW + timedelta(hours=1)
    kept = decide(
        ds.model_copy(update={"status": current}),
        observed(job(job_name(ds, now=later), "Succeeded", insufficient(3))),
        later,
    )
    k = kept.status
    assert (k.phase, k.version) == ("Ready", V1)
    assert get_condition(k.conditions, "Ready").status == "True"  # type: ignore[union-attr]
    assert get_condition(k.conditions, "LabelsSufficient").status == "False"  # type: ignore[union-attr]
    assert "stays current" in (k.message or "")


def test_a_base_dataset_change_wakes_the_datasets_built_on_it() -> None:
    deps = Dependents()
    deps.seen("Dataset", "ns", "recent", production(base={"name": "iris"}).spec.to_k8s())
    deps.seen("TrainingJob", "ns", "tj", {"datasetRef": {"name": "iris"}})
    assert deps.of_change("Dataset", "ns", "iris", {}) == [
        ("TrainingJob", "ns", "tj"),
        ("Dataset", "ns", "recent"),
    ]


# ---------------------------------------------------------------- TrainingJob pinning
def history_dataset(phase: str = "Ready") -> Dataset:
    current = valid(V2, 260)
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": 1,
        "history": [
            {k: current[k] for k in ("version", "rows", "columns", "snapshotUri", "profileUri")},
            {
                k: valid(V1, 210)[k]
                for k in ("version", "rows", "columns", "snapshotUri", "profileUri")
            },
        ],
    }
    if phase == "Ready":
        status |= {k: current[k] for k in ("version", "rows", "snapshotUri", "profileUri")}
    return production(status=status)


def pinned(version: str, **status: Any) -> TrainingJob:
    return training(status=status or None, datasetRef={"name": "recent", "version": version})


def start(tj: TrainingJob, ds: Dataset) -> Plan:
    return reconcile_training_job(tj, ObservedTraining(ds, {}, [], True), now=NOW, config=WORKLOAD)


def test_a_training_job_pinned_to_a_past_version_trains_on_that_snapshot() -> None:
    for wanted in (V1, V1.removeprefix("sha256:")[:12]):
        plan = start(pinned(wanted), history_dataset())
        (body,) = plan.create
        env = env_of(body)
        assert env["MODELWERK_DATASET_VERSION"] == V1
        assert env["MODELWERK_DATASET_SNAPSHOT_URI"] == valid(V1, 0)["snapshotUri"]
        assert plan.status.dataset_version == V1
    # A pinned version needs no current one: the Dataset may be waiting for labels.
    plan = start(pinned(V1), history_dataset("Pending"))
    assert plan.status.phase == "Running" and plan.status.dataset_version == V1


def test_a_full_version_off_the_history_is_found_beside_the_current_snapshot() -> None:
    old = "sha256:" + "9f" * 32
    plan = start(pinned(old), history_dataset())
    env = env_of(plan.create[0])
    assert env["MODELWERK_DATASET_SNAPSHOT_URI"] == f"{STORE}/recent/{'9f' * 32}/snapshot.parquet"
    assert env["MODELWERK_DATASET_PROFILE_URI"] == f"{STORE}/recent/{'9f' * 32}/profile.json"


def test_an_unknown_version_waits_and_says_which_versions_exist() -> None:
    plan = start(pinned("0123456789ab"), history_dataset())
    assert plan.create == () and plan.status.phase == "Pending"
    ready = get_condition(plan.status.conditions, "Ready")
    assert ready is not None and ready.reason == "DatasetVersionNotFound"
    assert "no version 0123456789ab" in ready.message and "b2b2b2b2b2b2" in ready.message
    assert plan.requeue_after == 30


def test_a_finished_run_records_what_reproduces_it() -> None:
    tj = pinned(V1)
    running = start(tj, history_dataset()).status
    tj = tj.model_copy(update={"status": running})
    name = training_job_name(tj, run_fingerprint(tj))
    result = RESULT | {
        "environment": {
            "python": "3.11.2",
            "libraries": {"scikit-learn": "1.5.2", "numpy": "2.1.0", "modelwerk": "0.9.0"},
        }
    }
    obs = ObservedTraining(
        history_dataset(),
        {name: job_outcome(*job(name, "Succeeded", result))},
        [],
        True,
    )
    plan = reconcile_training_job(tj, obs, now=NOW, config=WORKLOAD)
    r = plan.status.reproducibility
    assert r is not None
    assert (r.dataset, r.dataset_version, r.seed, r.spec_hash) == (
        "recent",
        V1,
        42,
        run_fingerprint(tj),
    )
    assert (r.image, r.python, r.artifact_sha256) == (WORKLOAD.image, "3.11.2", SHA)
    assert r.libraries == {"scikit-learn": "1.5.2", "numpy": "2.1.0", "modelwerk": "0.9.0"}
    assert plan.create[0]["spec"]["lineage"]["datasetVersion"] == V1
