"""Data to registered model on the real control plane: the operator under its own RBAC starts
real Jobs, and the node stand-in runs their pods' real commands (validator, trainer, verifier).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelwerk.metrics import REGISTRY
from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest, RestError
from tests.cluster.s3 import S3Server
from tests.cluster.wait import wait_until
from tests.integration.samples import by_kind

GROUP = "/apis/modelwerk.dev/v1alpha1"
SAMPLES = by_kind("iris")
# A lighter search keeps the suite fast on two cores; the sample's shape is unchanged.
FAST = {
    "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 20}},
    "search": {"strategy": "grid", "cv": 3, "scoring": "f1", "space": {"max_depth": [3, None]}},
}


def url(namespace: str, plural: str, name: str = "") -> str:
    return f"{GROUP}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def apply(rest: Rest, namespace: str, kind: str, **spec_changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SAMPLES[kind])
    doc["metadata"]["namespace"] = namespace
    doc["spec"].update(spec_changes)
    return rest.create(url(namespace, kind.lower() + "s"), doc)


def status(rest: Rest, namespace: str, plural: str, name: str) -> dict[str, Any]:
    return rest.get(url(namespace, plural, name)).get("status", {})


def condition(obj_status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in obj_status.get("conditions", []) if c["type"] == type_), {})


def phase_is(
    rest: Rest, namespace: str, plural: str, name: str, *phases: str
) -> dict[str, Any] | None:
    current = status(rest, namespace, plural, name)
    return current if current.get("phase") in phases else None


def jobs(rest: Rest, namespace: str) -> list[str]:
    return sorted(
        j["metadata"]["name"]
        for j in rest.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
    )


@pytest.fixture
def runner(node: StandInNode, namespace: str):  # type: ignore[no-untyped-def]
    """Runs every workload pod of the test namespace for real."""
    return node.auto(namespace, "app.kubernetes.io/managed-by=modelwerk", mode="run")


def test_iris_chain_registers_a_verified_model_version(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode, runner: Any
) -> None:
    apply(admin_rest, namespace, "Dataset")
    apply(admin_rest, namespace, "TrainingJob", **FAST)

    ds = wait_until(
        lambda: phase_is(admin_rest, namespace, "datasets", "iris", "Ready", "Invalid", "Failed"),
        timeout=120,
        what="Dataset iris to be judged",
    )
    assert ds["phase"] == "Ready", ds
    assert ds["version"].startswith("sha256:") and ds["rows"] == 150
    assert condition(ds, "Ready")["status"] == "True"

    tj = wait_until(
        lambda: phase_is(
            admin_rest, namespace, "trainingjobs", "iris-rf", "Succeeded", "Failed", "Rejected"
        ),
        timeout=300,
        what="TrainingJob iris-rf to finish",
    )
    assert tj["phase"] == "Succeeded", tj
    assert tj["modelVersion"] == "iris-classifier-v1"
    assert tj["datasetVersion"] == ds["version"]
    assert tj["metrics"]["accuracy"] >= 0.9
    assert {g["metric"] for g in tj["gateResults"]} == {"accuracy", "f1"}
    assert "max_depth" in tj["bestParams"]

    mv = admin_rest.get(url(namespace, "modelversions", "iris-classifier-v1"))
    assert "ownerReferences" not in mv["metadata"]
    spec = mv["spec"]
    assert spec["lineage"]["datasetVersion"] == ds["version"]
    assert spec["lineage"]["trainingJob"] == "iris-rf"
    assert spec["metrics"] == tj["metrics"]
    assert [t["name"] for t in spec["signature"]["inputs"]][:1] == ["sepal length (cm)"]
    verified = wait_until(
        lambda: phase_is(
            admin_rest, namespace, "modelversions", "iris-classifier-v1", "Ready", "Failed"
        ),
        timeout=120,
        what="ModelVersion to be verified",
    )
    assert verified["phase"] == "Ready", verified
    assert verified["verifiedSha256"] == spec["artifact"]["sha256"]
    # The artifacts are on the namespace's artifact volume, nowhere else on the host.
    store = node.claims_dir / namespace / "modelwerk-artifacts"
    sha = spec["artifact"]["sha256"]
    assert (store / "models" / "iris-classifier" / sha / "model.joblib").is_file()
    # The compilation was verified on every snapshot row and recorded either way; a verified
    # model.onnx is published next to model.joblib, an unverified one is never written.
    compiled = spec["compiled"]
    onnx_file = store / "models" / "iris-classifier" / sha / "model.onnx"
    assert compiled["rows"] == 150 and compiled["converter"].startswith("skl2onnx ")
    if compiled["verified"]:
        assert compiled["labelAgreement"] == 1.0
        assert compiled["uri"].endswith(f"/models/iris-classifier/{sha}/model.onnx")
        assert hashlib.sha256(onnx_file.read_bytes()).hexdigest() == compiled["sha256"]
    else:
        assert compiled["reason"].startswith("Disagrees: ") and not onnx_file.exists()
    # Immutable like the rest of the spec (CEL transition rule).
    with pytest.raises(RestError, match=r"spec.compiled is immutable"):
        admin_rest.merge_patch(
            url(namespace, "modelversions", "iris-classifier-v1"),
            {"spec": {"compiled": {"verified": False, "reason": "edited"}}},
        )
    assert (store / "datasets" / "iris" / ds["version"].removeprefix("sha256:")).is_dir()
    assert not Path("/var/run/modelwerk").exists()
    # Exactly one Job per run: validation, training, verification.
    assert len(jobs(admin_rest, namespace)) == 3
    # Everything above ran under the operator's own RBAC: nothing was refused to it.
    assert 'modelwerk-operator" cannot' not in operator.output


def test_a_gate_above_the_achievable_score_rejects_without_registering(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, runner: Any
) -> None:
    apply(admin_rest, namespace, "Dataset")
    apply(
        admin_rest,
        namespace,
        "TrainingJob",
        **FAST,
        gates=[{"metric": "accuracy", "operator": ">", "threshold": 0.9999}],
    )
    tj = wait_until(
        lambda: phase_is(
            admin_rest, namespace, "trainingjobs", "iris-rf", "Succeeded", "Failed", "Rejected"
        ),
        timeout=300,
        what="TrainingJob iris-rf to finish",
    )
    assert tj["phase"] == "Rejected", tj
    assert "is not > 0.9999" in tj["message"]
    assert condition(tj, "GatesPassed")["status"] == "False"
    assert admin_rest.get(url(namespace, "modelversions"))["items"] == []


def test_a_dataset_breaking_its_contract_is_invalid_and_training_waits(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, runner: Any
) -> None:
    contract = copy.deepcopy(SAMPLES["Dataset"]["spec"]["schema"])
    contract["columns"][2]["max"] = 5.0  # petal length reaches 6.9 cm
    contract["minRows"] = 1000
    apply(admin_rest, namespace, "Dataset", schema=contract)
    apply(admin_rest, namespace, "TrainingJob", **FAST)
    ds = wait_until(
        lambda: phase_is(admin_rest, namespace, "datasets", "iris", "Invalid", "Ready", "Failed"),
        timeout=120,
        what="Dataset iris to be judged",
    )
    assert ds["phase"] == "Invalid", ds
    rules = {(v.get("column"), v["rule"]) for v in ds["violations"]}
    assert ("petal length (cm)", "max") in rules and any(rule == "minRows" for _, rule in rules)
    tj = wait_until(
        lambda: (
            (s := status(admin_rest, namespace, "trainingjobs", "iris-rf"))
            and condition(s, "DatasetReady").get("reason") == "DatasetInvalid"
            and s
        ),
        timeout=60,
        what="TrainingJob to report the invalid dataset",
    )
    assert tj["phase"] == "Pending"
    assert "Dataset iris" in condition(tj, "Ready")["message"]
    assert [j for j in jobs(admin_rest, namespace) if "train" in j] == []


def test_a_missing_dataset_is_reported(
    admin_rest: Rest, namespace: str, operator: InProcessOperator
) -> None:
    apply(admin_rest, namespace, "TrainingJob", datasetRef={"name": "nope"})
    tj = wait_until(
        lambda: (
            (s := status(admin_rest, namespace, "trainingjobs", "iris-rf"))
            and s.get("phase") == "Pending"
            and s
        ),
        timeout=30,
        what="a Pending TrainingJob",
    )
    assert condition(tj, "DatasetReady")["reason"] == "DatasetNotFound"
    assert "Dataset nope does not exist" in tj["message"]


def test_an_unreadable_source_fails_the_dataset_with_the_cause(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, runner: Any
) -> None:
    apply(
        admin_rest,
        namespace,
        "Dataset",
        source={"uri": "pvc://modelwerk-artifacts/missing/iris.csv"},
        schema=None,
    )
    ds = wait_until(
        lambda: phase_is(admin_rest, namespace, "datasets", "iris", "Failed", "Invalid", "Ready"),
        timeout=120,
        what="Dataset iris to be judged",
    )
    assert ds["phase"] == "Failed", ds
    assert "missing/iris.csv" in ds["message"]
    # No retry loop: the one Job stays the only one.
    assert len(jobs(admin_rest, namespace)) == 1


def test_malformed_params_fail_the_run_with_a_clear_error(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, runner: Any
) -> None:
    apply(admin_rest, namespace, "Dataset")
    apply(
        admin_rest,
        namespace,
        "TrainingJob",
        estimator={"name": "RandomForestClassifier", "params": {"n_estimatorz": 10}},
        search=None,
    )
    tj = wait_until(
        lambda: phase_is(
            admin_rest, namespace, "trainingjobs", "iris-rf", "Failed", "Succeeded", "Rejected"
        ),
        timeout=300,
        what="TrainingJob iris-rf to finish",
    )
    assert tj["phase"] == "Failed", tj
    assert condition(tj, "Ready")["reason"] == "InvalidParams"
    assert "n_estimatorz" in tj["message"]


def _reconciles(kind: str) -> float:
    # The in-process operator shares the test process's registry.
    return (
        REGISTRY.get_sample_value("modelwerk_reconcile_total", {"kind": kind, "result": "success"})
        or 0.0
    )


def _restart(
    operator: InProcessOperator,
    kinds: tuple[str, ...] = ("Dataset", "TrainingJob"),
    *,
    while_down: Callable[[], object] = lambda: None,
) -> None:
    """Stop the operator, let ``while_down`` change the cluster, start it again and wait until
    it has reconciled each of ``kinds`` at least once (a restart re-lists everything)."""
    operator.stop()
    while_down()
    before = {kind: _reconciles(kind) for kind in kinds}
    operator.start()
    for kind, count in before.items():
        wait_until(
            lambda kind=kind, count=count: _reconciles(kind) > count,  # type: ignore[misc]
            timeout=60,
            what=f"a {kind} reconcile after the restart",
        )


def _component_jobs(rest: Rest, namespace: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for job in rest.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]:
        component = job["metadata"]["labels"]["app.kubernetes.io/component"]
        found.setdefault(component, []).append(job["metadata"]["name"])
    return found


def _pod_of(node: StandInNode, namespace: str, component: str) -> str:
    pod = node.wait_for_pod(namespace, f"app.kubernetes.io/component={component}")
    name: str = pod["metadata"]["name"]
    return name


def _job_complete(rest: Rest, namespace: str, component: str) -> bool:
    (job,) = rest.get(
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        labelSelector=f"app.kubernetes.io/component={component}",
    )["items"]
    return any(
        c["type"] == "Complete" and c["status"] == "True"
        for c in job.get("status", {}).get("conditions", [])
    )


def test_restarts_at_every_phase_converge_with_one_job_per_run_and_one_model_version(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode
) -> None:
    """The operator restarts (a new kopf run re-lists everything, as a restarted pod does) at
    each phase of validation and training; the stand-in runs each pod only when the test says."""
    apply(admin_rest, namespace, "Dataset")
    apply(admin_rest, namespace, "TrainingJob", **FAST)
    seen: list[tuple[str, str | None, str | None]] = []

    def phases(point: str) -> None:
        ds = status(admin_rest, namespace, "datasets", "iris")
        tj = status(admin_rest, namespace, "trainingjobs", "iris-rf")
        seen.append((point, ds.get("phase"), tj.get("phase")))
        # Never a second Job for a run, whatever the restart interrupted.
        assert all(len(v) == 1 for v in _component_jobs(admin_rest, namespace).values()), point

    # 1. Validation Job created, its pod not started; training waits for the Dataset.
    validation_pod = _pod_of(node, namespace, "validation")
    wait_until(
        lambda: phase_is(admin_rest, namespace, "trainingjobs", "iris-rf", "Pending"),
        what="the TrainingJob to wait for its Dataset",
    )
    _restart(operator)
    phases("validation pod pending")
    # 2. The validation pod is running.
    node.mark_running(namespace, validation_pod)
    _restart(operator)
    phases("validation pod running")

    # 3. The validation Job finishes while the operator is down.
    def validate() -> None:
        assert node.run(namespace, validation_pod).exit_code == 0
        wait_until(lambda: _job_complete(admin_rest, namespace, "validation"), what="validation")

    _restart(operator, while_down=validate)
    ds = wait_until(
        lambda: phase_is(admin_rest, namespace, "datasets", "iris", "Ready", "Invalid", "Failed"),
        timeout=60,
        what="Dataset iris to be judged",
    )
    assert ds["phase"] == "Ready", ds
    # 4. Dataset Ready; the training Job created, its pod not started.
    training_pod = _pod_of(node, namespace, "training")
    _restart(operator)
    phases("dataset ready, training pod pending")
    # 5. The training pod is running.
    node.mark_running(namespace, training_pod)
    _restart(operator)
    phases("training pod running")

    # 6. The training Job finishes while the operator is down.
    def train() -> None:
        assert node.run(namespace, training_pod).exit_code == 0
        wait_until(lambda: _job_complete(admin_rest, namespace, "training"), what="training")

    _restart(operator, while_down=train)
    tj = wait_until(
        lambda: phase_is(
            admin_rest, namespace, "trainingjobs", "iris-rf", "Succeeded", "Failed", "Rejected"
        ),
        timeout=60,
        what="TrainingJob iris-rf to finish",
    )
    assert tj["phase"] == "Succeeded", tj
    registered = admin_rest.get(url(namespace, "modelversions", "iris-classifier-v1"))
    # 7. After registration.
    chain = ("Dataset", "TrainingJob", "ModelVersion")
    _restart(operator, chain)
    phases("registered")

    # 8. A crash between creating the ModelVersion and recording it: the TrainingJob's status
    #    still says Registering. The run label on the ModelVersion finds it again.
    def lose_the_status_write() -> None:
        admin_rest.merge_patch(
            url(namespace, "trainingjobs", "iris-rf") + "/status",
            {"status": {"phase": "Running", "modelVersion": None, "message": "Registering"}},
        )

    _restart(operator, chain, while_down=lose_the_status_write)
    phases("model version created, status not written")
    with node.auto(namespace, "app.kubernetes.io/component=verification", mode="run"):
        mv = wait_until(
            lambda: phase_is(
                admin_rest, namespace, "modelversions", "iris-classifier-v1", "Ready", "Failed"
            ),
            timeout=120,
            what="ModelVersion to be verified",
        )
    assert mv["phase"] == "Ready", mv
    final = wait_until(
        lambda: phase_is(admin_rest, namespace, "trainingjobs", "iris-rf", "Succeeded"),
        what="the TrainingJob to record its ModelVersion again",
    )
    assert final["modelVersion"] == "iris-classifier-v1"
    assert (final["jobName"], final["datasetVersion"], final["metrics"]) == (
        tj["jobName"],
        ds["version"],
        tj["metrics"],
    )
    # The same end state as without restarts: one Job per run, one ModelVersion, unchanged.
    assert {k: len(v) for k, v in _component_jobs(admin_rest, namespace).items()} == {
        "validation": 1,
        "training": 1,
        "verification": 1,
    }
    versions = admin_rest.get(url(namespace, "modelversions"))["items"]
    assert [m["metadata"]["name"] for m in versions] == ["iris-classifier-v1"]
    assert versions[0]["spec"] == registered["spec"]
    assert versions[0]["metadata"]["uid"] == registered["metadata"]["uid"]
    assert ds == {
        **status(admin_rest, namespace, "datasets", "iris"),
        "conditions": ds["conditions"],
    }
    assert [p for p, _, _ in seen] == [
        "validation pod pending",
        "validation pod running",
        "dataset ready, training pod pending",
        "training pod running",
        "registered",
        "model version created, status not written",
    ]
    assert len(operator.runs) == 9
    assert 'modelwerk-operator" cannot' not in operator.output


def _iris_csv() -> str:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    return frame.to_csv(index=False)


def test_a_csv_on_a_claim_is_validated_through_the_mounted_volume(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode, runner: Any
) -> None:
    claim_dir = node.claims_dir / namespace / "data"
    claim_dir.mkdir(parents=True)
    (claim_dir / "iris.csv").write_text(_iris_csv())
    apply(admin_rest, namespace, "Dataset", source={"uri": "pvc://data/iris.csv"})
    ds = wait_until(
        lambda: phase_is(admin_rest, namespace, "datasets", "iris", "Ready", "Invalid", "Failed"),
        timeout=120,
        what="Dataset iris to be judged",
    )
    assert ds["phase"] == "Ready", ds
    assert ds["rows"] == 150
    job = admin_rest.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{ds['validationJob']}")
    mounts = {
        m["mountPath"]: m.get("readOnly", False)
        for m in job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert mounts["/var/run/modelwerk/pvc/data"] is True  # the data is read, never written
    assert mounts["/var/run/modelwerk/pvc/modelwerk-artifacts"] is False


def test_a_csv_over_http_gets_the_same_version_as_the_same_csv_on_a_claim(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, node: StandInNode, runner: Any
) -> None:
    import functools
    import http.server
    import threading

    served = node.claims_dir / namespace / "web"
    served.mkdir(parents=True)
    (served / "iris.csv").write_text(_iris_csv())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        apply(admin_rest, namespace, "Dataset", source={"uri": f"http://127.0.0.1:{port}/iris.csv"})
        doc = copy.deepcopy(SAMPLES["Dataset"])
        doc["metadata"] = {"name": "iris-on-claim", "namespace": namespace}
        doc["spec"]["source"] = {"uri": "pvc://web/iris.csv"}
        admin_rest.create(url(namespace, "datasets"), doc)
        over_http = wait_until(
            lambda: phase_is(
                admin_rest, namespace, "datasets", "iris", "Ready", "Invalid", "Failed"
            ),
            timeout=120,
            what="the http Dataset to be judged",
        )
        on_claim = wait_until(
            lambda: phase_is(
                admin_rest, namespace, "datasets", "iris-on-claim", "Ready", "Invalid", "Failed"
            ),
            timeout=120,
            what="the claim Dataset to be judged",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert over_http["phase"] == on_claim["phase"] == "Ready", (over_http, on_claim)
    # Content addressing: the same bytes from two places are one version.
    assert over_http["version"] == on_claim["version"]


def test_a_csv_in_s3_is_read_with_credentials_from_a_secret(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, runner: Any, s3: S3Server
) -> None:
    """The source's own keys (the Secret named by the Dataset) reach the validator prefixed,
    so they cannot be mistaken for the artifact store's; here the store is the claim."""
    bucket = f"datasets-{namespace[-6:]}"
    s3.create_bucket(bucket)
    s3.client().put_object(Bucket=bucket, Key="iris/iris.csv", Body=_iris_csv().encode())
    admin_rest.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "metadata": {"name": "s3-credentials"},
            "stringData": {
                **s3.credentials,
                "AWS_DEFAULT_REGION": s3.region,
                "AWS_ENDPOINT_URL": s3.endpoint,
            },
        },
    )
    apply(
        admin_rest,
        namespace,
        "Dataset",
        source={"uri": f"s3://{bucket}/iris/iris.csv", "secretRef": {"name": "s3-credentials"}},
    )
    ds = wait_until(
        lambda: phase_is(admin_rest, namespace, "datasets", "iris", "Ready", "Invalid", "Failed"),
        timeout=120,
        what="the s3 Dataset to be judged",
    )
    assert ds["phase"] == "Ready", ds
    assert ds["rows"] == 150
    assert ds["snapshotUri"].startswith("pvc://modelwerk-artifacts/")
