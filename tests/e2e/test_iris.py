"""The iris chain from manifests/samples, on a real cluster, with real pods doing the work.

The tests run in file order and build on each other, like a user following the README:
Dataset Ready -> TrainingJob Succeeded -> ModelVersion Ready -> Deployment Available ->
inference through the Service -> a new version by canary (split measured through the stable
Service) -> a canary whose analysis fails is rolled back -> drift starts a retraining.
A failed step fails the ones after it fast (their prerequisites are checked first).
"""

from __future__ import annotations

import pytest

from tests.e2e import traffic
from tests.e2e.chain import (
    DEPLOYMENT,
    JOB_TIMEOUT,
    MODEL,
    SERVE_TIMEOUT,
    deployment,
    sample,
    stable_url,
    status,
    train,
    wait_deployment,
    wait_only,
    wait_registered,
)
from tests.e2e.kubectl import JSON, Kubectl, condition, wait_for

# The chain's state, shared by the tests of this module in order.
state: dict[str, str] = {}


def needs(*keys: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        pytest.fail(f"an earlier step did not complete: {missing}")


def test_the_operator_runs_from_its_image_under_its_own_service_account(
    kubectl: Kubectl, operator: JSON
) -> None:
    spec = operator["spec"]
    assert spec["serviceAccountName"] == "modelwerk-operator"
    assert spec["containers"][0]["image"].startswith("modelwerk/operator:")
    # The operator's identity can do what it needs and not more (e.g. no Secrets).
    sa = "system:serviceaccount:modelwerk-system:modelwerk-operator"
    assert kubectl.can_i("create", "jobs.batch", as_user=sa)
    assert not kubectl.can_i("list", "secrets", as_user=sa)


def test_dataset_is_validated_by_a_real_pod(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(sample("dataset"), namespace)
    wait_for(
        lambda: condition(kubectl.get("dataset", "iris", namespace), "Ready") == "True",
        timeout=JOB_TIMEOUT,
        what="Dataset iris to be Ready",
    )
    ds = status(kubectl, "dataset", "iris", namespace)
    assert ds.get("version"), ds
    # The validation ran as a pod of a Job, not in the operator: it left a finished pod.
    finished = [
        p
        for p in kubectl.list("pods", namespace)
        if p["status"].get("phase") == "Succeeded"
        and p["metadata"].get("labels", {}).get("job-name")
    ]
    assert finished, "no validation pod ran to completion"
    state["dataset"] = "iris"


def test_training_job_succeeds_and_registers_a_ready_model_version(
    kubectl: Kubectl, namespace: str
) -> None:
    needs("dataset")
    kubectl.apply(sample("trainingjob"), namespace)
    version = wait_registered(kubectl, namespace, "iris-rf")
    tj = status(kubectl, "trainingjob", "iris-rf", namespace)
    assert tj["metrics"]["accuracy"] >= 0.9, tj["metrics"]
    assert all(g["passed"] for g in tj["gateResults"]), tj["gateResults"]
    mv = kubectl.get("modelversion", version, namespace)
    assert mv["spec"]["model"] == MODEL
    assert mv["spec"]["artifact"]["sha256"]
    state["v1"] = version


def test_deployment_becomes_available_and_serves_real_predictions(
    kubectl: Kubectl, namespace: str
) -> None:
    needs("v1")
    dep = sample("deployment")
    # A ClusterIP Service (the NodePort 30080 of the sample belongs to `make demo`), and drift
    # measured every 5 s. Each pod scores its own window and reports a score only once the
    # window holds enough rows for noise to stay under the threshold; iris' profile has only
    # 150 rows, itself noisy, so PSI 0.25 needs ~440 rows per pod and 0.2 ~1,500, more than
    # these tests send. At 1.0 the floor is ~90 rows, which the ~150 drifted rows per pod
    # below pass; they score above 4.
    dep["spec"]["service"] = {"type": "ClusterIP", "port": 80}
    dep["spec"]["monitoring"]["drift"].update(
        {"window": 200, "intervalSeconds": 5, "threshold": 1.0}
    )
    dep["spec"]["monitoring"]["retraining"]["minIntervalSeconds"] = 60
    kubectl.apply(dep, namespace)
    wait_for(
        lambda: condition(deployment(kubectl, namespace), "Available") == "True",
        timeout=SERVE_TIMEOUT,
        what="Deployment iris to be Available",
        interval=2,
    )
    assert (
        status(kubectl, "deployments.modelwerk.dev", DEPLOYMENT, namespace)["stableVersion"]
        == state["v1"]
    )

    result = traffic.send(kubectl, namespace, stable_url(kubectl, namespace), 60)
    assert result.errors == {}, result.errors
    assert result.versions == {state["v1"]: 60}
    # Real iris rows: the model must predict all three classes, mostly right.
    assert set(result.predictions) == {"0", "1", "2"}, result.predictions
    state["serving"] = state["v1"]


def test_canary_splits_traffic_through_the_stable_service_then_promotes(
    kubectl: Kubectl, namespace: str
) -> None:
    needs("serving")
    v2 = train(
        kubectl,
        namespace,
        "iris-rf-2",
        estimator={"name": "RandomForestClassifier", "params": {"n_estimators": 50}},
    )
    # Pin the versions from here on: versions a retraining registers must not roll out.
    kubectl.merge_patch(
        "deployments.modelwerk.dev",
        DEPLOYMENT,
        namespace,
        {
            "spec": {
                "modelSelector": None,
                "modelVersion": v2,
                "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
                "analysis": None,
            }
        },
    )
    wait_deployment(
        kubectl,
        namespace,
        "the canary to run at 50 % and pause",
        lambda s: (
            s.get("canaryVersion") == v2 and s.get("actualWeight") == 50 and s.get("pauseStartTime")
        ),
    )
    # Two replicas at 50 %: one pod per version behind the stable Service; kube-proxy picks
    # one at random for every new connection.
    result = traffic.send(kubectl, namespace, stable_url(kubectl, namespace), 200)
    assert result.errors == {}, result.errors
    assert set(result.versions) == {state["v1"], v2}, result.versions
    share = result.versions[v2] / result.total
    print(f"canary at setWeight 50: {result.versions} through the stable Service ({share:.0%} new)")
    # Binomial(200, 0.5): 0.3..0.7 is more than 5 standard deviations either side.
    assert 0.3 <= share <= 0.7, f"canary share {share:.2f} of {result.versions}"

    kubectl.run(
        "annotate", "deployments.modelwerk.dev", DEPLOYMENT, f"--namespace={namespace}",
        "--overwrite", "modelwerk.dev/command=promote@e2e-canary",
    )  # fmt: skip
    wait_deployment(
        kubectl,
        namespace,
        "v2 to be promoted",
        lambda s: (
            s.get("stableVersion") == v2
            and not s.get("canaryVersion")
            and s.get("phase") == "Healthy"
        ),
    )
    wait_only(kubectl, namespace, v2, "only v2 pods to serve")
    after = traffic.send(kubectl, namespace, stable_url(kubectl, namespace), 40)
    assert after.versions == {v2: 40}, after
    state["v2"] = v2


def test_a_canary_whose_analysis_fails_is_rolled_back(kubectl: Kubectl, namespace: str) -> None:
    needs("v2")
    v2 = state["v2"]
    v3 = train(
        kubectl,
        namespace,
        "iris-rf-3",
        estimator={"name": "RandomForestClassifier", "params": {"n_estimators": 20}},
    )
    # A latency bound no server can meet: the first measured round fails the analysis.
    kubectl.merge_patch(
        "deployments.modelwerk.dev",
        DEPLOYMENT,
        namespace,
        {
            "spec": {
                "modelVersion": v3,
                "strategy": {"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
                "analysis": {
                    "intervalSeconds": 5,
                    "count": 3,
                    "failureLimit": 0,
                    "minRequests": 5,
                    "checks": [{"metric": "latency", "quantile": 0.5, "max": 0.000001}],
                },
            }
        },
    )
    wait_deployment(
        kubectl, namespace, "the v3 canary to take traffic",
        lambda s: s.get("canaryVersion") == v3 and (s.get("actualWeight") or 0) > 0,
    )  # fmt: skip
    # The analysis measures the canary pods' own metrics: give it requests to measure.
    load = traffic.start(kubectl, namespace, stable_url(kubectl, namespace), 3000, pause=0.02)
    try:
        aborted = wait_deployment(
            kubectl, namespace, "the failed analysis to abort the rollout",
            lambda s: s.get("phase") == "Aborted",
        )  # fmt: skip
    finally:
        kubectl.delete("pod", load, namespace)
    st = aborted["status"]
    assert st["stableVersion"] == v2
    assert st.get("abortedVersion") == v3
    runs = st.get("analysisRuns") or []
    print(f"aborted: {st.get('message') or st.get('history', [{}])[0]}")
    assert any(r["phase"] == "Failed" for r in runs), runs
    assert (st.get("history") or [{}])[0].get("outcome") in ("Aborted", "RolledBack"), st.get(
        "history"
    )
    wait_only(kubectl, namespace, v2, "the v3 canary pods to be gone")
    result = traffic.send(kubectl, namespace, stable_url(kubectl, namespace), 40)
    assert result.versions == {v2: 40}, result

    # Rolling back in the spec too (what a GitOps revert does) settles the Deployment.
    kubectl.merge_patch(
        "deployments.modelwerk.dev", DEPLOYMENT, namespace,
        {"spec": {"modelVersion": v2, "analysis": None, "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}},
    )  # fmt: skip
    wait_deployment(
        kubectl, namespace, "the Deployment to be Healthy on v2 again",
        lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == v2,
    )  # fmt: skip
    state["v3"] = v3


def test_drift_in_live_traffic_triggers_retraining(kubectl: Kubectl, namespace: str) -> None:
    needs("v3")
    before = {tj["metadata"]["name"] for tj in kubectl.list("trainingjobs", namespace)}
    assert not [n for n in before if "retrain" in n], f"retraining before any drift: {before}"
    # Every feature shifted by +4 cm: far outside what the model was trained on.
    drifted = traffic.send(kubectl, namespace, stable_url(kubectl, namespace), 300, shift=4.0)
    assert drifted.errors == {}, drifted.errors
    dep = wait_deployment(
        kubectl, namespace, "DriftDetected",
        lambda s: any(c["type"] == "DriftDetected" and c["status"] == "True" for c in s.get("conditions", [])),
    )  # fmt: skip
    drift = dep["status"]["drift"]
    print(f"drift after shifted traffic: {drift}")
    assert drift["score"] > 1.0, drift

    def retraining() -> str | None:
        jobs = kubectl.list("trainingjobs", namespace, f"modelwerk.dev/retraining-for={DEPLOYMENT}")
        new = [j["metadata"]["name"] for j in jobs if j["metadata"]["name"] not in before]
        return new[0] if new else None

    job = wait_for(retraining, timeout=120, what="a retraining TrainingJob")
    retrained = wait_registered(kubectl, namespace, job)
    assert retrained not in (state["v1"], state["v2"], state["v3"])
    # The Deployment is pinned: the retrained version is registered, not rolled out.
    assert (
        status(kubectl, "deployments.modelwerk.dev", DEPLOYMENT, namespace)["stableVersion"]
        == state["v2"]
    )
