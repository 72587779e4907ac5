"""Shadow steps and standalone shadows, walked through on the simulated cluster."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from modelwerk.logic.shadow import JoinedPairs, ShadowFigures, parse_pairs

from .rollout_sim import Sim, deployment, version
from .test_experiment import env_of

CHECKS = [
    {"metric": "agreement", "min": 0.95},
    {"metric": "latency", "max": 0.25},
    {"metric": "errorRate", "max": 0.05},
]


def readings(
    compared: float, agreed: float, *, slow: bool = False, failed: float = 0, paired: Any = None
) -> ShadowFigures:
    seconds = {0.01: compared, 0.05: compared, math.inf: compared}
    if slow:
        seconds = {0.01: 0, 0.05: 0, 1.0: compared, math.inf: compared}
    return ShadowFigures(
        pods=4,
        outcomes={"ok": compared, "error": failed},
        seconds=seconds,
        compared=compared,
        agreed=agreed,
        paired=paired or {},
    )


def canary(**step: Any) -> Sim:
    s = Sim(deployment(modelVersion="iris-classifier-v1"), [version(1), version(2), version(3)])
    s.until(lambda x: x.status.phase == "Healthy")
    shadow = {"checks": CHECKS, "minRows": 100, "intervalSeconds": 10, **step}
    s.set_spec(
        modelVersion="iris-classifier-v2",
        strategy={"canary": {"steps": [{"shadow": shadow}, {"setWeight": 50}]}},
    )
    return s


def mirroring(s: Sim) -> None:
    s.until(lambda x: x.status.shadow is not None and x.status.shadow.phase == "Running")


def test_a_near_identical_candidate_passes_before_any_user_traffic() -> None:
    s = canary()
    plan = s.step()
    env = env_of(plan.apply, "blue")
    assert env["MODELWERK_SHADOW_URL"] == "http://iris-shadow.ns.svc:80"
    assert env["MODELWERK_SHADOW_VERSION"] == "iris-classifier-v2"
    assert s.tracks["green"].replicas == 1
    assert s.services["iris-shadow"]["modelwerk.dev/track"] == "green"
    mirroring(s)
    assert s.serving_colors() == {"blue"}
    assert s.status.actual_weight == 0
    s.now += timedelta(seconds=10)
    s.step(shadow_figures=readings(50, 50))  # too few rows for a verdict
    assert s.status.shadow.phase == "Running"
    assert {c.verdict for c in s.status.shadow.checks} == {"Undecided"}
    s.now += timedelta(seconds=10)
    plan = s.step(shadow_figures=readings(2000, 1990))
    shadow = s.status.shadow
    assert shadow.phase == "Passed" and shadow.agreement_low > 0.95
    assert [c.verdict for c in shadow.checks] == ["Passed"] * 3
    assert "MODELWERK_SHADOW_URL" not in env_of(plan.apply, "blue")  # copying stops
    assert s.status.canary_weight == 50 or s.status.current_step_index == 1
    assert "iris-shadow" not in s.services
    assert any(e.reason == "ShadowPassed" for p in s.plans for e in p.events)


def test_a_different_candidate_is_stopped_before_it_gets_user_traffic() -> None:
    s = canary()
    mirroring(s)
    served = set()
    for agreed in (150, 600):
        s.now += timedelta(seconds=10)
        s.step(shadow_figures=readings(1000, agreed))
        served |= s.serving_colors()
    assert s.status.phase == "Aborted"
    assert s.status.shadow.phase == "Failed"
    assert "agreement" in s.status.message and "15" in s.status.shadow.message
    assert served == {"blue"} and "green" not in s.tracks and "iris-shadow" not in s.services
    assert "MODELWERK_SHADOW_URL" not in env_of(s.plans[-1].apply, "blue")
    assert s.status.stable_version == "iris-classifier-v1"


def test_a_slow_or_failing_candidate_fails_its_checks() -> None:
    s = canary()
    mirroring(s)
    s.now += timedelta(seconds=10)
    s.step(shadow_figures=readings(1000, 1000, slow=True))
    assert s.status.phase == "Aborted" and "latency" in s.status.message
    s2 = canary()
    mirroring(s2)
    s2.now += timedelta(seconds=10)
    s2.step(shadow_figures=readings(1000, 1000, failed=200))
    assert s2.status.phase == "Aborted" and "errorRate" in s2.status.message


def test_undecided_by_the_maximum_duration_pauses_and_resume_mirrors_again() -> None:
    s = canary(maxDurationSeconds=60)
    mirroring(s)
    for _ in range(8):  # 96 % agreement on 1000 rows: the interval straddles 0.95
        s.now += timedelta(seconds=10)
        s.step(shadow_figures=readings(1000, 960))
    assert (s.status.phase, s.status.shadow.phase) == ("Paused", "Inconclusive")
    s.command("resume")
    s.step()
    assert s.status.shadow.phase in ("Starting", "Running")


def test_mcnemar_is_reported() -> None:
    s = canary()
    mirroring(s)
    s.now += timedelta(seconds=10)
    s.step(shadow_figures=readings(50, 50, paired={"stable_only": 3, "shadow_only": 20}))
    shadow = s.status.shadow
    assert (shadow.stable_only_right, shadow.shadow_only_right) == (3, 20)
    assert shadow.mcnemar_p_value < 0.01 and shadow.paired_from == "process"


def test_mcnemar_from_the_join_replaces_the_pods_own_pairs() -> None:
    """With capture the aggregator's pairs (every replica, labels posted anywhere) decide
    the table; the pods' in-process pairs, a subset, are ignored."""
    s = canary()
    mirroring(s)
    s.now += timedelta(seconds=10)
    figures = readings(50, 50, paired={"stable_only": 1, "shadow_only": 2})
    figures.joined = parse_pairs(
        {"pairs": [{"first": "iris-classifier-v1", "second": "iris-classifier-v2",
                    "bothRight": 400, "firstOnly": 30, "secondOnly": 8, "bothWrong": 12}]},
        "iris-classifier-v1",
        "iris-classifier-v2",
    )  # fmt: skip
    s.step(shadow_figures=figures)
    shadow = s.status.shadow
    assert (shadow.stable_only_right, shadow.shadow_only_right) == (30, 8)
    assert shadow.paired_from == "capture" and shadow.mcnemar_p_value < 0.001


def test_paired_outcomes_are_read_from_the_aggregators_answer() -> None:
    doc = {"pairs": [{"first": "a", "second": "b", "firstOnly": 2, "secondOnly": 5}]}
    assert parse_pairs(doc, "a", "b") == JoinedPairs(stable_only=2, shadow_only=5)
    assert parse_pairs(doc, "a", "c") == JoinedPairs()  # nothing labelled both yet
    for bad in ({"versions": []}, {"pairs": [{"first": "a", "second": "b", "firstOnly": -1}]}):
        with pytest.raises(ValueError):
            parse_pairs(bad, "a", "b")


def test_a_standalone_shadow_mirrors_while_steady_and_yields_to_rollouts() -> None:
    s = Sim(deployment(modelVersion="iris-classifier-v1"), [version(1), version(2), version(3)])
    s.until(lambda x: x.status.phase == "Healthy")
    s.set_spec(shadow={"modelVersion": "iris-classifier-v3", "percent": 10, "checks": CHECKS[:1]})
    mirroring(s)
    assert s.version_on("green") == "iris-classifier-v3" and s.serving_colors() == {"blue"}
    assert env_of(s.plans[-1].apply, "blue")["MODELWERK_SHADOW_PERCENT"] == "10"
    s.now += timedelta(seconds=30)
    s.step(shadow_figures=readings(1000, 500))
    assert s.status.phase == "Healthy"  # reported, never acted on
    assert s.status.shadow.checks[0].verdict == "Failed"
    s.set_spec(modelVersion="iris-classifier-v2")
    s.step()
    assert s.status.shadow.phase == "Stopped"
    s.until(lambda x: x.status.phase == "Healthy" and x.status.stable_version.endswith("v2"))
    mirroring(s)  # mirrors again once the rollout is done
    s.set_spec(shadow=None)
    s.step()
    assert s.status.shadow.phase == "Stopped" and "iris-shadow" not in s.services
