"""Deployment decisions walked through whole rollouts on a simulated cluster (see rollout_sim)."""

from __future__ import annotations

import pytest

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1.deployment import DriftWindow, LatencyBucket, MetricSample
from modelwerk.logic.drift import DriftInput
from modelwerk.logic.rollout import split_replicas

from .rollout_sim import Sim, deployment, version

V1, V2, V3 = "iris-classifier-v1", "iris-classifier-v2", "iris-classifier-v3"


def healthy_on_v1(**spec: object) -> Sim:
    sim = Sim(deployment(modelVersion=V1, **spec), [version(1), version(2), version(3)])
    sim.until(lambda s: s.status.phase == "Healthy")
    assert (sim.status.stable_version, sim.status.active_color) == (V1, "blue")
    return sim


def condition(sim: Sim, kind: str) -> tuple[str, str]:
    found = get_condition(sim.status.conditions, kind)
    assert found is not None, kind
    return found.status, found.reason


def sample(
    t: object, requests: float, errors: float = 0, drift: float | None = None
) -> MetricSample:
    return MetricSample(
        time=t,
        pods=1,
        requests=requests,
        errors=errors,
        latency_buckets=[LatencyBucket(le="+Inf", count=requests)],
        drift_score=drift,
        drift_feature="petal_length" if drift is not None else None,
    )


# -- first version and the replace strategy --------------------------------------------------


def test_the_first_version_serves_on_blue_behind_the_stable_service() -> None:
    sim = Sim(deployment(), [version(1), version(2), version(3, phase="Pending")])
    plan = sim.step()
    track = next(c for c in plan.apply if c["kind"] == "Deployment")
    assert track["metadata"]["name"] == "iris-blue"
    assert track["metadata"]["labels"]["modelwerk.dev/model-version"] == V2
    container = track["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert all(m["readOnly"] for m in container["volumeMounts"] if m["name"] == "artifacts")
    assert sim.stable_selector() == {
        "modelwerk.dev/deployment": "iris",
        "modelwerk.dev/track": "blue",
    }
    assert sim.status.phase == "Progressing"
    sim.step()
    assert (sim.status.phase, sim.status.stable_version) == ("Healthy", V2)
    assert condition(sim, "Ready") == ("True", "RolloutComplete")
    assert condition(sim, "Available")[0] == "True"
    assert sim.status.history[0].outcome == "Promoted"
    assert sim.status.endpoints.stable == "http://iris.ns.svc:80"


def test_a_missing_pinned_version_is_named_and_nothing_is_created() -> None:
    sim = Sim(deployment(modelVersion="iris-classifier-v9"), [version(1)])
    plan = sim.step()
    assert plan.apply == () and plan.requeue_after
    assert condition(sim, "Ready") == ("False", "ModelVersionNotFound")
    assert "iris-classifier-v9 does not exist" in (sim.status.message or "")


def test_losing_the_target_keeps_serving_what_serves() -> None:
    sim = healthy_on_v1()
    sim.versions = [version(1, phase="Failed")]
    sim.step()
    assert sim.status.phase == "Degraded" and sim.version_on("blue") == V1
    assert "Still serving iris-classifier-v1" in (sim.status.message or "")
    assert condition(sim, "Available")[0] == "True"


def test_replace_rolls_the_active_color_in_place() -> None:
    sim = healthy_on_v1()
    sim.set_spec(modelVersion=V2)
    sim.until(lambda s: s.status.stable_version == V2)
    assert sim.status.active_color == "blue" and sim.version_on("blue") == V2
    assert "green" not in sim.tracks


def test_a_first_version_that_never_gets_ready_is_degraded_after_the_deadline() -> None:
    sim = Sim(deployment(modelVersion=V1, progressDeadlineSeconds=30), [version(1)])
    sim.pods_ready = False
    sim.step()
    sim.step(seconds=31)
    sim.step()
    assert sim.status.phase == "Degraded"
    assert condition(sim, "Ready")[1] == "ProgressDeadlineExceeded"


# -- blue-green ------------------------------------------------------------------------------


def test_blue_green_switches_the_service_only_once_the_new_color_is_ready() -> None:
    sim = healthy_on_v1(strategy={"blueGreen": {"scaleDownDelaySeconds": 30}})
    sim.pods_ready = False
    sim.set_spec(modelVersion=V2)
    for _ in range(3):
        sim.step()
        assert sim.version_on("green") == V2
        assert sim.stable_selector()["modelwerk.dev/track"] == "blue"
        assert sim.services["iris-preview"]["modelwerk.dev/track"] == "green"
        assert sim.status.canary_version == V2 and sim.status.phase == "Progressing"
    sim.pods_ready = True
    sim.until(lambda s: s.status.stable_version == V2)
    assert sim.stable_selector()["modelwerk.dev/track"] == "green"
    assert sim.status.active_color == "green" and sim.status.phase == "Healthy"
    assert sim.version_on("blue") == V1, "the old color stays warm for scaleDownDelaySeconds"
    sim.step(seconds=31)
    sim.step()
    assert "blue" not in sim.tracks
    assert [h.outcome for h in sim.status.history[:2]] == ["Promoted", "Promoted"]


def test_blue_green_without_auto_promotion_waits_for_a_person() -> None:
    sim = healthy_on_v1(strategy={"blueGreen": {"autoPromote": False, "previewReplicas": 1}})
    sim.set_spec(modelVersion=V2)
    for _ in range(4):
        sim.step()
    assert (sim.status.phase, condition(sim, "Ready")[1]) == ("Paused", "WaitingForPromotion")
    assert sim.tracks["green"].replicas == 1
    assert sim.stable_selector()["modelwerk.dev/track"] == "blue"
    sim.command("promote")
    sim.until(lambda s: s.status.stable_version == V2)
    assert sim.tracks["green"].replicas == 4 and sim.status.last_command.startswith("promote@")
    assert any(e.reason == "Command" for p in sim.plans for e in p.events)


def test_a_warm_previous_version_is_switched_back_without_a_rollout() -> None:
    sim = healthy_on_v1(strategy={"blueGreen": {"scaleDownDelaySeconds": 600}})
    sim.set_spec(modelVersion=V2)
    sim.until(lambda s: s.status.stable_version == V2)
    sim.set_spec(modelVersion=V1)
    sim.step()
    assert (
        sim.status.stable_version == V1 and sim.stable_selector()["modelwerk.dev/track"] == "blue"
    )
    assert sim.status.history[0].outcome == "RolledBack"


def test_blue_green_pre_promotion_analysis_failure_keeps_the_old_version() -> None:
    sim = healthy_on_v1(
        strategy={"blueGreen": {"prePromotionAnalysis": True}},
        analysis={"intervalSeconds": 10, "checks": [{"metric": "errorRate", "max": 0.05}]},
    )
    sim.set_spec(modelVersion=V2)
    sim.step()
    sim.step()  # preview Ready: the run starts and wants a baseline
    sim.step(seconds=10, sample=sample(sim.now, 0))
    sim.step(sample=sample(sim.now, 100, errors=30))
    assert sim.status.phase == "Aborted"
    assert sim.stable_selector()["modelwerk.dev/track"] == "blue" and "green" not in sim.tracks
    assert "errorRate" in (sim.status.message or "")


# -- canary ----------------------------------------------------------------------------------

CANARY = {
    "canary": {
        "steps": [
            {"setWeight": 25},
            {"pause": {"durationSeconds": 60}},
            {"analysis": {}},
            {"setWeight": 50},
            {"pause": {}},
        ]
    }
}
ANALYSIS = {
    "intervalSeconds": 10,
    "count": 2,
    "minRequests": 10,
    "checks": [{"metric": "errorRate", "max": 0.05}],
}


def canary_at_analysis() -> Sim:
    sim = healthy_on_v1(strategy=CANARY, analysis=ANALYSIS)
    sim.set_spec(modelVersion=V2)
    sim.step()  # canary pods for 25 %
    plan = sim.step()  # Ready: weight 25 %, pause starts
    assert (sim.status.canary_weight, sim.status.phase) == (25, "Paused")
    assert plan.requeue_after == 60
    assert sim.tracks["green"].replicas == 1 and sim.tracks["blue"].replicas == 3
    assert "modelwerk.dev/track" not in sim.stable_selector(), "replica-ratio split"
    sim.step(seconds=60)
    assert sim.status.actual_weight == 25, "measured on the pods that exist"
    sim.step()
    assert condition(sim, "Ready")[1] == "AnalysisRunning"
    return sim


def test_a_canary_walks_its_steps_to_full_promotion() -> None:
    sim = canary_at_analysis()
    sim.step(seconds=10, sample=sample(sim.now, 0))  # baseline
    sim.step(seconds=10, sample=sample(sim.now, 100, errors=1))
    sim.step(seconds=10, sample=sample(sim.now, 200, errors=2))
    run = sim.status.analysis_runs[0]
    assert (run.name, run.phase, run.successful) == ("step-3", "Successful", 2)
    sim.step()
    sim.step()
    assert sim.status.canary_weight == 50 and sim.tracks["green"].replicas == 2
    assert (sim.status.phase, condition(sim, "Ready")[1]) == ("Paused", "PausedByStep")
    sim.step(seconds=3)
    assert sim.status.phase == "Paused", "an indefinite pause waits for a person"
    sim.command("promote")
    sim.until(lambda s: s.status.stable_version == V2)
    assert sim.status.active_color == "green" and sim.tracks["green"].replicas == 4
    assert "blue" not in sim.tracks and sim.stable_selector()["modelwerk.dev/track"] == "green"
    assert sim.status.canary_version is None and sim.status.phase == "Healthy"
    assert sim.status.history[0].outcome == "Promoted"


def test_a_failing_analysis_aborts_with_all_traffic_on_stable() -> None:
    sim = canary_at_analysis()
    sim.step(seconds=10, sample=sample(sim.now, 0))
    plan = sim.step(sample=sample(sim.now, 100, errors=40))
    assert sim.status.phase == "Aborted" and sim.status.aborted_version == V2
    assert sim.stable_selector()["modelwerk.dev/track"] == "blue"
    assert sim.tracks["blue"] == sim.tracks["blue"].__class__(V1, 4, 4, 4, 4, True)
    assert "green" not in sim.tracks
    assert condition(sim, "Degraded") == ("True", "AnalysisFailed")
    assert {e.reason for e in plan.events} >= {"RolloutAborted", "AnalysisFailed"}
    assert "errorRate = 0.4" in (sim.status.message or "")
    # Nothing starts again on its own ...
    for _ in range(3):
        sim.step(seconds=30)
    assert sim.status.phase == "Aborted" and "green" not in sim.tracks
    # ... until a person retries.
    sim.command("retry")
    sim.step()
    assert sim.status.canary_version == V2 and sim.status.current_step_index == 0


def test_a_spec_change_after_an_abort_starts_a_fresh_rollout_a_scale_does_not() -> None:
    sim = canary_at_analysis()
    sim.command("abort")
    sim.step()
    assert sim.status.phase == "Aborted"
    # an autoscaler writing spec.replicas bumps the generation too, but is no reason to retry
    sim.set_spec(replicas=7)
    sim.step()
    assert sim.status.phase == "Aborted" and sim.tracks["blue"].replicas == 7
    assert "green" not in sim.tracks
    sim.set_spec(progressDeadlineSeconds=300)  # any other spec edit is
    sim.step()
    assert sim.status.phase == "Progressing" and sim.status.canary_version == V2


def test_inconclusive_analysis_pauses_and_resume_measures_again() -> None:
    sim = canary_at_analysis()
    sim.step(seconds=10, sample=sample(sim.now, 0))
    for _ in range(3):  # 3 > inconclusiveLimit 2: no traffic, no verdict
        sim.step(seconds=10, sample=sample(sim.now, 0))
    assert (sim.status.phase, condition(sim, "Ready")[1]) == ("Paused", "AnalysisInconclusive")
    sim.command("resume")
    sim.step()
    assert sim.status.analysis_runs[-1].phase == "Running"
    assert sim.status.analysis_runs[-1].inconclusive == 0


def test_a_stuck_canary_aborts_at_the_deadline() -> None:
    sim = healthy_on_v1(strategy=CANARY, progressDeadlineSeconds=60)
    sim.pods_ready = False
    sim.set_spec(modelVersion=V2)
    plan = sim.step()
    assert plan.requeue_after == 60
    sim.step(seconds=61)
    sim.step()
    assert sim.status.phase == "Aborted"
    assert condition(sim, "Progressing") == ("False", "ProgressDeadlineExceeded")
    assert "green" not in sim.tracks and sim.serving_colors() == {"blue"}


def test_going_back_to_the_stable_version_mid_rollout_cancels_at_once() -> None:
    sim = canary_at_analysis()
    sim.set_spec(modelVersion=V1)
    sim.step()
    assert sim.status.phase == "Healthy" and sim.status.canary_version is None
    assert sim.status.history[0].outcome == "RolledBack" and "green" not in sim.tracks


def test_a_newer_version_supersedes_the_one_rolling_out() -> None:
    sim = canary_at_analysis()
    sim.set_spec(modelVersion=V3)
    sim.step()
    assert sim.status.canary_version == V3 and sim.status.current_step_index == 0
    assert [h.outcome for h in sim.status.history[:2]] == ["Progressing", "Superseded"]


def test_a_manual_pause_freezes_the_rollout_and_resume_continues() -> None:
    sim = healthy_on_v1(strategy=CANARY)
    sim.command("pause")
    sim.set_spec(modelVersion=V2)
    sim.step()
    assert sim.status.phase == "Paused" and "green" not in sim.tracks, "no new rollout starts"
    sim.step(seconds=3600)
    assert sim.status.phase == "Paused", "a person's pause has no deadline"
    sim.command("resume")
    sim.step()
    sim.step()
    assert sim.status.canary_weight == 25


def test_promote_full_skips_the_remaining_steps() -> None:
    sim = canary_at_analysis()
    sim.command("promote-full")
    sim.until(lambda s: s.status.stable_version == V2)
    assert sim.status.analysis_runs[0].message.startswith("Skipped")


def test_an_unknown_command_is_reported_once() -> None:
    sim = healthy_on_v1()
    sim.command("explode")
    plan = sim.step()
    assert [e.reason for e in plan.events] == ["UnknownCommand"]
    assert sim.step().events == ()


@pytest.mark.parametrize(
    ("replicas", "weight", "expected"),
    [
        (4, 25, (1, 3)),
        (4, 50, (2, 2)),
        (1, 50, (1, 1)),
        (10, 10, (1, 9)),
        (3, 100, (3, 0)),
        (3, 0, (0, 3)),
        (0, 50, (0, 0)),
    ],
)
def test_replica_split(replicas: int, weight: int, expected: tuple[int, int]) -> None:
    assert split_replicas(replicas, weight) == expected


# -- drift and retraining --------------------------------------------------------------------

MONITORED = {
    "drift": {"threshold": 0.2, "intervalSeconds": 30},
    "retraining": {"trainingJobRef": {"name": "iris-rf"}, "minIntervalSeconds": 600},
}


def test_drift_within_threshold_and_missing_metrics_are_reported() -> None:
    sim = healthy_on_v1(monitoring=MONITORED)
    sim.step(drift=DriftInput(sample=sample(sim.now, 100, drift=0.1)))
    assert condition(sim, "DriftDetected") == ("False", "WithinThreshold")
    sim.step(seconds=30, drift=DriftInput(sample="no serving pod answered"))
    assert condition(sim, "DriftDetected") == ("Unknown", "MetricsUnavailable")
    assert sim.status.phase == "Healthy"


# -- exact weights through an HTTPRoute --------------------------------------------------------

ROUTED = {
    "strategy": {"canary": {"steps": [{"setWeight": 30}, {"pause": {}}]}},
    "trafficRouting": {"httpRoute": {"name": "iris-route"}},
}


def route(weights: tuple[int, int] | None = None) -> dict[str, object]:
    refs: list[dict[str, object]] = [{"name": "iris", "port": 80}]
    if weights:
        refs = [
            {"name": "iris", "port": 80, "weight": weights[0]},
            {"name": "iris-canary", "port": 80, "weight": weights[1]},
        ]
    return {
        "metadata": {"name": "iris-route", "namespace": "ns", "resourceVersion": "5"},
        "spec": {"rules": [{"matches": [{"path": {"value": "/"}}], "backendRefs": refs}]},
    }


def test_a_named_route_gets_exact_weights_once_the_canary_is_ready() -> None:
    sim = healthy_on_v1(**ROUTED)
    sim.set_spec(modelVersion=V2)
    plan = sim.step(route=route())
    assert sim.tracks["green"].replicas == 2 and sim.tracks["blue"].replicas == 4
    assert next(p for _, p in plan.patch)["spec"]["rules"][0]["backendRefs"][1]["weight"] == 0
    plan = sim.step(route=route((100, 0)))
    ((key, patch),) = plan.patch
    assert (key.kind, key.name) == ("HTTPRoute", "iris-route")
    assert patch["metadata"]["resourceVersion"] == "5"
    rule = patch["spec"]["rules"][0]
    assert rule["matches"] == [{"path": {"value": "/"}}], "the rest of the rule is kept"
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [
        ("iris", 70),
        ("iris-canary", 30),
    ]
    assert sim.stable_selector()["modelwerk.dev/track"] == "blue", (
        "the route splits, not the Service"
    )
    assert sim.status.actual_weight == 30
    assert sim.step(route=route((70, 30))).patch == (), "nothing to change"
    sim.command("promote")
    sim.until(lambda s: s.status.stable_version == V2, route=route((70, 30)))
    weights = [
        b["weight"] for _, p in sim.plans[-1].patch for b in p["spec"]["rules"][0]["backendRefs"]
    ]
    assert weights == [100, 0]


def test_a_missing_route_holds_the_canary_until_the_deadline() -> None:
    sim = healthy_on_v1(**ROUTED, progressDeadlineSeconds=60)
    sim.set_spec(modelVersion=V2)
    sim.step()
    sim.step()
    assert condition(sim, "Ready")[1] == "RouteNotReady"
    assert "HTTPRoute iris-route not found" in (sim.status.message or "")
    assert sim.status.canary_weight is None
    sim.step(seconds=61)
    sim.step()
    assert sim.status.phase == "Aborted"


# -- drift needs enough rows -------------------------------------------------------------------


def _command(dep: object) -> list[str]:
    from modelwerk.builders.serving import server_args

    return server_args(dep, version(1))  # type: ignore[arg-type]


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_the_pods_get_the_threshold_drift_is_compared_with() -> None:
    monitored = deployment(
        modelVersion=V1, monitoring={"drift": {"method": "ks", "threshold": 0.15, "window": 800}}
    )
    args = _command(monitored)
    assert [_flag(args, f) for f in ("--drift-method", "--drift-window", "--drift-threshold")] == [
        "ks",
        "800",
        "0.15",
    ]
    # An analysis drift check with a lower bound wins: a canary is not judged on noise either.
    checked = deployment(
        modelVersion=V1,
        monitoring={"drift": {"threshold": 0.25}},
        analysis={"checks": [{"metric": "drift", "max": 0.1}, {"metric": "errorRate", "max": 0}]},
    )
    assert _flag(_command(checked), "--drift-threshold") == "0.1"
    only_analysis = deployment(
        modelVersion=V1, analysis={"checks": [{"metric": "drift", "max": 0.3}]}
    )
    assert _flag(_command(only_analysis), "--drift-threshold") == "0.3"
    assert "--drift-threshold" not in _command(deployment())


def drift_sample(t: object, window: DriftWindow, score: float | None = None) -> MetricSample:
    base = sample(t, 100, drift=score)
    return base.model_copy(update={"drift_window": window})


def test_no_drift_score_says_how_many_rows_are_missing_and_why() -> None:
    sim = healthy_on_v1(monitoring=MONITORED)
    threshold = MONITORED["drift"]["threshold"]  # type: ignore[index]
    warming = DriftWindow(rows=40, needed=130, feature="petal_length")
    sim.step(drift=DriftInput(sample=drift_sample(sim.now, warming)))
    found = get_condition(sim.status.conditions, "DriftDetected")
    assert found is not None and (found.status, found.reason) == ("Unknown", "NotEnoughData")
    assert f"40 of the 130 rows a window needs before PSI can be compared with {threshold:g}" in (
        found.message or ""
    )
    assert sim.status.drift.score is None
    too_small = DriftWindow(rows=500, needed=1500, feature="petal_length")
    sim.step(seconds=30, drift=DriftInput(sample=drift_sample(sim.now, too_small)))
    found = get_condition(sim.status.conditions, "DriftDetected")
    assert found is not None and found.reason == "WindowTooSmall"
    assert "needs 1500 rows of live inputs, the window holds 1000" in (found.message or "")
    never = DriftWindow(rows=500, needed=None, feature="petal_length")
    sim.step(seconds=30, drift=DriftInput(sample=drift_sample(sim.now, never)))
    found = get_condition(sim.status.conditions, "DriftDetected")
    assert found is not None and found.reason == "ProfileTooSmall"
    assert "the training profile has too few rows" in (found.message or "")
    # Other features are measured: the verdict stands, and the blind spot is named.
    sim.step(seconds=30, drift=DriftInput(sample=drift_sample(sim.now, too_small, 0.05)))
    found = get_condition(sim.status.conditions, "DriftDetected")
    assert found is not None and found.reason == "WithinThreshold"
    assert "petal_length needs 1500 rows" in (found.message or "")
    assert sim.status.phase == "Healthy"


def test_an_analysis_drift_check_without_a_score_is_inconclusive_and_says_why() -> None:
    from datetime import UTC, datetime

    from modelwerk.api.v1alpha1.deployment import Check
    from modelwerk.logic.measure import measure

    now = datetime(2030, 1, 1, tzinfo=UTC)
    current = drift_sample(now, DriftWindow(rows=30, needed=120, feature="petal_length"))
    m = measure(Check(metric="drift", max=0.2), None, current, min_requests=1, now=now)
    assert (m.phase, m.value) == ("Inconclusive", None)
    assert m.message is not None and "30 of the 120 rows" in m.message
