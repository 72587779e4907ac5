"""The operator's pods deleted at each phase of training and at each rollout step and pause.

Where the control-plane tier restarts an in-process operator at points it controls exactly, here
the operator runs as two pods of its image and is killed the way a cluster kills it: the leading
pod deleted (the standby takes the Lease over), every replica at once (a cold start that
lists everything again), or none left running while a training Job finishes. Real pods keep
working meanwhile, so a Job may finish or a pause run out while no operator is leading. After each kill the objects must reach the same end state as
without it, with one Job per run, one ModelVersion per training run, no child beyond the two
color slots and their Services, and no traffic on an aborted version.

A phase that a real pod gets through faster than the test can see it is recorded as missed
rather than failed; the long ones (a validation or training pod starting Python and
scikit-learn) are asserted to have been hit.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.e2e import failover, traffic
from tests.e2e.chain import (
    DEPLOYMENT,
    JOB_TIMEOUT,
    MODEL,
    sample,
    stable_url,
    status,
    wait_deployment,
    wait_only,
    wait_registered,
)
from tests.e2e.kubectl import JSON, Kubectl, wait_for

GATES = [{"metric": "accuracy", "operator": ">=", "threshold": 0.8}]
MODELWERK_DEPLOYMENT = "deployments.modelwerk.dev"

state: dict[str, str] = {}
kills: list[str] = []


def needs(*keys: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        pytest.fail(f"an earlier step did not complete: {missing}")


def kill_at(
    kubectl: Kubectl,
    point: str,
    observe: Callable[[], str | None],
    during: str,
    after: tuple[str, ...],
    kill: Callable[[Kubectl], str],
) -> bool:
    """Wait until ``observe()`` says ``during`` (then kill) or one of ``after`` (missed)."""
    seen = wait_for(
        lambda: (phase := observe()) in (during, *after) and phase,
        timeout=JOB_TIMEOUT,
        what=f"{point}: {during}",
        interval=0.5,
    )
    if seen != during:
        print(f"  {point}: missed ({seen} before the test saw {during})")
        return False
    kill(kubectl)
    kills.append(point)
    return True


def training_job(name: str, trees: int) -> JSON:
    """The sample TrainingJob, small and without a search: the kills, not the fit, matter here."""
    job = sample("trainingjob")
    job["metadata"]["name"] = name
    job["spec"].pop("search", None)
    job["spec"]["estimator"] = {"name": "RandomForestClassifier", "params": {"n_estimators": trees}}
    job["spec"]["gates"] = GATES
    return job


def finish_while_down(kubectl: Kubectl, namespace: str, component: str) -> str:
    """Stop every operator replica, let the ``component`` Job finish, start the operator again."""
    failover.down(kubectl)

    def finished() -> bool:
        selector = f"app.kubernetes.io/component={component}"
        (job,) = kubectl.list("jobs", namespace, selector)
        conditions = job.get("status", {}).get("conditions", [])
        return any(
            c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions
        )

    wait_for(finished, timeout=JOB_TIMEOUT, what=f"the {component} Job to finish unobserved")
    return failover.up(kubectl)


def jobs_per_component(kubectl: Kubectl, namespace: str) -> Counter[str]:
    return Counter(
        j["metadata"].get("labels", {}).get("app.kubernetes.io/component", "?")
        for j in kubectl.list("jobs", namespace, "app.kubernetes.io/managed-by=modelwerk")
    )


def send(kubectl: Kubectl, namespace: str, url: str, count: int) -> dict[str, int]:
    result = traffic.send(kubectl, namespace, url, count)
    assert result.errors == {}, result.errors
    return result.versions


def service_url(kubectl: Kubectl, namespace: str, name: str) -> str:
    return traffic.service_url(kubectl, namespace, name, MODEL)


def command(kubectl: Kubectl, namespace: str, verb: str) -> None:
    kubectl.run(
        "annotate", MODELWERK_DEPLOYMENT, DEPLOYMENT, f"--namespace={namespace}", "--overwrite",
        f"modelwerk.dev/command={verb}@{verb}-{time.monotonic_ns()}",
    )  # fmt: skip


def serves_only(kubectl: Kubectl, namespace: str, version: str) -> None:
    """Settled on ``version``: only its pods, all requests answered by it, no stray child."""
    wait_only(kubectl, namespace, version, f"only {version} pods to serve")
    assert send(kubectl, namespace, stable_url(kubectl, namespace), 30) == {version: 30}
    assert_children(kubectl, namespace)


def assert_children(kubectl: Kubectl, namespace: str) -> None:
    """Only the two color slots and the Services of the modelwerk Deployment, all owned by it."""
    owner = kubectl.get(MODELWERK_DEPLOYMENT, DEPLOYMENT, namespace)["metadata"]["uid"]
    selector = f"modelwerk.dev/owner-name={DEPLOYMENT},app.kubernetes.io/component=server"
    tracks = kubectl.list("deployments.apps", namespace, selector)
    services = kubectl.list("services", namespace, f"modelwerk.dev/owner-name={DEPLOYMENT}")
    names = {o["metadata"]["name"] for o in [*tracks, *services]}
    allowed = {f"{DEPLOYMENT}{s}" for s in ("", "-blue", "-green", "-preview", "-canary")}
    assert names <= allowed, f"children beyond the color slots: {sorted(names - allowed)}"
    for child in [*tracks, *services]:
        refs = child["metadata"].get("ownerReferences", [])
        assert [r["uid"] for r in refs if r.get("controller")] == [owner], child["metadata"]


def test_training_survives_the_operator_killed_at_each_phase(
    kubectl: Kubectl, namespace: str
) -> None:
    print(f"operator leader: {failover.leader(kubectl)}")
    kubectl.apply(sample("dataset"), namespace)
    kubectl.apply(training_job("iris-rf", 10), namespace)

    def dataset_phase() -> str | None:
        phase: str | None = status(kubectl, "dataset", "iris", namespace).get("phase")
        return phase

    def training_phase() -> str | None:
        st = status(kubectl, "trainingjob", "iris-rf", namespace)
        # Running with a Job means the training pod is at work.
        return "Training" if st.get("phase") == "Running" and st.get("jobName") else st.get("phase")

    def verification_phase() -> str | None:
        versions = kubectl.list("modelversions", namespace)
        if not versions:
            return None
        phase: str | None = versions[0].get("status", {}).get("phase")
        return phase

    hit = {
        "validating": kill_at(
            kubectl, "dataset validating", dataset_phase, "Validating", ("Ready", "Invalid", "Failed"),
            failover.kill_leader,
        ),
        # The training Job finishes while no operator runs at all.
        "training": kill_at(
            kubectl, "training pod running", training_phase, "Training", ("Succeeded", "Failed", "Rejected"),
            lambda k: finish_while_down(k, namespace, "training"),
        ),
        "verifying": kill_at(
            kubectl, "model version verifying", verification_phase, "Pending", ("Ready", "Failed"),
            failover.kill_all,
        ),
    }  # fmt: skip
    version = wait_registered(kubectl, namespace, "iris-rf")
    assert hit["validating"] and hit["training"], hit

    assert status(kubectl, "dataset", "iris", namespace)["phase"] == "Ready"
    tj = status(kubectl, "trainingjob", "iris-rf", namespace)
    assert tj["phase"] == "Succeeded" and tj["modelVersion"] == version, tj
    # One Job per run, whatever the kills interrupted; one ModelVersion for the one run.
    assert jobs_per_component(kubectl, namespace) == {
        "validation": 1,
        "training": 1,
        "verification": 1,
    }
    assert [m["metadata"]["name"] for m in kubectl.list("modelversions", namespace)] == [version]
    state["v1"] = version


def test_blue_green_survives_the_operator_killed_while_waiting_and_during_scale_down(
    kubectl: Kubectl, namespace: str
) -> None:
    needs("v1")
    v1 = state["v1"]
    dep = sample("deployment")
    dep["spec"] = {
        "modelVersion": v1,
        "replicas": 1,
        "service": {"type": "ClusterIP", "port": 80},
        "strategy": {"blueGreen": {"autoPromote": False, "scaleDownDelaySeconds": 20}},
    }
    kubectl.apply(dep, namespace)
    wait_deployment(
        kubectl, namespace, "v1 to serve",
        lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == v1,
    )  # fmt: skip
    kubectl.apply(training_job("iris-rf-2", 12), namespace)
    v2 = wait_registered(kubectl, namespace, "iris-rf-2")

    kubectl.merge_patch(MODELWERK_DEPLOYMENT, DEPLOYMENT, namespace, {"spec": {"modelVersion": v2}})
    wait_deployment(
        kubectl, namespace, "v2 Ready behind the preview Service, waiting for a promote",
        lambda s: s.get("phase") == "Paused" and s.get("canaryVersion") == v2,
    )  # fmt: skip
    failover.kill_leader(kubectl)
    kills.append("blue-green waiting for promotion")
    # The new leader keeps waiting: users still get v1, the preview Service v2.
    assert send(kubectl, namespace, stable_url(kubectl, namespace), 30) == {v1: 30}
    assert send(
        kubectl, namespace, service_url(kubectl, namespace, f"{DEPLOYMENT}-preview"), 10
    ) == {v2: 10}
    st = status(kubectl, MODELWERK_DEPLOYMENT, DEPLOYMENT, namespace)
    assert (st["phase"], st["stableVersion"], st["canaryVersion"]) == ("Paused", v1, v2), st

    command(kubectl, namespace, "promote")
    wait_deployment(
        kubectl, namespace, "the switch to v2, v1 kept warm",
        lambda s: s.get("stableVersion") == v2 and s.get("scaleDownTime"),
    )  # fmt: skip
    failover.kill_all(kubectl)
    kills.append("blue-green scale-down delay")
    wait_deployment(
        kubectl, namespace, "v1 scaled down after the delay",
        lambda s: s.get("phase") == "Healthy" and not s.get("scaleDownTime"),
    )  # fmt: skip
    serves_only(kubectl, namespace, v2)
    state["v2"] = v2


def test_a_canary_survives_the_operator_killed_at_its_weight_and_in_its_pause(
    kubectl: Kubectl, namespace: str
) -> None:
    needs("v1", "v2")
    v1, v2 = state["v1"], state["v2"]
    # Going back to v1, now cold, through a canary of two steps.
    kubectl.merge_patch(
        MODELWERK_DEPLOYMENT, DEPLOYMENT, namespace,
        {"spec": {"modelVersion": v1, "replicas": 2, "strategy": {"blueGreen": None, "canary": {
            "steps": [{"setWeight": 50}, {"pause": {"durationSeconds": 25}}]}}}},
    )  # fmt: skip
    wait_deployment(
        kubectl, namespace, "the canary at 50 %",
        lambda s: s.get("canaryVersion") == v1 and s.get("actualWeight") == 50,
    )  # fmt: skip
    failover.kill_leader(kubectl)
    kills.append("canary at setWeight 50")
    # The new leader keeps the split: one pod per version behind the stable Service.
    split = send(kubectl, namespace, stable_url(kubectl, namespace), 60)
    assert set(split) == {v1, v2}, split
    wait_deployment(
        kubectl, namespace, "the timed pause",
        lambda s: s.get("phase") == "Paused" and s.get("pauseStartTime"),
    )  # fmt: skip
    paused_at = status(kubectl, MODELWERK_DEPLOYMENT, DEPLOYMENT, namespace)["pauseStartTime"]
    failover.kill_all(kubectl)
    kills.append("canary in a timed pause")
    done = wait_deployment(
        kubectl, namespace, "the canary promoted after its pause",
        lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == v1,
    )  # fmt: skip
    # The pause ran on from when it started, not again from the restart.
    record = done["status"]["history"][0]
    assert record["version"] == v1 and record["outcome"] == "Promoted", record
    print(f"  pause started {paused_at}, promoted: {record}")
    serves_only(kubectl, namespace, v1)
    state["canary"] = v1


def test_an_analysis_failing_across_an_operator_restart_still_rolls_back(
    kubectl: Kubectl, namespace: str
) -> None:
    needs("canary")
    v1, v2 = state["v1"], state["v2"]
    kubectl.merge_patch(
        MODELWERK_DEPLOYMENT, DEPLOYMENT, namespace,
        {"spec": {
            "modelVersion": v2,
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
            # No server meets this bound: the second measured round aborts.
            "analysis": {"intervalSeconds": 5, "count": 4, "failureLimit": 1, "minRequests": 5,
                         "checks": [{"metric": "latency", "quantile": 0.5, "max": 0.000001}]},
        }},
    )  # fmt: skip
    wait_deployment(
        kubectl, namespace, "the v2 canary to take traffic",
        lambda s: s.get("canaryVersion") == v2 and (s.get("actualWeight") or 0) > 0,
    )  # fmt: skip
    load = traffic.start(kubectl, namespace, stable_url(kubectl, namespace), 3000, pause=0.02)
    try:

        def analysing() -> str | None:
            st = status(kubectl, MODELWERK_DEPLOYMENT, DEPLOYMENT, namespace)
            if st.get("phase") == "Aborted":
                return "Aborted"
            runs: list[JSON] = st.get("analysisRuns") or []
            measured = any(r["phase"] == "Running" and r.get("measurements") for r in runs)
            return "Analysing" if measured else None

        kill_at(kubectl, "canary analysis", analysing, "Analysing", ("Aborted",), failover.kill_all)
        aborted = wait_deployment(
            kubectl, namespace, "the failed analysis to abort the rollout",
            lambda s: s.get("phase") == "Aborted",
        )  # fmt: skip
    finally:
        kubectl.delete("pod", load, namespace)
    st = aborted["status"]
    assert (st["stableVersion"], st.get("abortedVersion")) == (v1, v2), st
    wait_only(kubectl, namespace, v1, "the aborted v2 pods to be gone")
    # A restart right after the abort must not bring the aborted version back.
    failover.kill_leader(kubectl)
    kills.append("after the abort")
    assert send(kubectl, namespace, stable_url(kubectl, namespace), 40) == {v1: 40}
    st = status(kubectl, MODELWERK_DEPLOYMENT, DEPLOYMENT, namespace)
    assert (st["phase"], st["stableVersion"]) == ("Aborted", v1), st
    assert_children(kubectl, namespace)
    # Every training run made one Job and one ModelVersion, however often the operator died.
    assert jobs_per_component(kubectl, namespace) == {
        "validation": 1,
        "training": 2,
        "verification": 2,
    }
    assert len(kubectl.list("modelversions", namespace)) == 2
    print(f"operator killed at: {kills}")
