"""Invariants of the rollout state machine under arbitrary sequences of events (hypothesis).

Each example drives one Deployment through a random mix of new target versions, pods that do
or do not get Ready, passing / failing / missing analysis samples, manual commands and time
jumps, and an autoscaler changing ``spec.replicas`` at any moment, checking after every
reconcile what must always hold.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modelwerk.api.v1alpha1.deployment import LatencyBucket, MetricSample
from modelwerk.logic.rollout import split_replicas

from .rollout_sim import Sim, deployment, version

TRACK = "modelwerk.dev/track"
DEADLINE = 120

STRATEGIES: dict[str, dict[str, Any]] = {
    "replace": {},
    "blueGreen": {"strategy": {"blueGreen": {"autoPromote": False, "prePromotionAnalysis": True}}},
    "canary": {
        "strategy": {
            "canary": {
                "steps": [
                    {"setWeight": 20},
                    {"analysis": {}},
                    {"pause": {"durationSeconds": 30}},
                    {"setWeight": 60},
                    {"pause": {}},
                ]
            }
        }
    },
}

action = st.one_of(
    st.tuples(st.just("target"), st.sampled_from([1, 2, 3])),
    st.tuples(st.just("ready"), st.booleans()),
    st.tuples(
        st.just("command"),
        st.sampled_from(["promote", "promote-full", "abort", "pause", "resume", "retry", "bogus"]),
    ),
    st.tuples(st.just("wait"), st.sampled_from([1, 10, 31, DEADLINE + 1])),
    st.tuples(st.just("sample"), st.sampled_from(["good", "bad", "quiet", "error"])),
    st.tuples(st.just("scale"), st.sampled_from([1, 2, 4, 7])),
)


def _sample(sim: Sim, kind: str, counter: list[float]) -> MetricSample | str:
    if kind == "error":
        return "no pod answered"
    counter[0] += 0 if kind == "quiet" else 100
    counter[1] += 50 if kind == "bad" else 0
    return MetricSample(
        time=sim.now,
        pods=1,
        requests=counter[0],
        errors=counter[1],
        latency_buckets=[LatencyBucket(le="+Inf", count=counter[0])],
    )


def check(sim: Sim, before: dict[str, Any], *, in_place: bool) -> None:
    status, plan = sim.status, sim.plans[-1]
    n = sim.dep.spec.replicas
    applied = {(c["kind"], c["metadata"]["name"]) for c in plan.apply}
    deleted = {(k.kind, k.name) for k in plan.delete}
    assert not applied & deleted, "a child is applied and deleted at once"
    if "iris" not in sim.services:
        return
    selector = sim.stable_selector()
    if status.phase == "Aborted":
        assert selector[TRACK] == status.active_color, "after an abort only stable gets traffic"
        active = sim.tracks[status.active_color]
        assert (active.version, active.replicas) == (status.stable_version, n)
        assert sim.version_on("green" if status.active_color == "blue" else "blue") is None
    if TRACK not in selector:  # canary split by replica ratio
        idle = "green" if status.active_color == "blue" else "blue"
        was = before.get(idle)
        assert was is not None and was.version == status.canary_version and was.ready > 0, (
            "traffic moved to pods that were not Ready"
        )
    elif status.stable_version is not None and status.phase != "Degraded":
        # Only the replace strategy rolls the new version over the stable color's pods.
        allowed = {status.stable_version, status.canary_version if in_place else None}
        assert sim.version_on(selector[TRACK]) in allowed
    check_scale(sim, before)


def check_scale(sim: Sim, before: dict[str, Any]) -> None:
    """The scale subresource counts exactly the pods answering production requests."""
    status, plan = sim.status, sim.plans[-1]
    n = sim.dep.spec.replicas
    scale = dict(part.split("=") for part in status.selector.split(","))
    assert scale["modelwerk.dev/deployment"] == "iris"
    stable = sim.stable_selector()
    if TRACK in scale:  # one color: the one the stable Service sends to
        assert stable.get(TRACK) == scale[TRACK], (stable, scale)
        colors = [scale[TRACK]]
    else:  # a canary with traffic: both colors answer production requests
        assert status.canary_version is not None and TRACK not in stable
        colors = ["blue", "green"]
    assert status.replicas == sum(before[c].replicas for c in colors if c in before)
    # the canary split follows the replica count the autoscaler set
    weight = status.canary_weight
    applied = {c["metadata"]["labels"][TRACK]: c for c in plan.apply if c["kind"] == "Deployment"}
    active = applied.get(status.active_color)
    if status.canary_version is not None and weight is not None and active and not status.paused:
        assert active["spec"]["replicas"] == split_replicas(n, weight)[1], (n, weight)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    strategy=st.sampled_from(sorted(STRATEGIES)),
    actions=st.lists(action, min_size=1, max_size=40),
)
# Found by this test: a person paused a canary at 20 %, another version was asked for (the
# canary pods went away), then the paused version again: the split came back at once, onto
# canary pods that were only starting.
@example(
    strategy="canary",
    actions=[("target", 2), ("target", 2), ("command", "pause"), ("target", 3), ("target", 2)],
)
def test_invariants_hold_after_every_reconcile(
    strategy: str, actions: list[tuple[str, Any]]
) -> None:
    spec = {
        "modelVersion": "iris-classifier-v1",
        "progressDeadlineSeconds": DEADLINE,
        "analysis": {
            "intervalSeconds": 10,
            "count": 2,
            "minRequests": 10,
            "checks": [{"metric": "errorRate", "max": 0.1}],
        },
        **STRATEGIES[strategy],
    }
    sim = Sim(deployment(**spec), [version(1), version(2), version(3)])
    sim.until(lambda s: s.status.phase == "Healthy")
    counter = [0.0, 0.0]
    for kind, value in actions:
        sample = None
        if kind == "target":
            sim.set_spec(modelVersion=f"iris-classifier-v{value}")
        elif kind == "ready":
            sim.pods_ready = value
        elif kind == "command":
            sim.command(value)
        elif kind == "wait":
            sim.now += timedelta(seconds=value)
        elif kind == "scale":
            aborted = sim.status.phase == "Aborted"
            sim.set_spec(replicas=value)  # what an HPA does through the scale subresource
        else:
            sample = _sample(sim, value, counter)
        before = dict(sim.tracks)
        sim.step(sample=sample)
        check(sim, before, in_place=strategy == "replace")
        if kind == "scale" and aborted:
            assert sim.status.phase == "Aborted", "a scale retried an aborted rollout"

    # Liveness: whatever state it is in, with pods that never get Ready and nobody acting, a
    # rollout ends by the deadline (or stays paused because a person paused it).
    sim.pods_ready = False
    for _ in range(3):
        sim.now += timedelta(seconds=DEADLINE + 1)
        before = dict(sim.tracks)
        sim.step()
        check(sim, before, in_place=strategy == "replace")
    if not sim.status.paused:
        assert sim.status.phase != "Progressing" or sim.status.canary_version is None, (
            sim.status.message
        )
