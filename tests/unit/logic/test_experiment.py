"""The A/B experiment strategy, walked through whole experiments on the simulated cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from modelwerk.api.v1alpha1 import Deployment
from modelwerk.api.v1alpha1.deployment import LABEL_METRICS_NEED_CAPTURE
from modelwerk.api.v1alpha1.experiment import Experiment, ExperimentStatus
from modelwerk.logic.experiment import b_replicas, look, look_due
from modelwerk.logic.experiment_figures import (
    ArmCounters,
    ExperimentFigures,
    JoinedArm,
    JoinedFigures,
    parse_joined,
    parse_pod,
)

from .rollout_sim import Sim, deployment, version

EXPERIMENT: dict[str, Any] = {
    "trafficPercent": 50,
    "key": {"header": "x-user-id"},
    "intervalSeconds": 30,
    "minSamplePerArm": 100,
}


def sim(**experiment: Any) -> Sim:
    """v1 is stable; v2 was just asked for with the experiment strategy."""
    s = Sim(deployment(modelVersion="iris-classifier-v1"), [version(1), version(2)])
    s.until(lambda x: x.status.phase == "Healthy")
    s.set_spec(
        modelVersion="iris-classifier-v2",
        strategy={"experiment": {**EXPERIMENT, **experiment}},
    )
    return s


def figures(
    *,
    units: tuple[float, float] = (1000, 1000),
    correct: tuple[float, float] = (800, 800),
    labelled: tuple[float, float] = (1000, 1000),
    served: tuple[float, float] = (1000, 1000),
    errors: tuple[float, float] = (0, 0),
    keyed: bool = False,
) -> ExperimentFigures:
    def arm(i: int) -> ArmCounters:
        # each arm's pods assigned half of each arm's units (requests land anywhere)
        assigned = {("a", keyed): units[0] / 2, ("b", keyed): units[1] / 2}
        return ArmCounters(
            pods=2,
            assigned=assigned,
            served=served[i],
            errors=errors[i],
            seconds=served[i] * 0.01,
            squares=served[i] * 0.0001 * 1.1,
            correct=correct[i],
            incorrect=labelled[i] - correct[i],
        )

    return ExperimentFigures(arm(0), arm(1))


def env_of(plan_apply: Any, track: str) -> dict[str, str]:
    for child in plan_apply:
        if child["kind"] == "Deployment" and child["metadata"]["name"] == f"iris-{track}":
            container = child["spec"]["template"]["spec"]["containers"][0]
            return {e["name"]: e["value"] for e in container["env"]}
    raise AssertionError(f"no track {track} applied")


def running(s: Sim) -> None:
    s.until(lambda x: x.status.experiment is not None and x.status.experiment.decision == "Running")


def test_arms_start_then_the_stable_service_selects_both() -> None:
    s = sim()
    plan = s.step()
    assert s.status.strategy == "Experiment"
    assert s.status.experiment.decision == "Starting"
    a, b = env_of(plan.apply, "blue"), env_of(plan.apply, "green")
    assert (a["MODELWERK_EXPERIMENT_ARM"], b["MODELWERK_EXPERIMENT_ARM"]) == ("a", "b")
    assert a["MODELWERK_EXPERIMENT_PEER_URL"] == "http://iris-arm-b.ns.svc:80"  # no IP yet
    assert a["MODELWERK_EXPERIMENT_SALT"] == "d-1/iris-classifier-v1/iris-classifier-v2"
    assert a["MODELWERK_EXPERIMENT_KEY"] == "header:x-user-id"
    assert s.tracks["green"].replicas == b_replicas(4, 0.5) == 2
    assert s.services["iris-arm-a"]["modelwerk.dev/track"] == "blue"
    assert s.services["iris-arm-b"]["modelwerk.dev/track"] == "green"
    assert s.serving_colors() == {"blue"}  # not before both arms are up
    running(s)
    # once the arm Services exist, the pods reach them by cluster IP (no cluster DNS needed)
    a = env_of(next(p.apply for p in reversed(s.plans) if p.apply), "blue")
    assert a["MODELWERK_EXPERIMENT_PEER_URL"] == f"http://{s.service_ip('iris-arm-b')}:80"
    assert s.serving_colors() == {"blue", "green"}
    assert s.status.actual_weight == 50
    assert s.status.phase == "Progressing"
    assert any(e.reason == "ExperimentStarted" for p in s.plans for e in p.events)


def test_b_wins_is_promoted_and_the_experiment_is_recorded() -> None:
    s = sim()
    running(s)
    s.now += timedelta(seconds=30)
    s.step(figures=figures(correct=(800, 880)))
    exp = s.status.experiment
    assert exp.decision == "BWins"
    assert exp.primary.difference == pytest.approx(0.08)
    assert exp.primary.ci_low > 0
    assert [a.estimate for a in exp.arms] == pytest.approx([0.8, 0.88])
    assert [a.units for a in exp.arms] == [1000, 1000]
    # B is rolled over to the plain server at full size, then becomes stable
    plan = s.until(lambda x: x.status.phase == "Healthy")
    assert s.status.stable_version == "iris-classifier-v2"
    assert s.status.experiment.decision == "Promoted"
    assert "BWins" in s.status.experiment.reason
    assert s.serving_colors() == {"green"}
    assert "MODELWERK_EXPERIMENT_ARM" not in env_of(plan.apply, "green")
    assert "iris-arm-a" not in s.services and "iris-arm-b" not in s.services
    assert s.status.history[0].outcome == "Promoted"
    events = [e.reason for p in s.plans for e in p.events]
    assert "ExperimentBWins" in events


def test_b_loses_keeps_a_with_the_plain_server() -> None:
    s = sim()
    running(s)
    s.now += timedelta(seconds=30)
    plan = s.step(figures=figures(correct=(880, 800)))
    assert s.status.phase == "Aborted"
    assert s.status.stable_version == "iris-classifier-v1"
    assert s.status.experiment.decision == "Aborted"
    assert s.status.experiment.reason.startswith("BLoses")
    assert "MODELWERK_EXPERIMENT_ARM" not in env_of(plan.apply, "blue")
    assert "green" not in s.tracks
    assert s.serving_colors() == {"blue"}


def test_waiting_for_a_manual_promote() -> None:
    s = sim(onWin="wait")
    running(s)
    s.now += timedelta(seconds=30)
    s.step(figures=figures(correct=(800, 880)))
    assert (s.status.phase, s.status.experiment.decision) == ("Paused", "BWins")
    for _ in range(3):  # no deadline while a person decides, and both arms keep serving
        s.now += timedelta(seconds=600)
        s.step()
    assert s.status.phase == "Paused" and s.serving_colors() == {"blue", "green"}
    s.command("promote")
    s.until(lambda x: x.status.phase == "Healthy")
    assert s.status.stable_version == "iris-classifier-v2"


def test_a_person_may_promote_or_abort_a_running_experiment() -> None:
    s = sim()
    running(s)
    s.command("promote")
    s.until(lambda x: x.status.phase == "Healthy")
    assert s.status.stable_version == "iris-classifier-v2"
    assert "promoted by a person" in s.status.experiment.reason
    s2 = sim()
    running(s2)
    s2.command("abort")
    s2.step()
    assert s2.status.phase == "Aborted" and s2.status.experiment.decision == "Aborted"


def test_sample_ratio_mismatch_stops_a_keyless_experiment_only() -> None:
    s = sim(key=None)
    running(s)
    s.now += timedelta(seconds=30)
    s.step(figures=figures(units=(1000, 800)))
    assert s.status.phase == "Aborted"
    assert s.status.experiment.reason.startswith("SampleRatioMismatch")
    keyed = sim()
    running(keyed)
    keyed.now += timedelta(seconds=30)
    keyed.step(figures=figures(units=(1000, 800), keyed=True))
    exp = keyed.status.experiment
    assert exp.decision == "Running" and exp.units_are_requests
    assert exp.srm_p_value < 0.001 and "not checked" in exp.reason
    # ... and a clear win still decides despite the skewed requests.
    keyed.now += timedelta(seconds=30)
    keyed.step(
        figures=figures(units=(1000, 800), correct=(700, 760), labelled=(1000, 800), keyed=True)
    )
    assert keyed.status.experiment.decision in ("BWins", "Promoted"), keyed.status.experiment.reason


def test_a_guardrail_aborts() -> None:
    s = sim(guardrails=[{"metric": "errorRate", "maxIncrease": 0.01}])
    running(s)
    s.now += timedelta(seconds=30)
    s.step(figures=figures(errors=(5, 80)))
    assert s.status.phase == "Aborted"
    assert s.status.experiment.reason.startswith("GuardrailFailed")
    assert s.status.experiment.guardrails[0].name == "errorRate"


@pytest.mark.parametrize(("on_no_winner", "stable"), [("keepA", "v1"), ("promote", "v2")])
def test_no_winner_by_the_maximum_duration(on_no_winner: str, stable: str) -> None:
    s = sim(maxDurationSeconds=3600, onNoWinner=on_no_winner)
    running(s)
    looks = 0
    while s.status.experiment.decision == "Running":
        s.now += timedelta(seconds=30)
        s.step(figures=figures())
        looks += 1
    assert looks == 3600 // 31 + 1  # one look every 30 s (+1 s a step) until the hour is over
    s.until(lambda x: x.status.phase in ("Healthy", "Aborted"))
    assert s.status.stable_version == f"iris-classifier-{stable}"
    assert "NoWinner" in s.status.experiment.reason


def test_unreadable_figures_run_into_the_progress_deadline() -> None:
    s = sim()
    running(s)
    for _ in range(25):
        s.now += timedelta(seconds=30)
        s.step(figures="arm B: 0 of 2 serving pods answered")
        if s.status.phase == "Aborted":
            break
    assert s.status.phase == "Aborted"
    assert s.status.conditions and "no progress" in s.status.message


def test_looks_are_due_every_interval_and_the_status_survives_a_restart() -> None:
    s = sim()
    running(s)
    spec = s.dep.spec.strategy.experiment
    assert look_due(s.status.experiment, spec, s.now)
    s.step(figures=figures(correct=(800, 810)))
    assert not look_due(s.status.experiment, spec, s.now)
    assert look_due(s.status.experiment, spec, s.now + timedelta(seconds=30))
    body = s.dep.model_dump(by_alias=True, exclude_none=True, mode="json")
    again = Deployment.from_k8s(body)
    assert again.status.experiment == s.status.experiment
    assert s.status.experiment.looks == 1


def test_pod_expositions_give_the_arm_counters() -> None:
    text = (
        'modelwerk_experiment_assignments_total{version="v1",arm="a",keyed="false"} 7\n'
        'modelwerk_experiment_served_seconds_total{version="v1",arm="a"} 0.5\n'
        'modelwerk_experiment_served_seconds_squared_total{version="v1",arm="a"} 0.05\n'
        'modelwerk_model_feedback_total{model="m",version="v1",result="incorrect"} 2\n'
    )
    c = parse_pod(text)
    assert (c.assigned, c.seconds, c.squares, c.incorrect) == ({("a", False): 7.0}, 0.5, 0.05, 2)
    with pytest.raises(ValueError):
        parse_pod("not { a metric")


def joined(a: JoinedArm, b: JoinedArm) -> ExperimentFigures:
    """Pod counters that show no difference, and the join's figures that may."""
    return ExperimentFigures(figures().a, figures().b, JoinedFigures(a, b))


def test_with_capture_the_joined_labels_decide_not_the_pods_own() -> None:
    # The pods matched only the labels that reached the process that served the prediction
    # (equal here); the join of every replica's labels shows B better.
    s = sim()
    running(s)
    s.now += timedelta(seconds=30)
    s.step(figures=joined(JoinedArm(2000, 1600), JoinedArm(2000, 1760)))
    exp = s.status.experiment
    assert exp.decision == "BWins"
    assert [a.observations for a in exp.arms] == [2000, 2000]
    assert [a.estimate for a in exp.arms] == pytest.approx([0.8, 0.88])


def _look(metric: dict[str, Any], a: JoinedArm, b: JoinedArm) -> tuple[ExperimentStatus, Any]:
    spec = Experiment.model_validate({"metric": metric, "minSamplePerArm": 100})
    start = datetime(2026, 1, 1, tzinfo=UTC)
    status = ExperimentStatus(
        version_a="v1", version_b="v2", salt="s", decision="Running", start_time=start
    )
    return look(spec, status, joined(a, b), start + timedelta(hours=1))


def _errors(rng: Any, n: int, scale: float) -> JoinedArm:
    e = rng.normal(0.0, scale, n)
    return JoinedArm(
        matched=n,
        abs_error=float(np.abs(e).sum()),
        squared_error=float((e**2).sum()),
        error_fourth=float((e**4).sum()),
    )


@pytest.mark.parametrize("name", ["mae", "rmse"])
def test_regression_errors_decide_lower_is_better(name: str) -> None:
    rng = np.random.default_rng(7)
    a, b = _errors(rng, 3000, 1.0), _errors(rng, 3000, 0.8)
    status, verdict = _look({"name": name}, a, b)
    assert verdict.outcome == "BWins", status.reason
    assert status.arms[1].estimate < status.arms[0].estimate
    if name == "mae":
        assert status.arms[0].estimate == pytest.approx(a.abs_error / a.matched)
    else:  # per-row squared errors: the estimate is the MSE
        assert status.arms[0].estimate == pytest.approx(a.squared_error / a.matched)
    status, verdict = _look({"name": name}, b, a)
    assert verdict.outcome == "BLoses", status.reason


def test_rewards_decide_binary_and_continuous() -> None:
    conversions = _look(
        {"name": "reward", "rewardType": "binary"},
        JoinedArm(rewards=4000, reward_sum=400),
        JoinedArm(rewards=4000, reward_sum=520),
    )
    assert conversions[1].outcome == "BWins"
    assert [a.observations for a in conversions[0].arms] == [4000, 4000]
    rng = np.random.default_rng(3)
    ra, rb = rng.exponential(10.0, 3000), rng.exponential(8.0, 3000)

    def revenue(r: Any) -> JoinedArm:
        return JoinedArm(
            rewards=len(r), reward_sum=float(r.sum()), reward_squares=float((r**2).sum())
        )

    status, verdict = _look(
        {"name": "reward", "rewardType": "continuous"}, revenue(ra), revenue(rb)
    )
    assert verdict.outcome == "BLoses", status.reason
    assert status.arms[0].estimate == pytest.approx(ra.mean())


def test_joined_figures_are_read_per_version_and_arm() -> None:
    doc = {
        "experiment": {
            "arms": [
                {"version": "v1", "arm": "a", "matched": 10, "correct": 7, "rewards": 2,
                 "rewardSum": 3.5, "rewardSquares": 6.25, "absError": 0, "squaredError": 0,
                 "errorFourth": 0},
                {"version": "v2", "arm": "a", "matched": 99},  # not this experiment's arm
            ]
        }
    }  # fmt: skip
    j = parse_joined(doc, "v1", "v2")
    assert j.a == JoinedArm(10, 7, 0, 0, 0, 2, 3.5, 6.25)
    assert j.b == JoinedArm()  # nothing joined for B yet
    for bad, problem in [
        ({"versions": []}, "no experiment figures"),
        ({"experiment": {"arms": [{"version": "v1", "arm": "a", "matched": "x"}]}}, "matched"),
        ({"experiment": {"arms": [{"version": "v1", "arm": "a", "correct": -1}]}}, "correct"),
    ]:
        with pytest.raises(ValueError, match=problem):
            parse_joined(bad, "v1", "v2")


def test_label_metrics_other_than_accuracy_need_capture() -> None:
    spec = {
        "modelVersion": "m-v1",
        "strategy": {"experiment": {"metric": {"name": "mae"}}},
    }
    body = {"metadata": {"name": "d", "namespace": "ns"}, "spec": spec}
    with pytest.raises(ValidationError, match=r"need monitoring\.capture"):
        Deployment.model_validate(body)
    assert "monitoring.capture" in LABEL_METRICS_NEED_CAPTURE
    Deployment.model_validate({**body, "spec": {**spec, "monitoring": {"capture": {}}}})
    off = {**spec, "monitoring": {"capture": {"enabled": False}}}
    with pytest.raises(ValidationError, match=r"need monitoring\.capture"):
        Deployment.model_validate({**body, "spec": off})
    accuracy = {**spec, "strategy": {"experiment": {}}}
    Deployment.model_validate({**body, "spec": accuracy})


def test_distinct_units_from_the_capture_enforce_the_sample_ratio_check() -> None:
    """A keyed experiment with capture: the aggregator's distinct units replace the pods'
    keyed requests, and a mismatch in them stops the experiment."""
    s = sim()
    running(s)
    s.now += timedelta(seconds=30)
    pods = figures(units=(5000, 3000), keyed=True)  # heavy users: requests skew, units do not
    even = JoinedFigures(JoinedArm(500, 400, units=980), JoinedArm(500, 400, units=1010), 0.5)
    s.step(figures=ExperimentFigures(pods.a, pods.b, even))
    exp = s.status.experiment
    assert exp.decision == "Running" and exp.units_are_requests is False
    assert [a.units for a in exp.arms] == [980, 1010] and exp.unit_sample_rate == 0.5
    assert exp.srm_p_value > 0.001
    s.now += timedelta(seconds=30)
    skewed = JoinedFigures(JoinedArm(600, 480, units=1200), JoinedArm(500, 400, units=1000), 0.5)
    s.step(figures=ExperimentFigures(pods.a, pods.b, skewed))
    assert s.status.phase == "Aborted"
    assert s.status.experiment.reason.startswith("SampleRatioMismatch")
    assert "binomial p =" in s.status.experiment.reason


def test_joined_units_and_an_incomplete_read_back() -> None:
    doc = {
        "experiment": {
            "complete": True,
            "unitRate": 0.25,
            "arms": [{"version": "v1", "arm": "a", "matched": 10, "correct": 7, "units": 40}],
        }
    }
    j = parse_joined(doc, "v1", "v2")
    assert (j.a.units, j.b.units, j.unit_rate, j.units_counted) == (40, 0, 0.25, True)
    old = parse_joined({"experiment": {"arms": []}}, "v1", "v2")  # an older aggregator
    assert not old.units_counted and old.a.units is None
    for bad, problem in [
        ({"experiment": {"complete": False, "unitRate": 1.0, "arms": []}}, "reading the exp"),
        ({"experiment": {"unitRate": 0, "arms": []}}, "unitRate"),
        ({"experiment": {"unitRate": 1, "arms": [{"version": "v1", "arm": "a", "units": -2}]}},
         "units"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=problem):
            parse_joined(bad, "v1", "v2")


def test_counting_starts_only_once_no_pod_of_the_old_template_serves() -> None:
    """A pod of the stable color's old template (no arm yet) still serving would take units
    that no arm counts: the experiment starts once every pod carries its arm."""
    from dataclasses import replace as changed

    s = sim()
    s.step()
    assert s.status.experiment.decision == "Starting"
    active = s.status.active_color or "blue"
    track = s.tracks[active]
    s.tracks[active] = changed(track, replicas=track.updated + 1)  # one old pod left
    s.step()
    assert s.status.experiment.decision == "Starting"
    s.step()  # the old pod is gone
    assert s.status.experiment.decision == "Running"
