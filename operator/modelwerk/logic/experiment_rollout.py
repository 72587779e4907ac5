"""The experiment strategy inside the rollout machine: which colors run what, with which part in
the experiment, and how the machine's promote and abort finish it.

Arm A keeps the active color at full size, arm B gets ⌈replicas·share⌉ pods on the idle color
(each arm only serves its share of the requests, the rest is forwarded). Once the experiment
decides for B, B's pods are rolled over to the plain server at full size before the stable
Service switches to them; deciding for A is the machine's abort (A's pods roll back to the
plain server, B's are removed). The experiment's own logic is ``logic.experiment``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelwerk.api.v1alpha1.experiment import Experiment
from modelwerk.builders.experiment import ArmRole
from modelwerk.logic import experiment as exp
from modelwerk.logic.tracks import Want, settled

if TYPE_CHECKING:
    from modelwerk.logic.rollout import Decision, _Machine


def run_experiment(m: _Machine, target: str, spec: Experiment) -> Decision:
    s = m.s
    stable = s.stable_version or target
    b_pods = exp.b_replicas(m.n, spec.share_b)
    inp = m.inp
    # Every pod of both colors must carry its arm before counting starts: a pod of the old
    # template still serving would take units without assigning or capturing them as an arm's,
    # and the sample-ratio check would see them missing.
    tracks_up = all(
        settled(track, version, replicas) and (track is None or track.replicas <= track.updated)
        for track, version, replicas in (
            (m.track(m.active), stable, m.n),
            (m.track(m.idle), target, b_pods),
        )
    )
    result = exp.step(
        exp.ExperimentInput(
            spec=spec,
            status=s.experiment,
            stable=stable,
            target=target,
            uid=m.dep.metadata.uid or m.dep.metadata.name,
            arms_up=tracks_up,
            figures=inp.figures,
            approved=bool(s.approved),
            now=m.now,
        )
    )
    s.experiment = result.status
    for kind, reason, message in result.events:
        m.event(kind, reason, message)
    if result.progressed:
        m.progressed()
    if result.wake_in is not None:
        m.d.wake_in(result.wake_in)
    salt = result.status.salt
    m.d.colors[m.active] = Want(stable, m.n, ArmRole("a", salt))
    m.d.colors[m.idle] = Want(target, b_pods, ArmRole("b", salt))
    if result.action == "abort":
        return m.abort(result.reason, result.message)
    if (paused := m.frozen(target)) is not None:
        return paused
    if result.action == "start":
        return m.say("Progressing", result.reason, result.message)
    m.d.select_both = True
    m.d.experiment_percent = spec.traffic_percent
    if result.action == "run":
        return m.say("Progressing", result.reason, result.message)
    if result.action == "hold":
        return m.say("Paused", result.reason, result.message)
    # promote: B serves everyone once its pods are plain servers at full size
    m.d.colors[m.idle] = Want(target, m.n)
    if not settled(m.track(m.idle), target, m.n):
        return m.say(
            "Progressing",
            "ExperimentPromoting",
            f"{result.message}: scaling {target} to {m.n} pod(s)",
        )
    m.d.select_both = False
    m.d.experiment_percent = None
    return m.switch("Promoted", f"Experiment: {result.message}")
