"""Bring your own trainer on the real control plane: the trainer pod (prepare init container,
upload sidecar, the user's container) and the evaluation Job, their real commands run by the
node stand-in. The user's container is the sample image's own script (images/byo-example)."""

from __future__ import annotations

import json
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.serving import create_deployment, wait_for_status
from tests.integration.test_closed_loop import _serving
from tests.integration.test_training_chain import apply, phase_is, url

ROOT = Path(__file__).resolve().parents[2]
# The sample's source, run with ``python -c`` as if it were in the trainer's image: a path on
# this machine would be taken for a path inside the pod when the checkout lives under /tmp
# (the stand-in maps the pod's /tmp volume, as a kubelet would).
SCRIPT = (ROOT / "images/byo-example/train.py").read_text()
CONTRACT = {
    "MODELWERK_TRAIN_PATH",
    "MODELWERK_OUTPUT_DIR",
    "MODELWERK_TARGET",
    "MODELWERK_TASK",
    "MODELWERK_SEED",
    "HOME",
    "TEAM",
}


@pytest.fixture
def runner(node: StandInNode, namespace: str):  # type: ignore[no-untyped-def]
    return node.auto(namespace, "app.kubernetes.io/managed-by=modelwerk", mode="run")


def trainingjob(rest: Rest, namespace: str, command: list[str], **spec: Any) -> None:
    body = {
        "apiVersion": "modelwerk.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "iris-byo", "namespace": namespace},
        "spec": {
            "datasetRef": {"name": "iris"},
            "model": {"name": "iris-stack"},
            "trainer": {
                "image": "modelwerk/byo-example:test",
                "command": command,
                "task": "classification",
                "env": [{"name": "TEAM", "value": "ml"}],
            },
            "split": {"testSize": 0.25, "seed": 5},
            **spec,
        },
    }
    rest.create(url(namespace, "trainingjobs"), body)


def finished(rest: Rest, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(
        lambda: phase_is(
            rest, namespace, "trainingjobs", "iris-byo", "Succeeded", "Failed", "Rejected"
        ),
        timeout=400,
        what="the trainer and the evaluation",
    )
    return found


def test_the_sample_trainer_is_graded_and_registered_by_modelwerk(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, runner: Any
) -> None:
    apply(admin_rest, namespace, "Dataset")
    trainingjob(
        admin_rest,
        namespace,
        ["python", "-c", SCRIPT],
        gates=[{"metric": "accuracy", "threshold": 0.85}],
        robustness={},
    )
    tj = finished(admin_rest, namespace)
    assert tj["phase"] == "Succeeded", tj
    assert tj["modelVersion"] == "iris-stack-v1"
    assert tj["trainer"]["exitCode"] == 0 and len(tj["trainer"]["modelSha256"]) == 64
    assert tj["metrics"]["accuracy"] >= 0.85 and "robustness" in tj

    mv = admin_rest.get(url(namespace, "modelversions", "iris-stack-v1"))["spec"]
    assert mv["task"] == "classification"
    assert [t["name"] for t in mv["signature"]["inputs"]][:1] == ["sepal length (cm)"]

    jobs = admin_rest.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
    (trainer_job,) = [j for j in jobs if "-trainer-" in j["metadata"]["name"]]
    pod = trainer_job["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["prepare", "upload"]
    assert pod["initContainers"][1]["restartPolicy"] == "Always"
    (main,) = pod["containers"]
    # The user's container: the contract's variables and its own, nothing of the store.
    assert {e["name"] for e in main["env"]} == CONTRACT
    assert "envFrom" not in main
    assert {m["name"] for m in main["volumeMounts"]} == {"input", "output", "trainer-tmp"}
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    driver_result = runner.wait_for(
        next(
            p["metadata"]["name"]
            for p in admin_rest.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
            if p["metadata"]["name"].startswith(trainer_job["metadata"]["name"])
        )
    )
    assert "trained a stacking ensemble on 112 rows" in driver_result.stdout  # 150 - 38 held out
    assert not any(
        k.startswith(("AWS_", "MODELWERK_ARTIFACT", "MODELWERK_DATASET"))
        for k in driver_result.command.env
    )


CRASH = textwrap.dedent("""
    import sys
    print("loading the data")
    print("ValueError: the trainer's own bug", file=sys.stderr)
    sys.exit(7)
""")


def test_a_crashing_trainer_fails_the_run_with_its_exit_code_and_last_words(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, runner: Any
) -> None:
    apply(admin_rest, namespace, "Dataset")
    trainingjob(admin_rest, namespace, ["python", "-c", CRASH])
    tj = finished(admin_rest, namespace)
    assert tj["phase"] == "Failed", tj
    assert tj["trainer"]["exitCode"] == 7
    assert "the trainer's own bug" in tj["trainer"]["logTail"]
    assert "exit code 7" in tj["message"] and "the trainer's own bug" in tj["message"]
    names = [
        j["metadata"]["name"]
        for j in admin_rest.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
    ]
    assert not any("-train-" in n for n in names)  # nothing is evaluated after a crash


ONNX_TRAINER = textwrap.dedent("""
    import os
    import pandas as pd
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingClassifier
    frame = pd.read_parquet(os.environ["MODELWERK_TRAIN_PATH"])
    target = os.environ["MODELWERK_TARGET"]
    x = frame.drop(columns=target).to_numpy()
    seed = int(os.environ["MODELWERK_SEED"])
    model = GradientBoostingClassifier(random_state=seed).fit(x, frame[target])
    graph = convert_sklearn(
        model,
        initial_types=[("X", FloatTensorType([None, x.shape[1]]))],
        options={id(model): {"zipmap": False}},
    )
    with open(os.path.join(os.environ["MODELWERK_OUTPUT_DIR"], "model.onnx"), "wb") as out:
        out.write(graph.SerializeToString())
    print(f"exported a gradient-boosted classifier fitted on {len(frame)} rows to ONNX")
""")


def _post(ip: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{ip}:8080{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def test_an_onnx_model_is_graded_registered_as_onnx_and_served_by_onnx_runtime(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    node.auto(
        namespace, "app.kubernetes.io/managed-by=modelwerk,app.kubernetes.io/component!=server"
    )
    node.auto(namespace, "app.kubernetes.io/component=server", mode="serve")
    apply(admin_rest, namespace, "Dataset")
    trainingjob(
        admin_rest,
        namespace,
        ["python", "-c", ONNX_TRAINER],
        gates=[{"metric": "accuracy", "threshold": 0.85}],
    )
    tj = finished(admin_rest, namespace)
    assert tj["phase"] == "Succeeded", tj
    assert tj["trainer"]["modelFormat"] == "onnx" and tj["metrics"]["accuracy"] >= 0.85
    mv = admin_rest.get(url(namespace, "modelversions", "iris-stack-v1"))["spec"]
    artifact = mv["artifact"]
    assert (artifact["format"], artifact["framework"]) == ("onnx", "onnx")
    assert artifact["uri"].endswith("/model.onnx") and "compiled" not in mv
    # modelwerk's copy holds the trainer's very bytes
    assert artifact["sha256"] == tj["trainer"]["modelSha256"]
    wait_until(
        lambda: phase_is(admin_rest, namespace, "modelversions", "iris-stack-v1", "Ready"),
        timeout=120,
        what="the ONNX artifact to be verified",
    )

    refused = create_deployment(
        admin_rest, namespace, "pickled", modelVersion="iris-stack-v1", server={"backend": "joblib"}
    )
    state = wait_for_status(
        admin_rest,
        refused,
        lambda s: any(c.get("reason") == "BackendUnavailable" for c in s.get("conditions", [])),
        what="the joblib backend to be refused",
    )
    assert "iris-stack-v1 is an ONNX model" in state["message"], state

    create_deployment(admin_rest, namespace, "iris", modelVersion="iris-stack-v1")

    def serving_ip() -> str | None:
        pods = admin_rest.get(
            f"/api/v1/namespaces/{namespace}/pods", labelSelector="modelwerk.dev/deployment=iris"
        )["items"]
        return next((p["status"]["podIP"] for p in pods if _serving(p)), None)

    ip = wait_until(serving_ip, timeout=180, what="a Ready serving pod")
    meta = _post(ip, "/v2/models/iris-stack")
    assert meta["platform"] == "onnxruntime" and meta["parameters"]["backend"] == "onnx"
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    answer = _post(ip, "/v1/models/iris-stack:predict", {"instances": rows})
    assert answer["predictions"] == [0, 2]


EVIL = textwrap.dedent("""
    import os, joblib
    class Grade:
        def __reduce__(self):
            return (os.system, ("echo accuracy=1.0",))
    joblib.dump(Grade(), os.path.join(os.environ["MODELWERK_OUTPUT_DIR"], "model.joblib"))
""")


def test_a_model_that_would_run_code_when_loaded_is_rejected_unloaded(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, runner: Any
) -> None:
    apply(admin_rest, namespace, "Dataset")
    trainingjob(admin_rest, namespace, ["python", "-c", EVIL])
    tj = finished(admin_rest, namespace)
    assert tj["phase"] == "Failed", tj
    assert "ModelRejected" in str(tj["conditions"]) and "posix.system" in tj["message"]
    assert admin_rest.get(url(namespace, "modelversions"))["items"] == []


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"estimator": {"name": "SVC"}}, "exactly one of spec.estimator and spec.trainer"),
        ({"search": {"strategy": "grid", "space": {"C": [1]}}}, "search and features belong"),
        ({"gates": [{"metric": "rmse", "threshold": 1}]}, "classification estimator can only"),
    ],
)
def test_admission_refuses_a_trainer_mixed_with_estimator_parts(
    admin_rest: Rest, namespace: str, extra: dict[str, Any], fragment: str
) -> None:
    from tests.integration.test_api_admission import refused

    doc = {
        "kind": "TrainingJob",
        "metadata": {"name": "mixed"},
        "spec": {
            "datasetRef": {"name": "d"},
            "model": {"name": "m"},
            "trainer": {"image": "x", "task": "classification"},
            **extra,
        },
    }
    assert fragment in refused(admin_rest, namespace, doc)
