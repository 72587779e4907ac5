"""The iris chain from manifests/samples, on a real cluster, with real pods doing the work.

The tests run in file order and build on each other, like a user following the README:
Dataset Ready -> TrainingJob Succeeded -> ModelVersion Ready -> Deployment Available ->
inference through the Service -> a new version by canary (split measured through the stable
Service) -> a canary whose analysis fails is rolled back -> with a Prometheus scraping the
cluster as manifests/components/monitoring says, an analysis reading it promotes a sound canary,
rolls back one that answers server errors, and an alert fires -> a canary fed drifted traffic is
rolled back -> drift with no new data starts no retraining. Waits on the modelwerk kinds are ``kubectl wait
--for=condition=Ready`` (and ``Available``), as a pipeline would write them. A failed step
fails the ones after it fast (their prerequisites are checked first).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e import pods, traffic
from tests.e2e.chain import (
    DEPLOYMENT,
    JOB_TIMEOUT,
    MODEL,
    SERVE_TIMEOUT,
    sample,
    stable_url,
    status,
    train,
    wait_deployment,
    wait_only,
    wait_registered,
    wait_under_load,
)
from tests.e2e.kubectl import JSON, Kubectl, wait_for
from tests.e2e.prometheus import Prometheus

UNSTABLE_MODEL = Path(__file__).resolve().parents[1] / "cluster" / "unstable_model.py"

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
    kubectl.wait("dataset/iris", "Ready", namespace, timeout=JOB_TIMEOUT)
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
    mwd = f"deployments.modelwerk.dev/{DEPLOYMENT}"
    kubectl.wait(mwd, "Available", namespace, timeout=SERVE_TIMEOUT)
    kubectl.wait(mwd, "Ready", namespace, timeout=SERVE_TIMEOUT)
    # Its apps/v1 Deployments too: what the operator created is Available as Kubernetes says.
    for child in kubectl.list(
        "deployments.apps", namespace, f"modelwerk.dev/deployment={DEPLOYMENT}"
    ):
        if child["spec"].get("replicas"):
            kubectl.wait(
                f"deployment.apps/{child['metadata']['name']}",
                "Available",
                namespace,
                timeout=SERVE_TIMEOUT,
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
    state["v2"] = state["stable"] = v2


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
    aborted = wait_under_load(
        kubectl, namespace, "the failed analysis to abort the rollout",
        lambda s: s.get("phase") == "Aborted",
    )  # fmt: skip
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


def pin(
    kubectl: Kubectl, namespace: str, version: str, steps: list[JSON], analysis: JSON | None
) -> None:
    kubectl.merge_patch(
        "deployments.modelwerk.dev",
        DEPLOYMENT,
        namespace,
        {
            "spec": {
                "modelVersion": version,
                "strategy": {"canary": {"steps": steps}},
                "analysis": analysis,
            }
        },
    )


def settle(kubectl: Kubectl, namespace: str, version: str) -> None:
    """Pin ``version`` without analysis (a GitOps revert) and wait until it alone serves."""
    pin(kubectl, namespace, version, [{"setWeight": 50}, {"pause": {}}], None)
    wait_deployment(
        kubectl, namespace, f"the Deployment to be Healthy on {version}",
        lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == version,
    )  # fmt: skip
    wait_only(kubectl, namespace, version, f"only {version} pods to serve")


def publish_unstable(kubectl: Kubectl, namespace: str, version: str) -> str:
    """Register a ModelVersion whose artifact is ``version``'s model behind a step that raises
    OverflowError on a fifth of iris' rows (tests/cluster/unstable_model.py), written into the
    namespace's artifact volume by a pod of the runtime image; returns its name."""
    mv = kubectl.get("modelversion", version, namespace)
    card = mv["spec"]["artifact"]["uri"].rsplit("/", 1)[0] + "/model-card.json"
    pod = pods.start(
        kubectl, namespace, "publish", UNSTABLE_MODEL.read_text(), card, claim="modelwerk-artifacts"
    )
    artifact = json.loads(pods.output(kubectl, namespace, pod).strip().splitlines()[-1])
    versions = [v["spec"]["version"] for v in kubectl.list("modelversions", namespace)]
    number = max(versions) + 1
    name = f"{MODEL}-v{number}"
    spec = {**mv["spec"], "version": number, "stage": "None"}
    spec["artifact"] = {**spec["artifact"], **artifact}
    spec.pop("compiled", None)  # the original's ONNX model is not this artifact's
    kubectl.apply(
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": name},
            "spec": spec,
        },
        namespace,
    )
    kubectl.wait(f"modelversion/{name}", "Ready", namespace, timeout=JOB_TIMEOUT)
    return name


def test_an_analysis_reading_prometheus_promotes_a_sound_canary_and_rolls_back_a_failing_one(
    kubectl: Kubectl, namespace: str, prometheus: Prometheus | None
) -> None:
    needs("v3")
    if prometheus is None:
        pytest.skip("no Prometheus on this machine for this cluster (see the session's output)")
    # The monitors' relabelling, as Prometheus applied it: both operator replicas are up under
    # the ServiceMonitor's job, the serving pods' series carry namespace, pod, deployment, track.
    prometheus.wait_for_series(  # the ServiceMonitor scrapes every 30 s
        'count(up{job="modelwerk-operator"} == 1) == 2', "both operator replicas scraped"
    )
    up = prometheus.query('up{job="modelwerk-operator"}')
    assert {s["metric"]["namespace"] for s in up} == {"modelwerk-system"}, up
    assert {s["metric"]["service"] for s in up} == {"modelwerk-operator-metrics"}, up
    served = prometheus.wait_for_series(
        f'modelwerk_model_requests_total{{job="modelwerk-serving",namespace="{namespace}",deployment="{DEPLOYMENT}"}}',
        "the serving pods scraped",
    )
    assert {s["metric"]["track"] for s in served} <= {"blue", "green"}, served
    assert all(s["metric"]["pod"].startswith(f"{DEPLOYMENT}-") for s in served), served

    analysis = {
        "prometheusUrl": prometheus.url,  # the node's address: the operator pod reaches it
        "intervalSeconds": 20,  # the PodMonitor scrapes every 15 s
        "count": 3,
        "failureLimit": 1,  # one round may fail (a slow query on a busy machine), not two
        "minRequests": 10,
        "checks": [{"metric": "errorRate", "max": 0.05}],
    }
    steps = [{"setWeight": 50}, {"analysis": {}}]
    v3 = state["v3"]  # aborted earlier for its latency; a new spec generation may retry it
    pin(kubectl, namespace, v3, steps, analysis)
    promoted = wait_under_load(
        kubectl, namespace, "the Prometheus analysis to promote v3",
        lambda s: s.get("stableVersion") == v3 and s.get("phase") == "Healthy",
    )  # fmt: skip
    run = promoted["status"]["analysisRuns"][-1]
    print(f"promoted by Prometheus: {run['measurements']}")
    assert run["phase"] == "Successful", run
    state["stable"] = v3

    unstable = publish_unstable(kubectl, namespace, v3)
    state["unstable"] = unstable
    pin(kubectl, namespace, unstable, steps, analysis)
    aborted = wait_under_load(
        kubectl, namespace, "the Prometheus analysis to abort the unstable canary",
        lambda s: s.get("phase") == "Aborted",
    )  # fmt: skip
    st = aborted["status"]
    assert st["stableVersion"] == v3 and st.get("abortedVersion") == unstable, st
    run = st["analysisRuns"][-1]
    failed = [m for m in run["measurements"] if m["phase"] == "Failed"]
    print(f"aborted by Prometheus: {run['measurements']}")
    assert failed and failed[-1]["metric"] == "errorRate" and failed[-1]["value"] > 0.05, run
    # Prometheus saw the 500s under the canary's labels, and the rule for aborted rollouts fires.
    errors = prometheus.query(
        f'sum(modelwerk_model_requests_total{{namespace="{namespace}",version="{unstable}",code="500"}})'
    )
    assert errors and float(errors[0]["value"][1]) > 0, errors

    def firing() -> JSON | None:
        return next(
            (
                a for a in prometheus.alerts()
                if a["labels"].get("alertname") == "ModelwerkRolloutAborted"
                and a["labels"].get("namespace") == namespace and a["state"] == "firing"
            ),
            None,
        )  # fmt: skip

    alert = wait_for(firing, timeout=120, what="ModelwerkRolloutAborted to fire", interval=3)
    assert alert["labels"]["deployment"] == DEPLOYMENT, alert
    settle(kubectl, namespace, v3)
    state["prometheus"] = "done"


def test_a_canary_fed_drifted_traffic_is_rolled_back(kubectl: Kubectl, namespace: str) -> None:
    needs("v3", "stable")
    stable = state["stable"]
    candidate = state["v2"] if stable == state["v3"] else state["v3"]
    # The canary's own Service gets every feature shifted by +4 cm; the stable pods see
    # nothing of it (the closed loop's drift monitoring reads those).
    pin(
        kubectl, namespace, candidate, [{"setWeight": 50}, {"analysis": {}}],
        {
            "intervalSeconds": 5, "count": 4, "failureLimit": 0, "inconclusiveLimit": 10,
            "minRequests": 5, "checks": [{"metric": "drift", "max": 1.0}],
        },
    )  # fmt: skip
    wait_deployment(
        kubectl, namespace, "the canary to take traffic",
        lambda s: s.get("canaryVersion") == candidate and (s.get("actualWeight") or 0) > 0,
    )  # fmt: skip
    aborted = wait_under_load(
        kubectl, namespace, "the drift analysis to abort the canary",
        lambda s: s.get("phase") == "Aborted",
        url=traffic.service_url(kubectl, namespace, f"{DEPLOYMENT}-canary", MODEL), shift=4.0,
    )  # fmt: skip
    st = aborted["status"]
    assert st["stableVersion"] == stable and st.get("abortedVersion") == candidate, st
    run = st["analysisRuns"][-1]
    drift = [m for m in run["measurements"] if m["metric"] == "drift" and m["phase"] == "Failed"]
    print(f"aborted for drift: {run['measurements']}")
    assert drift and drift[-1]["value"] > 1.0, run
    settle(kubectl, namespace, stable)
    state["drift-rollback"] = candidate


def test_drift_without_new_data_starts_no_hollow_retraining(
    kubectl: Kubectl, namespace: str
) -> None:
    needs("drift-rollback")
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

    # The drift is real but there is no data the served model was not trained on: no hollow
    # run starts; the Deployment says it waits for new labelled data (the run on a new Dataset
    # version is tests/integration/test_closed_loop.py).
    waiting = wait_deployment(
        kubectl, namespace, "Retraining=False WaitingForNewData",
        lambda s: any(c["type"] == "Retraining" and c["reason"] == "WaitingForNewData" for c in s.get("conditions", [])),
    )  # fmt: skip
    print(f"retraining: {waiting['status'].get('retraining')}")
    jobs = kubectl.list("trainingjobs", namespace, f"modelwerk.dev/retraining-for={DEPLOYMENT}")
    assert [j["metadata"]["name"] for j in jobs if j["metadata"]["name"] not in before] == []
    assert (
        status(kubectl, "deployments.modelwerk.dev", DEPLOYMENT, namespace)["stableVersion"]
        == state["stable"]
    )
