"""Datasets from production against the real control plane: a Deployment with capture serves
iris (real serving pods, run by the stand-in node), labels are posted to any pod, and the
real validation pod materialises the labelled rows, after the base Dataset's, into a new
Dataset version; too few labels publish nothing; a TrainingJob pinned to the older of two
versions trains on it and records what reproduces it.
"""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd

from modelwerk.runtime.artifacts import ModelCard
from modelwerk.runtime.data import snapshot
from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.serving import GROUP, wait_for_status
from tests.integration.test_capture import Client, _caught_up, _pods, _serving_v1
from tests.integration.test_closed_loop import COLUMNS, V1
from tests.integration.test_training_chain import SAMPLES, condition, url


def _dataset(rest: Rest, namespace: str, name: str, **production: Any) -> str:
    rest.create(
        url(namespace, "datasets"),
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": name},
            "spec": {
                "target": "target",
                "source": {"production": {"deployment": "iris", **production}},
            },
        },
    )
    return url(namespace, "datasets", name)


def _local(node: StandInNode, namespace: str, uri: str) -> str:
    """A pvc:// URI of the namespace's artifact claim as a path on this machine."""
    claim, _, rest = uri.removeprefix("pvc://").partition("/")
    return str(node.claims_dir / namespace / claim / rest)


def test_labelled_production_rows_become_dataset_versions_that_training_can_pin(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    path = _serving_v1(admin_rest, node, namespace, replicas=2)
    wait_until(lambda: len(_pods(admin_rest, namespace)) == 2, timeout=120, what="2 Ready pods")
    client = Client(admin_rest, namespace)
    client.send(120)
    # Once the aggregator has joined every label, every capture and label file is written.
    wait_for_status(admin_rest, path, _caught_up(client, V1), timeout=120, what="labels joined")
    assert client.labelled == 120 and client.refused == 0

    # 1. Too few labelled rows: a condition with the counts, nothing published.
    starved = _dataset(admin_rest, namespace, "starved", minLabelledRows=1000)
    status = wait_for_status(
        admin_rest, starved,
        lambda s: any(c["reason"] == "InsufficientLabels" for c in s.get("conditions", [])),
        timeout=120, what="InsufficientLabels",
    )  # fmt: skip
    labels = condition(status, "LabelsSufficient")
    assert labels["status"] == "False" and labels["reason"] == "InsufficientLabels"
    assert "120 labelled production rows" in labels["message"], labels
    assert "1000 required" in labels["message"]
    assert status["phase"] == "Pending" and "version" not in status
    assert condition(status, "Ready")["status"] == "False"

    # 2. Base + the newest 80 labelled rows: a Ready version with its provenance.
    recent = _dataset(
        admin_rest, namespace, "recent", base={"name": "iris"}, window={"lastRows": 80},
        minLabelledRows=50,
    )  # fmt: skip
    status = wait_for_status(
        admin_rest, recent, lambda s: s.get("phase") == "Ready", timeout=120,
        what="the production Dataset Ready",
    )  # fmt: skip
    first = status["version"]
    iris = admin_rest.get(url(namespace, "datasets", "iris"))["status"]
    assert status["rows"] == 150 + 80 and status["columns"] == 5
    provenance = status["provenance"]
    assert provenance["base"] == {"dataset": "iris", "version": iris["version"], "rows": 150}
    assert provenance["production"]["rows"] == 80
    assert provenance["production"]["labelledRows"] == 120
    assert provenance["production"]["modelVersions"] == [V1]
    assert [h["version"] for h in status["history"]] == [first]
    assert condition(status, "LabelsSufficient")["status"] == "True"
    # The snapshot holds the base's rows, then the served inputs with the posted labels.
    frame = snapshot.read("file://" + _local(node, namespace, status["snapshotUri"]))
    base = snapshot.read("file://" + _local(node, namespace, iris["snapshotUri"]))
    pd.testing.assert_frame_equal(frame.head(150), base)
    assert list(frame.columns) == [*COLUMNS, "target"]
    served = frame.tail(80)
    truth = {
        (round(float(r[0]), 6), int(t))
        for r, t in zip(base[COLUMNS].to_numpy(), base["target"], strict=True)
    }
    assert {
        (round(float(r[0]), 6), int(t))
        for r, t in zip(served[COLUMNS].to_numpy(), served["target"], strict=True)
    } <= truth

    # 3. More rows: a new version; the first stays in the history.
    admin_rest.merge_patch(
        recent, {"spec": {"source": {"production": {"window": {"lastRows": 120}}}}}
    )
    status = wait_for_status(
        admin_rest, recent, lambda s: s.get("version") not in (None, first) and s.get("phase") == "Ready",
        timeout=120, what="a second version",
    )  # fmt: skip
    second = status["version"]
    assert status["rows"] == 270
    assert [h["version"] for h in status["history"]] == [second, first]

    # 4. A TrainingJob pinned to the first version trains on it.
    tj = copy.deepcopy(SAMPLES["TrainingJob"])
    tj["metadata"] = {"name": "pinned"}
    tj["spec"].pop("search")
    tj["spec"] |= {
        "datasetRef": {"name": "recent", "version": first.removeprefix("sha256:")[:12]},
        "model": {"name": "iris-recent"},
        "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 20}},
    }
    admin_rest.create(url(namespace, "trainingjobs"), tj)
    done = wait_for_status(
        admin_rest, url(namespace, "trainingjobs", "pinned"),
        lambda s: s.get("phase") in ("Succeeded", "Failed", "Rejected"), timeout=300,
        what="the pinned run to finish",
    )  # fmt: skip
    assert done["phase"] == "Succeeded", done
    assert done["datasetVersion"] == first
    repro = done["reproducibility"]
    assert repro["dataset"] == "recent" and repro["datasetVersion"] == first
    assert repro["seed"] == 7 and repro["image"]
    assert {"scikit-learn", "numpy", "pandas", "modelwerk"} <= set(repro["libraries"])
    mv = admin_rest.get(f"{GROUP}/namespaces/{namespace}/modelversions/{done['modelVersion']}")
    assert mv["spec"]["lineage"]["datasetVersion"] == first
    assert mv["spec"]["artifact"]["sha256"] == repro["artifactSha256"]
    # The run read the first version's snapshot (the trainer checks its hash), not the
    # current one: 230 rows between its training and test parts.
    card_uri = mv["spec"]["artifact"]["uri"].rsplit("/", 1)[0] + "/model-card.json"
    with open(_local(node, namespace, card_uri)) as handle:
        card = ModelCard.model_validate_json(handle.read())
    assert card.dataset.version == first
    assert card.evaluation is not None
    assert card.evaluation.train_rows + card.evaluation.test_rows == 230
