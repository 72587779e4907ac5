"""The artifact store setting: parsed and refused with the field named, the per-namespace
override, and what every workload pod gets from it (environment, volumes, never a key value)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from modelwerk.api.v1alpha1 import Dataset, Deployment, ModelVersion, TrainingJob
from modelwerk.api.v1alpha1.common import StatusBase
from modelwerk.builders.artifact_store import ArtifactStore, StoreConfigError, parse_store
from modelwerk.builders.dataset import build_validation_job
from modelwerk.builders.model_version import build_verification_job
from modelwerk.builders.monitor import build_monitor, capture_of
from modelwerk.builders.serving import MODEL_CACHE, build_track
from modelwerk.builders.training_job import build_training_job
from modelwerk.builders.workload import DEFAULT_STORE, WorkloadConfig, build_artifact_pvc
from modelwerk.logic.artifact_store import CONDITION, StoreProblem, blocked, resolve_store, usable
from modelwerk.logic.plan import Plan
from modelwerk.settings import OperatorSettings

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SHA = "a" * 64
S3 = parse_store(
    "s3://mlops/artifacts", endpoint="http://10.0.0.1:7070", region="eu-1", secret="s3"
)


# --------------------------------------------------------------------------- settings


def test_the_default_is_the_embedded_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELWERK_ARTIFACT_STORE", raising=False)
    store = OperatorSettings().store()
    assert store == DEFAULT_STORE
    assert (store.claim, store.remote, store.root("team")) == (
        "modelwerk-artifacts",
        False,
        "pvc://modelwerk-artifacts",
    )


def test_an_s3_store_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELWERK_ARTIFACT_STORE", "s3://ml-bucket/modelwerk/")
    monkeypatch.setenv("MODELWERK_ARTIFACT_STORE_ENDPOINT", "https://rgw.example:8443")
    monkeypatch.setenv("MODELWERK_ARTIFACT_STORE_REGION", "eu-central-1")
    monkeypatch.setenv("MODELWERK_ARTIFACT_STORE_SECRET", "artifact-store")
    store = OperatorSettings().store()
    assert store.remote and store.claim is None
    assert store.root("team-a") == "s3://ml-bucket/modelwerk/team-a"
    assert (store.endpoint, store.region, store.secret) == (
        "https://rgw.example:8443",
        "eu-central-1",
        "artifact-store",
    )


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"MODELWERK_ARTIFACT_STORE": "gs://bucket"}, "MODELWERK_ARTIFACT_STORE:"),
        ({"MODELWERK_ARTIFACT_STORE": "s3://Bad_Bucket"}, "MODELWERK_ARTIFACT_STORE:"),
        ({"MODELWERK_ARTIFACT_STORE": "s3://b1b/../x"}, "MODELWERK_ARTIFACT_STORE:"),
        ({"MODELWERK_ARTIFACT_STORE": "pvc://Not_A_Claim"}, "MODELWERK_ARTIFACT_STORE:"),
        (
            {
                "MODELWERK_ARTIFACT_STORE": "s3://mlops",
                "MODELWERK_ARTIFACT_STORE_ENDPOINT": "10.0.0.1",
            },
            "MODELWERK_ARTIFACT_STORE_ENDPOINT:",
        ),
        (
            {
                "MODELWERK_ARTIFACT_STORE": "s3://mlops",
                "MODELWERK_ARTIFACT_STORE_ENDPOINT": "http://key:secret@minio:9000",
            },
            "MODELWERK_ARTIFACT_STORE_ENDPOINT:",
        ),
        (
            {
                "MODELWERK_ARTIFACT_STORE": "s3://mlops",
                "MODELWERK_ARTIFACT_STORE_SECRET": "Bad_Name",
            },
            "MODELWERK_ARTIFACT_STORE_SECRET:",
        ),
        (
            {"MODELWERK_ARTIFACT_STORE_SECRET": "creds"},  # a pvc store has no credentials
            "MODELWERK_ARTIFACT_STORE_SECRET:",
        ),
    ],
)
def test_an_unusable_store_stops_the_operator_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], field: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=field):
        OperatorSettings()


# --------------------------------------------------------------------------- the override


def test_a_namespace_override_is_used_as_given() -> None:
    store = resolve_store(DEFAULT_STORE, {"uri": "s3://team-a/ml", "secretName": "mine"})
    assert isinstance(store, ArtifactStore)
    assert store.root("team-a") == "s3://team-a/ml"  # no /<namespace>: the owner chose it
    assert (store.secret, store.source) == ("mine", "namespace")
    assert resolve_store(S3, {"uri": "pvc://team-claim"}) == ArtifactStore(
        "pvc", "team-claim", per_namespace_prefix=False, source="namespace"
    )


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({}, "key 'uri' is required"),
        ({"uri": "s3://team-a", "secret": "x"}, "unknown key 'secret'"),
        ({"uri": "file:///etc"}, "key uri: 'file:///etc' is not pvc://"),
        ({"uri": "s3://team-a", "endpoint": "ftp://x"}, "key endpoint:"),
        ({"uri": "s3://team-a", "region": "Europe West"}, "key region:"),
        ({"uri": "s3://team-a", "secretName": "a/b"}, "key secretName:"),
    ],
)
def test_a_broken_override_is_a_problem_naming_the_key(data: dict[str, str], says: str) -> None:
    problem = resolve_store(DEFAULT_STORE, data)
    assert isinstance(problem, StoreProblem)
    assert problem.reason == "ArtifactStoreInvalid"
    assert problem.message.startswith("ConfigMap modelwerk-artifact-store: ")
    assert says in problem.message


def test_a_blocked_object_reports_once_and_rechecks_slowly() -> None:
    problem = StoreProblem("ArtifactStoreInvalid", "ConfigMap modelwerk-artifact-store: bad")
    first = blocked(StatusBase(), problem, generation=1, now=NOW)
    assert not first.create and not first.apply and not first.delete  # nothing new starts
    assert [e.reason for e in first.events] == ["ArtifactStoreInvalid"]
    assert first.requeue_after is not None and first.requeue_after >= 60  # never a hot loop
    (condition,) = first.status.conditions
    assert (condition.type, condition.status) == (CONDITION, "False")
    again = blocked(first.status, problem, generation=1, now=NOW)
    assert again.events == () and again.status == first.status  # no new write, no new event
    fixed = usable(Plan(status=again.status), DEFAULT_STORE, generation=1, now=NOW)
    assert fixed.status.conditions[0].status == "True"
    assert [e.reason for e in fixed.events] == ["ArtifactStoreUsable"]
    untouched = usable(Plan(status=StatusBase()), DEFAULT_STORE, generation=1, now=NOW)
    assert untouched.status.conditions == []  # objects that never had a problem get nothing


# --------------------------------------------------------------------------- pods

META = {"namespace": "team-a", "uid": "00000000-0000-0000-0000-000000000001"}


def _dataset(uri: str | None = None, snapshot: str | None = None) -> Dataset:
    source: dict[str, Any] = (
        {"uri": uri, "secretRef": {"name": "src"}} if uri else {"builtin": "iris"}
    )
    return Dataset.from_k8s(
        {
            "metadata": {"name": "iris", **META},
            "spec": {"source": source},
            "status": {
                "phase": "Ready",
                "version": "sha256:" + SHA,
                "snapshotUri": snapshot
                or "s3://mlops/artifacts/team-a/datasets/iris/x/snapshot.parquet",
                "profileUri": (snapshot or "s3://mlops/artifacts/team-a/d/x/").rsplit("/", 1)[0]
                + "/profile.json",
            },
        }
    )


def _mv(uri: str) -> ModelVersion:
    return ModelVersion.from_k8s(
        {
            "metadata": {"name": "iris-v1", **META},
            "spec": {
                "model": "iris",
                "version": 1,
                "task": "classification",
                "artifact": {"uri": uri, "sha256": SHA},
            },
        }
    )


def _pods(store: ArtifactStore, *, model_uri: str, snapshot: str | None = None) -> dict[str, Any]:
    config = WorkloadConfig(image="i", image_pull_policy="Never", store=store)
    tj = TrainingJob.from_k8s(
        {
            "metadata": {"name": "iris-rf", **META},
            "spec": {
                "datasetRef": {"name": "iris"},
                "model": {"name": "iris"},
                "estimator": {"name": "RandomForestClassifier"},
            },
        }
    )
    dep = Deployment.from_k8s(
        {
            "metadata": {"name": "iris", **META},
            "spec": {"modelVersion": "x", "monitoring": {"capture": {}}},
        }
    )
    capture = capture_of(dep)
    assert capture is not None
    dataset = _dataset(snapshot=snapshot)
    mv = _mv(model_uri)
    specs = {
        "validation": build_validation_job(dataset, "f" * 10, config),
        "training": build_training_job(tj, dataset, "f" * 10, config),
        "verification": build_verification_job(mv, config),
        "server": build_track(dep, mv, "blue", 1, config),  # capturing: it writes to the store
        "monitor": build_monitor(dep, capture, config),  # the aggregator reads and deletes
    }
    return {kind: body["spec"]["template"]["spec"] for kind, body in specs.items()}


def _env(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["containers"][0]["env"]}


def test_pods_on_a_remote_store_mount_no_claim_and_get_the_aws_environment() -> None:
    pods = _pods(S3, model_uri="s3://mlops/artifacts/team-a/models/iris/x/model.joblib")
    for kind, pod in pods.items():
        claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
        assert claims == [], kind
        env = _env(pod)
        assert env["MODELWERK_ARTIFACT_ROOT"] == "s3://mlops/artifacts/team-a", kind
        assert env["AWS_ENDPOINT_URL"] == "http://10.0.0.1:7070"
        assert env["AWS_DEFAULT_REGION"] == "eu-1"
        assert env["AWS_ACCESS_KEY_ID"] == {
            "secretKeyRef": {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}
        }
        assert env["AWS_SECRET_ACCESS_KEY"] == {
            "secretKeyRef": {"name": "s3", "key": "AWS_SECRET_ACCESS_KEY"}
        }
        assert env["AWS_SESSION_TOKEN"]["secretKeyRef"]["optional"] is True
    server = pods["server"]
    (cache,) = [m for m in server["containers"][0]["volumeMounts"] if m["name"] == "models"]
    assert cache["mountPath"] == MODEL_CACHE
    assert _env(server)["MODELWERK_MODEL_CACHE"] == MODEL_CACHE
    (volume,) = [v for v in server["volumes"] if v["name"] == "models"]
    assert volume["emptyDir"] == {"sizeLimit": "1Gi"}  # the default memory limit
    assert (
        build_artifact_pvc(WorkloadConfig(image="i", image_pull_policy="Never", store=S3), "t")
        is None
    )


def test_pods_on_the_pvc_store_mount_it_and_get_no_aws_environment() -> None:
    uri = "pvc://modelwerk-artifacts/models/iris/x/model.joblib"
    snapshot = "pvc://modelwerk-artifacts/datasets/iris/x/snapshot.parquet"
    pods = _pods(DEFAULT_STORE, model_uri=uri, snapshot=snapshot)
    for kind, pod in pods.items():
        env = _env(pod)
        assert env["MODELWERK_ARTIFACT_ROOT"] == "pvc://modelwerk-artifacts"
        assert not [k for k in env if k.startswith("AWS_")], kind
        (claim,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
        assert claim["persistentVolumeClaim"]["claimName"] == "modelwerk-artifacts"
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == claim["name"]]
        assert mount["readOnly"] is (kind == "verification"), kind
        assert "models" not in {v["name"] for v in pod["volumes"]}


def test_artifacts_recorded_on_a_claim_stay_readable_after_the_store_moves() -> None:
    """A ModelVersion (or a Dataset version) registered before the store became remote keeps
    its pvc:// URI: the pods that read it mount that claim read-only, nothing else."""
    uri = "pvc://modelwerk-artifacts/models/iris/x/model.joblib"
    snapshot = "pvc://modelwerk-artifacts/datasets/iris/x/snapshot.parquet"
    pods = _pods(S3, model_uri=uri, snapshot=snapshot)
    for kind in ("training", "verification", "server"):
        pod = pods[kind]
        (claim,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
        assert claim["persistentVolumeClaim"] == {
            "claimName": "modelwerk-artifacts",
            "readOnly": True,
        }
        assert _env(pod)["MODELWERK_ARTIFACT_ROOT"] == "s3://mlops/artifacts/team-a", kind
    assert not [v for v in pods["validation"]["volumes"] if "persistentVolumeClaim" in v]
    assert "models" not in {v["name"] for v in pods["server"]["volumes"]}  # read in place


def test_a_source_secret_cannot_shadow_the_store_credentials() -> None:
    config = WorkloadConfig(image="i", image_pull_policy="Never", store=S3)
    job = build_validation_job(_dataset(uri="s3://other/iris.csv"), "f" * 10, config)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "src"}, "prefix": "MODELWERK_SOURCE_"}]


def test_credentials_reach_pods_only_by_reference() -> None:
    pods = _pods(S3, model_uri="s3://mlops/a/m.joblib")
    for pod in pods.values():
        for entry in pod["containers"][0]["env"]:
            if entry["name"] in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                assert "value" not in entry and "secretKeyRef" in entry["valueFrom"]
    assert "AWS_SECRET_ACCESS_KEY" in json.dumps(pods)  # the loop above did look at them


def test_store_errors_name_their_field() -> None:
    with pytest.raises(StoreConfigError) as caught:
        parse_store("s3://mlops", region="EU", fields=("u", "e", "r", "s"))
    assert caught.value.field == "r"
