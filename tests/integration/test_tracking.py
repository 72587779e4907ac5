"""Training runs logged to a real ``mlflow server`` (SQLite, proxied artifacts), and a run whose
tracking server is unreachable: it still trains, and says what was not tracked. Then the whole
chain on the control plane: the ModelVersion's verification pod tags the run with the version,
and with the tracker stopped the version is still Ready, its Tracked condition saying why."""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.metrics import REGISTRY
from modelwerk.runtime import version_tags
from modelwerk.runtime.data.synthetic import fairness_demo
from modelwerk.runtime.trainer import job as train_job
from tests.cluster import mlflow_server
from tests.cluster.controlplane import free_port
from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.samples import by_kind

GROUP = "/apis/modelwerk.dev/v1alpha1"
IRIS = by_kind("iris")
WORKLOADS = "app.kubernetes.io/managed-by=modelwerk,app.kubernetes.io/component"


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[mlflow_server.MlflowServer]:
    server = mlflow_server.start(tmp_path_factory.mktemp("mlflow"))
    print(f"mlflow server ready in {server.start_seconds:.1f} s")
    yield server
    server.stop()


def _job(tracking_uri: str) -> TrainingJob:
    return TrainingJob.from_k8s(
        {
            "metadata": {"name": "hiring", "namespace": "ns", "uid": "u-1"},
            "spec": {
                "datasetRef": {"name": "hiring"},
                "model": {"name": "hiring-screen"},
                "estimator": {"name": "LogisticRegression", "params": {"max_iter": 300}},
                "features": {"drop": ["gender"], "oneHot": ["district", "education"]},
                "search": {"strategy": "grid", "cv": 3, "space": {"C": [0.1, 1.0, 10.0]}},
                "fairness": {"sensitiveFeatures": ["gender"]},
                "robustness": {"noiseLevels": [0.1]},
                "gates": [{"metric": "fairness.demographicParityRatio", "threshold": 0.8}],
                "tracking": {"mlflow": {"trackingUri": tracking_uri, "experiment": "hiring"}},
            },
        }
    )


def _data(tmp_path: Path) -> train_job.DatasetInput:
    from modelwerk.runtime.data import snapshot

    uri = str(tmp_path / "snapshot.parquet")
    fairness_demo(rows=1200).to_parquet(uri)
    version = snapshot.version_of(snapshot.read(uri))
    return train_job.DatasetInput(name="hiring", version=version, snapshot_uri=uri, target="hired")


def test_a_run_is_logged_with_lineage_figures_trials_dataset_and_card(
    mlflow: mlflow_server.MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELWERK_RUN", "abc123")
    data = _data(tmp_path)
    outcome = train_job.run(_job(mlflow.url), data, str(tmp_path / "store"))
    result = outcome.result
    assert result["ok"], result
    assert result["trackingError"] is None, result["trackingError"]
    run_id = result["tracking"]["mlflow"]["runId"]
    run = mlflow.get("runs/get", run_id=run_id)["run"]
    assert run["info"]["status"] == "FINISHED"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    sha = data.version.removeprefix("sha256:")
    assert tags["modelwerk.datasetSha256"] == sha and len(sha) == 64
    assert tags["modelwerk.trainingJobUid"] == "u-1" and tags["modelwerk.run"] == "abc123"
    assert tags["modelwerk.gatesPassed"] == "false"  # the proxy's bias fails the gate
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert metrics["fairness.demographicParityRatio"] == pytest.approx(
        result["fairness"]["figures"]["demographicParityRatio"]
    )
    assert "robustness.noise.flipRate_0.1" in metrics and "accuracy" in metrics
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["estimator"] == "LogisticRegression" and "C" in params
    inputs = run["inputs"]["dataset_inputs"][0]
    assert inputs["dataset"]["digest"] == sha[:36] and inputs["dataset"]["name"] == "hiring"
    stored = mlflow.artifacts / run["info"]["experiment_id"] / run_id / "artifacts"
    card = json.loads((stored / "model-card.json").read_text())
    # The card keeps full precision; the Job's result rounds to 6 significant digits.
    assert card["fairness"]["figures"] == pytest.approx(result["fairness"]["figures"], rel=1e-5)
    table = json.loads((stored / "trials.json").read_text())
    assert len(table["data"]) == 3 and table["columns"][0] == "rank"
    children = mlflow.post(
        "runs/search",
        {
            "experiment_ids": [run["info"]["experiment_id"]],
            "filter": f"tags.mlflow.parentRunId = '{run_id}'",
        },
    )["runs"]
    assert len(children) == 3


def test_an_unreachable_tracking_server_never_fails_the_run(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    outcome = train_job.run(_job(dead), _data(tmp_path), str(tmp_path / "store"))
    assert outcome.ok and outcome.exit_code == 0
    assert outcome.result["tracking"] is None
    assert "cannot reach" in outcome.result["trackingError"]


def test_a_tag_the_server_refuses_is_reported_not_raised(
    mlflow: mlflow_server.MlflowServer,
) -> None:
    report = version_tags.tag_run(mlflow.url, "0" * 32, "iris-classifier-v9", 9)
    assert report["tagged"] is False and report["reason"] == "TagRefused", report
    assert "HTTP 404" in str(report["error"])


def _url(namespace: str, plural: str, name: str = "") -> str:
    return f"{GROUP}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def _train(rest: Rest, namespace: str, name: str, seed: int, tracker: str) -> None:
    """The iris sample's TrainingJob, lighter (two cores), logging to ``tracker``."""
    doc = copy.deepcopy(IRIS["TrainingJob"])
    doc["metadata"] |= {"name": name, "namespace": namespace}
    doc["spec"] |= {
        "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 20}},
        "search": {"strategy": "grid", "cv": 3, "scoring": "f1", "space": {"max_depth": [3, None]}},
        "split": {"testSize": 0.25, "seed": seed},
        "tracking": {
            "mlflow": {
                "trackingUri": tracker,
                "experiment": "iris",
                "credentialsSecret": {"name": "mlflow-credentials"},
            }
        },
    }
    rest.create(_url(namespace, "trainingjobs"), doc)


def _version(rest: Rest, namespace: str, name: str, *phases: str) -> dict[str, Any] | None:
    mv = rest.get_or_none(_url(namespace, "modelversions", name))
    if mv is None or (phases and mv.get("status", {}).get("phase") not in phases):
        return None
    return mv


def _await_version(
    rest: Rest, namespace: str, name: str, *phases: str, timeout: float
) -> dict[str, Any]:
    found = wait_until(
        lambda: _version(rest, namespace, name, *phases),
        timeout=timeout,
        what=f"ModelVersion {name} in {phases or 'any phase'}",
    )
    assert found is not None
    return found


def _tracked(mv: dict[str, Any]) -> dict[str, Any]:
    conditions = mv.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Tracked"), {})


def _tag_failures(namespace: str) -> float:
    labels = {"namespace": namespace, "reason": "TrackingUnavailable"}
    return REGISTRY.get_sample_value("modelwerk_tracking_tag_failures_total", labels) or 0.0


def test_registered_versions_tag_their_runs_and_a_stopped_tracker_only_costs_the_tag(
    admin_rest: Rest,
    namespace: str,
    operator: InProcessOperator,
    node: StandInNode,
    tmp_path: Path,
) -> None:
    # Its own server: this test stops it.
    server = mlflow_server.start(tmp_path / "mlflow")
    try:
        token = "mlflow-token-" + secrets.token_hex(8)
        admin_rest.create(
            f"/api/v1/namespaces/{namespace}/secrets",
            {"metadata": {"name": "mlflow-credentials"}, "stringData": {"MLFLOW_TRACKING_TOKEN": token}},
        )  # fmt: skip
        node.auto(namespace, f"{WORKLOADS} in (validation,training)", mode="run")
        verifier = node.auto(namespace, f"{WORKLOADS}=verification", mode="run")
        dataset = copy.deepcopy(IRIS["Dataset"])
        dataset["metadata"]["namespace"] = namespace
        admin_rest.create(_url(namespace, "datasets"), dataset)
        _train(admin_rest, namespace, "iris-rf", 7, server.url)

        first = _await_version(
            admin_rest, namespace, "iris-classifier-v1", "Ready", "Failed", timeout=420
        )
        assert first["status"]["phase"] == "Ready", first["status"]
        run_id = first["spec"]["tracking"]["mlflow"]["runId"]
        run = server.get("runs/get", run_id=run_id)["run"]
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert tags["modelwerk.modelVersion"] == "iris-classifier-v1"
        assert tags["modelwerk.modelVersionNumber"] == "1"
        assert tags["modelwerk.trainingJob"] == "iris-rf"  # the trainer's own lineage tags stay
        tracked = _tracked(first)
        assert (tracked["status"], tracked["reason"]) == ("True", "Tagged"), tracked

        # The next version's verification waits until the tracker is gone.
        verifier.stop()
        _train(admin_rest, namespace, "iris-rf-again", 8, server.url)
        second = _await_version(admin_rest, namespace, "iris-classifier-v2", timeout=420)
        second_run = second["spec"]["tracking"]["mlflow"]["runId"]
        failures = _tag_failures(namespace)
        server.stop()
        node.auto(namespace, f"{WORKLOADS}=verification", mode="run")
        second = _await_version(
            admin_rest, namespace, "iris-classifier-v2", "Ready", "Failed", timeout=180
        )
        assert second["status"]["phase"] == "Ready", second["status"]
        tracked = _tracked(second)
        assert (tracked["status"], tracked["reason"]) == ("False", "TrackingUnavailable")
        assert second_run in tracked["message"] and "cannot reach" in tracked["message"]
        events = admin_rest.get(f"/api/v1/namespaces/{namespace}/events")["items"]
        warned = [e for e in events if e.get("reason") == "TrackingUnavailable"]
        assert [e["involvedObject"]["name"] for e in warned] == ["iris-classifier-v2"]
        assert _tag_failures(namespace) == failures + 1

        # The operator named the Secret; its value is nowhere it writes or logs.
        for plural in ("modelversions", "trainingjobs"):
            assert token not in json.dumps(admin_rest.get(_url(namespace, plural)))
        assert token not in json.dumps(events)
        assert token not in json.dumps(
            admin_rest.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")
        )
        assert token not in operator.output
        assert 'modelwerk-operator" cannot' not in operator.output  # no verb on Secrets needed
    finally:
        server.stop()
