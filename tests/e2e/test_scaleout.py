"""Training that scales out, on a real cluster: a search over two pods of an Indexed Job, and
the bring-your-own-trainer sample (its image, a real kubelet's init container and native
sidecar, the evaluation Job)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.chain import sample, status, wait_registered
from tests.e2e.kubectl import JSON, Kubectl

BYO = Path(__file__).resolve().parents[2] / "manifests" / "samples" / "byo"
PARALLEL_SEARCH = {
    "strategy": "grid",
    "cv": 3,
    "space": {"max_depth": [2, 3, 4, None], "min_samples_leaf": [1, 3]},
    "parallelism": 2,
}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _ran(pod: JSON, container: str) -> tuple[datetime, datetime, JSON]:
    statuses = pod["status"].get("containerStatuses", []) + pod["status"].get(
        "initContainerStatuses", []
    )
    (found,) = [s for s in statuses if s["name"] == container]
    ended: JSON = found["state"]["terminated"]
    return _time(ended["startedAt"]), _time(ended["finishedAt"]), ended


def test_a_search_over_two_pods_then_the_final_fit(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(sample("dataset"), namespace)
    job = sample("trainingjob")
    job["metadata"]["name"] = "iris-parallel"
    job["spec"]["search"] = PARALLEL_SEARCH
    job["spec"]["estimator"] = {"name": "RandomForestClassifier", "params": {"n_estimators": 20}}
    kubectl.apply(job, namespace)
    wait_registered(kubectl, namespace, "iris-parallel")

    found = status(kubectl, "trainingjob", "iris-parallel", namespace)
    assert found["search"]["trialsDone"] == found["search"]["trialsTotal"] == 8
    assert found["trialCount"] == 8 and found["bestParams"] == found["search"]["bestParams"]
    pods = kubectl.list("pods", namespace, "modelwerk.dev/search-stage=0")
    assert len(pods) == 2, [p["metadata"]["name"] for p in pods]
    indexes = {p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] for p in pods}
    assert indexes == {"0", "1"}
    spans = [_ran(p, "main") for p in pods]
    assert all(ended["exitCode"] == 0 for _, _, ended in spans)
    # Both pods were running at the same time (an Indexed Job's parallelism, not a queue).
    (start_a, end_a, _), (start_b, end_b, _) = spans
    assert start_a < end_b and start_b < end_a


def test_the_byo_sample_is_graded_and_registered_by_modelwerk(
    kubectl: Kubectl, namespace: str
) -> None:
    docs: list[Any] = [
        yaml.safe_load((BYO / f"{f}.yaml").read_text()) for f in ("dataset", "trainingjob")
    ]
    for doc in docs:
        kubectl.apply(doc, namespace)
    version = wait_registered(kubectl, namespace, "cancer-stack")

    found = status(kubectl, "trainingjob", "cancer-stack", namespace)
    assert found["trainer"]["exitCode"] == 0 and len(found["trainer"]["modelSha256"]) == 64
    assert found["metrics"]["accuracy"] >= 0.93 and found["metrics"]["roc_auc"] >= 0.97
    assert {g["metric"] for g in found["gateResults"]} == {"accuracy", "roc_auc"}
    mv = kubectl.get("modelversion", version, namespace)
    assert mv["spec"]["task"] == "classification"

    (pod,) = kubectl.list("pods", namespace, "app.kubernetes.io/component=trainer")
    _, trainer_end, trainer = _ran(pod, "trainer")
    upload_start, upload_end, upload = _ran(pod, "upload")
    assert trainer["exitCode"] == 0
    # A real kubelet stopped the sidecar after the trainer, and the upload finished.
    assert upload_start <= trainer_end <= upload_end
    assert '"ok":true' in upload.get("message", "")
    logs = kubectl.logs(pod["metadata"]["name"], namespace, container="trainer")
    assert "trained a stacking ensemble on 426 rows" in logs  # 569 - 143 held out
