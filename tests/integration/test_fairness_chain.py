"""The fairness sample on the real control plane: the stand-in node runs the real validator and
trainer; the run whose proxy carries the bias is Rejected with its figures, the run without it
registers a ModelVersion that records them. Then a server that refuses an artifact of another
scikit-learn minor version surfaces as the Deployment's ModelIncompatible condition."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sklearn
import yaml

from modelwerk.runtime.artifacts import MODEL_CARD_FILE, ModelCard
from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.serving import create_deployment, wait_for_status

ROOT = Path(__file__).resolve().parents[2]
GROUP = "/apis/modelwerk.dev/v1alpha1"
SAMPLE = [
    d
    for f in sorted((ROOT / "manifests/samples/fairness").glob("*.yaml"))
    for d in yaml.safe_load_all(f.read_text())
    if d and str(d.get("apiVersion", "")).startswith("modelwerk.dev")
]


def url(namespace: str, plural: str, name: str = "") -> str:
    return f"{GROUP}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def apply_sample(
    rest: Rest, namespace: str, names: set[str], training: Callable[[dict[str, Any]], None]
) -> None:
    """Create the sample's objects named in ``names``; ``training`` adjusts each TrainingJob."""
    for doc in SAMPLE:
        if doc["metadata"]["name"] not in names:
            continue
        doc = copy.deepcopy(doc)
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "TrainingJob":
            training(doc["spec"])
        rest.create(url(namespace, doc["kind"].lower() + "s"), doc)


def finished(rest: Rest, namespace: str, name: str) -> dict[str, Any] | None:
    status = rest.get(url(namespace, "trainingjobs", name)).get("status", {})
    return status if status.get("phase") in ("Succeeded", "Failed", "Rejected") else None


def test_the_proxy_is_rejected_by_the_fairness_gate_and_the_fair_model_registered(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    node.auto(namespace, "app.kubernetes.io/managed-by=modelwerk", mode="run")

    def fewer_resamples(spec: dict[str, Any]) -> None:  # keeps the suite quick on two cores
        spec["fairness"]["bootstrap"]["samples"] = 50

    names = {"hiring", "hiring-with-proxy", "hiring-without-proxy"}
    apply_sample(admin_rest, namespace, names, fewer_resamples)

    biased = wait_until(
        lambda: finished(admin_rest, namespace, "hiring-with-proxy"),
        timeout=420,
        what="hiring-with-proxy to finish",
    )
    assert biased["phase"] == "Rejected", biased
    assert "fairness.demographicParityRatio" in biased["message"]
    ratio = biased["fairness"]["figures"]["demographicParityRatio"]
    assert ratio < 0.8
    low, high = biased["fairness"]["intervals"]["demographicParityRatio"]
    assert low <= ratio <= high
    assert {g["group"] for g in biased["fairness"]["groups"]} == {"female", "male"}
    gate = next(g for g in biased["gateResults"] if g["metric"].startswith("fairness."))
    assert gate == {**gate, "passed": False, "value": ratio}
    assert biased["robustness"]["figures"]["noise.flipRate@0.1"] < 0.1
    assert [t["rank"] for t in biased["trials"]] == [1, 2, 3] and biased["trialCount"] == 3
    store = node.claims_dir / namespace / "modelwerk-artifacts"
    trials_dir = store / biased["trialsUri"].removeprefix("pvc://modelwerk-artifacts/")
    assert (trials_dir / "part-0.parquet").is_file()

    fair = wait_until(
        lambda: finished(admin_rest, namespace, "hiring-without-proxy"),
        timeout=420,
        what="hiring-without-proxy to finish",
    )
    assert fair["phase"] == "Succeeded", fair
    assert fair["fairness"]["figures"]["demographicParityRatio"] >= 0.8
    mv = admin_rest.get(url(namespace, "modelversions", fair["modelVersion"]))["spec"]
    assert mv["fairness"] == fair["fairness"] and mv["robustness"] == fair["robustness"]
    assert mv["environment"]["libraries"]["scikit-learn"] == sklearn.__version__
    assert "gender" not in [t["name"] for t in mv["signature"]["inputs"]]
    assert admin_rest.get(url(namespace, "modelversions"))["items"].__len__() == 1


def test_a_server_refusing_its_models_library_versions_is_reported(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    """A real trained model whose card says another scikit-learn minor version: the real server
    exits before loading it, and the Deployment says why."""
    node.auto(
        namespace, "app.kubernetes.io/managed-by=modelwerk,app.kubernetes.io/component!=server"
    )
    served = node.auto(namespace, "app.kubernetes.io/component=server", mode="serve")

    def plain(spec: dict[str, Any]) -> None:
        spec.pop("robustness")
        spec["fairness"].pop("bootstrap")
        spec["gates"] = [g for g in spec["gates"] if not g["metric"].startswith("robustness.")]

    apply_sample(admin_rest, namespace, {"hiring", "hiring-without-proxy"}, plain)
    done = wait_until(
        lambda: finished(admin_rest, namespace, "hiring-without-proxy"),
        timeout=420,
        what="the training run",
    )
    assert done["phase"] == "Succeeded", done
    spec = admin_rest.get(url(namespace, "modelversions", done["modelVersion"]))["spec"]
    # The same bytes, described as written by an older scikit-learn.
    store = node.claims_dir / namespace / "modelwerk-artifacts"
    source = store / spec["artifact"]["uri"].removeprefix("pvc://modelwerk-artifacts/")
    old = store / "models" / "hiring-screen" / "old"
    old.mkdir(parents=True)
    shutil.copy(source, old / "model.joblib")
    card = ModelCard.model_validate_json((source.parent / MODEL_CARD_FILE).read_text())
    major, minor = sklearn.__version__.split(".")[:2]
    older = f"{major}.{int(minor) - 1}.0"
    artifact = card.artifact.model_copy(update={"framework_version": older})
    (old / MODEL_CARD_FILE).write_text(
        card.model_copy(update={"artifact": artifact}).model_dump_json(by_alias=True)
    )
    admin_rest.create(
        url(namespace, "modelversions"),
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": "hiring-screen-old"},
            "spec": {
                **{k: spec[k] for k in ("model", "task", "signature")},
                "version": 99,
                "artifact": {
                    **spec["artifact"],
                    "uri": "pvc://modelwerk-artifacts/models/hiring-screen/old/model.joblib",
                    "frameworkVersion": older,
                },
            },
        },
    )
    wait_until(
        lambda: (
            admin_rest.get(url(namespace, "modelversions", "hiring-screen-old"))
            .get("status", {})
            .get("phase")
            == "Ready"
        ),
        timeout=120,
        what="the old-version artifact to be verified",
    )
    path = create_deployment(admin_rest, namespace, "hiring", modelVersion="hiring-screen-old")
    status = wait_for_status(
        admin_rest,
        path,
        lambda s: any(
            c["type"] == "ModelIncompatible" and c["status"] == "True"
            for c in s.get("conditions", [])
        ),
        timeout=180,
        what="the ModelIncompatible condition",
    )
    condition = next(c for c in status["conditions"] if c["type"] == "ModelIncompatible")
    assert condition["reason"] == "ScikitLearnVersionMismatch"
    assert f"scikit-learn {older}" in condition["message"]
    assert "allowVersionMismatch" in condition["message"]
    assert any(p.exit_code == 3 for p in served.served.values())
    assert json.dumps(status).count("Healthy") == 0
