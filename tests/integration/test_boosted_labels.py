"""XGBClassifier on text labels on the real control plane: a CSV whose target holds iris's
species names is validated, trained on by the real trainer pod, compiled and verified, and
served by real server processes, with the ONNX backend and with joblib, answering the names."""

from __future__ import annotations

import copy
import json
import urllib.request
from typing import Any

import numpy as np

from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.serving import create_deployment
from tests.integration.test_closed_loop import _serving
from tests.integration.test_training_chain import SAMPLES, phase_is, url

SPECIES = ["setosa", "versicolor", "virginica"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.7, 4.2, 1.3], [6.7, 3.0, 5.2, 2.3]]


def _species_csv() -> str:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame["target"] = np.asarray(SPECIES, dtype=object).take(frame["target"].to_numpy())
    return str(frame.to_csv(index=False))


def _get(ip: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{ip}:8080{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def test_species_names_are_trained_compiled_and_served_by_both_backends(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    node.auto(
        namespace, "app.kubernetes.io/managed-by=modelwerk,app.kubernetes.io/component!=server"
    )
    node.auto(namespace, "app.kubernetes.io/component=server", mode="serve")
    claim = node.claims_dir / namespace / "data"
    claim.mkdir(parents=True)
    (claim / "iris.csv").write_text(_species_csv())
    dataset = copy.deepcopy(SAMPLES["Dataset"])
    dataset["metadata"]["namespace"] = namespace
    dataset["spec"]["source"] = {"uri": "pvc://data/iris.csv"}
    dataset["spec"]["schema"] = {"minRows": 100}  # the sample's integer target contract
    admin_rest.create(url(namespace, "datasets"), dataset)
    doc = copy.deepcopy(SAMPLES["TrainingJob"])
    doc["metadata"]["namespace"] = namespace
    doc["spec"].pop("search")
    doc["spec"]["estimator"] = {"name": "XGBClassifier", "params": {"n_estimators": 30}}
    admin_rest.create(url(namespace, "trainingjobs"), doc)
    tj = wait_until(
        lambda: phase_is(admin_rest, namespace, "trainingjobs", "iris-rf", "Succeeded", "Failed"),
        timeout=400,
        what="the XGBoost run",
    )
    assert tj["phase"] == "Succeeded", tj
    name = tj["modelVersion"]
    wait_until(
        lambda: phase_is(admin_rest, namespace, "modelversions", name, "Ready"),
        timeout=120,
        what=f"{name} to be verified",
    )
    spec = admin_rest.get(url(namespace, "modelversions", name))["spec"]
    assert spec["signature"]["classes"] == SPECIES
    assert spec["compiled"]["verified"] is True and spec["compiled"]["labelAgreement"] == 1.0

    answers = {}
    for deployment, backend in (("compiled", "auto"), ("pickled", "joblib")):
        create_deployment(
            admin_rest, namespace, deployment, modelVersion=name, server={"backend": backend}
        )

        def serving_ip(deployment: str = deployment) -> str | None:
            pods = admin_rest.get(
                f"/api/v1/namespaces/{namespace}/pods",
                labelSelector=f"modelwerk.dev/deployment={deployment}",
            )["items"]
            return next((p["status"]["podIP"] for p in pods if _serving(p)), None)

        ip = wait_until(serving_ip, timeout=180, what=f"a Ready pod of {deployment}")
        meta = _get(ip, "/v2/models/iris-classifier")
        assert meta["parameters"]["classes"] == SPECIES
        answer = _get(ip, "/v1/models/iris-classifier:predict", {"instances": ROWS})
        answers[meta["parameters"]["backend"]] = answer["predictions"]
    assert answers["onnx"] == answers["joblib"] == SPECIES
