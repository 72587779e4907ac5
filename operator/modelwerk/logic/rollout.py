"""The rollout state machine: from the status and the observed tracks, what runs where next.

A Deployment has two color slots, blue and green, each an apps/v1 Deployment. The active color
serves the stable version behind the stable Service. A rollout brings the new version up on the
idle color and moves traffic to it: all at once once it is Ready (blue-green), step by step
(canary), or by replacing the active color's pods in place (no strategy). Promotion makes the
idle color active; an abort puts every request back on the active color and removes the idle
one. Everything the machine remembers lives in the status, so an operator restart at any point
resumes where it stopped, and the decision is a pure function of what it observes.

Invariants (tested exhaustively in tests/unit/logic/test_rollout_invariants.py):
* after an abort the stable Service selects only the active color, which runs the stable
  version at full replicas, and the idle color is gone;
* traffic shifts towards a new version only once its pods are Ready;
* every phase that waits on the system ends: ``progressDeadlineSeconds`` without progress aborts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Literal

from modelwerk.api.conditions import ConditionStatus
from modelwerk.api.v1alpha1.deployment import (
    AnalysisRun,
    CanaryStep,
    Deployment,
    DeploymentStatus,
    MetricSample,
    RolloutRecord,
)
from modelwerk.api.v1alpha1.experiment import ExperimentStatus
from modelwerk.api.v1alpha1.shadow import ShadowStatus
from modelwerk.logic import analysis as runs
from modelwerk.logic.commands import Command
from modelwerk.logic.experiment import finished, waiting_for_promotion
from modelwerk.logic.experiment_figures import ExperimentFigures
from modelwerk.logic.experiment_rollout import run_experiment
from modelwerk.logic.plan import Event
from modelwerk.logic.shadow import ShadowFigures
from modelwerk.logic.shadow_rollout import shadow_step
from modelwerk.logic.shadow_rollout import standalone as standalone_shadow
from modelwerk.logic.shadow_rollout import stopped as stopped_shadow
from modelwerk.logic.spec_fingerprint import spec_hash
from modelwerk.logic.tracks import Color, TrackState, Want, other, settled

PRE_PROMOTION = "pre-promotion"
Outcome = Literal["Promoted", "Aborted", "RolledBack", "Superseded"]


@dataclass(frozen=True)
class RolloutInput:
    dep: Deployment
    target: str | None
    """The ModelVersion the spec asks for, None when it cannot be resolved."""
    tracks: Mapping[str, TrackState]
    now: datetime
    command: Command | None = None
    sample: MetricSample | str | None = None
    """The idle color's metrics, when ``wants_sample`` asked for them (a string: why not)."""
    route_problem: str | None = None
    """Why the HTTPRoute named for exact weights cannot carry them, if it cannot."""
    figures: ExperimentFigures | str | None = None
    """Both arms' experiment figures, when ``experiment.look_due`` asked for them."""
    shadow_figures: ShadowFigures | str | None = None
    """The stable pods' shadow counters, when ``shadow_rollout.wants_figures`` asked."""


@dataclass
class State:
    """The status fields the machine owns (copied from and back into DeploymentStatus)."""

    stable_version: str | None
    canary_version: str | None
    active_color: Color
    current_step_index: int | None
    canary_weight: int | None
    paused: bool | None
    approved: bool | None
    pause_start_time: datetime | None
    rollout_start_time: datetime | None
    progress_time: datetime | None
    scale_down_time: datetime | None
    aborted_version: str | None
    aborted_generation: int | None
    aborted_spec_hash: str | None
    analysis_runs: list[AnalysisRun] | None
    history: list[RolloutRecord] | None
    last_command: str | None
    experiment: ExperimentStatus | None
    shadow: ShadowStatus | None

    @classmethod
    def of(cls, status: DeploymentStatus) -> State:
        values = {f.name: getattr(status, f.name) for f in fields(cls)}
        values["active_color"] = status.active_color or "blue"
        values["analysis_runs"] = list(status.analysis_runs or [])
        values["history"] = list(status.history or [])
        return cls(**values)

    def update(self) -> dict[str, object]:
        values: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        values["analysis_runs"] = self.analysis_runs or None
        values["history"] = self.history or None
        return values


@dataclass
class Decision:
    state: State
    colors: dict[Color, Want | None] = field(default_factory=dict)
    """Desired color tracks; None deletes the track, a missing color is left alone."""
    weight: int = 0
    """The share of traffic the new version is given now: the step's weight once its pods
    are Ready, 0 until then. Without an HTTPRoute the stable Service then selects both colors
    and the replica ratio makes the split; with one, it carries this as backend weights."""
    phase: str = "Progressing"
    ready: ConditionStatus = "False"
    reason: str = "RollingOut"
    message: str = ""
    conditions: list[tuple[str, ConditionStatus, str]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    select_both: bool = False
    """The stable Service selects both colors whatever the weight (an experiment's pods route
    requests themselves)."""
    experiment_percent: int | None = None
    """The share of units an experiment in progress assigns to the new version."""
    shadow_service: bool = False
    """The idle color runs a shadow: ``<name>-shadow`` selects it."""

    def wake_in(self, seconds: float) -> None:
        seconds = max(seconds, 1.0)
        self.requeue_after = min(self.requeue_after or seconds, seconds)


def strategy_name(dep: Deployment) -> str:
    strategy = dep.spec.strategy
    if strategy.experiment:
        return "Experiment"
    return "BlueGreen" if strategy.blue_green else "Canary" if strategy.canary else "Replace"


def split_replicas(replicas: int, weight: int) -> tuple[int, int]:
    """(canary, stable) pods giving the new version about ``weight`` percent of the traffic.

    With replica-ratio routing a request lands on any Ready pod, so the share is
    canary / (canary + stable). Both sides keep at least one pod while 0 < weight < 100 and the
    total never drops below ``replicas``, so capacity holds while traffic moves.

    >>> split_replicas(4, 25), split_replicas(10, 10), split_replicas(1, 10), split_replicas(3, 100)
    ((1, 3), (1, 9), (1, 1), (3, 0))
    """
    if replicas == 0:
        return 0, 0
    if weight <= 0:
        return 0, replicas
    if weight >= 100:
        return replicas, 0
    canary = max(1, math.ceil(replicas * weight / 100))
    return canary, max(1, replicas - canary)


def wants_sample(dep: Deployment, now: datetime) -> Color | None:
    """The color whose pods the next decision needs metrics of, if any."""
    status, analysis = dep.status, dep.spec.analysis
    if analysis is None or status.canary_version is None or status.paused:
        return None
    run = next((r for r in status.analysis_runs or [] if r.phase == "Running"), None)
    if runs.needs_sample(run, analysis, now):
        return other(status.active_color or "blue")
    return None


def decide(inp: RolloutInput) -> Decision:
    return _Machine(inp).run()


class _Machine:
    def __init__(self, inp: RolloutInput) -> None:
        self.inp = inp
        self.dep = inp.dep
        self.spec = inp.dep.spec
        self.now = inp.now
        self.n = self.spec.replicas
        self.d = Decision(state=State.of(inp.dep.status))
        self.s = self.d.state

    # -- helpers ---------------------------------------------------------------------------

    @property
    def active(self) -> Color:
        return self.s.active_color

    @property
    def idle(self) -> Color:
        return other(self.s.active_color)

    def track(self, color: Color) -> TrackState | None:
        return self.inp.tracks.get(color)

    def say(
        self,
        phase: str,
        reason: str,
        message: str,
        *,
        ready: ConditionStatus = "False",
        progressing: ConditionStatus = "True",
        degraded: ConditionStatus = "False",
    ) -> Decision:
        available = self.track(self.active)
        serving = available is not None and available.available > 0
        self.d.phase, self.d.reason, self.d.message, self.d.ready = phase, reason, message, ready
        self.d.conditions = [
            ("Available", "True" if serving else "False", reason),
            ("Progressing", progressing, reason),
            ("Degraded", degraded, reason),
        ]
        return self.d

    def event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.d.events.append(Event(type_, reason, message))

    def record(self, version: str, outcome: Outcome | Literal["Progressing"], message: str) -> None:
        """Open (outcome Progressing) or close the history record of ``version``."""
        history = list(self.s.history or [])
        if history and history[0].version == version and history[0].outcome == "Progressing":
            start = history[0].start_time
            history = history[1:]
        else:
            start = self.s.rollout_start_time or self.now
        finish = None if outcome == "Progressing" else self.now
        entry = RolloutRecord(
            version=version, outcome=outcome, start_time=start, finish_time=finish, message=message
        )
        self.s.history = [entry, *history][: self.spec.history_limit]

    def end_rollout(self) -> None:
        s = self.s
        s.canary_version = None
        s.current_step_index = None
        s.canary_weight = None
        s.approved = None
        s.pause_start_time = None
        s.rollout_start_time = None
        s.progress_time = None

    def progressed(self) -> None:
        self.s.progress_time = self.now

    def frozen(self, target: str) -> Decision | None:
        """While paused by a person the children stay as they are and nothing advances."""
        if not self.s.paused:
            return None
        return self.say(
            "Paused", "PausedByUser", f"Paused by a person; resume to continue rolling out {target}"
        )

    # -- the machine -----------------------------------------------------------------------

    def run(self) -> Decision:
        s, target = self.s, self.inp.target
        if self.inp.command is not None:
            self.command(self.inp.command)
        if s.aborted_version is not None and (
            target != s.aborted_version or self.spec_changed_since_abort()
        ):
            s.aborted_version = s.aborted_generation = s.aborted_spec_hash = None
        if s.stable_version is None:
            return self.first(target)
        if target is None or target == s.stable_version:
            return self.steady(lost=target is None)
        if target == s.aborted_version:
            return self.aborted()
        if s.canary_version != target:
            if s.paused:
                return self.held(target)
            if self.start(target):
                return self.d
        if not s.paused and self.deadline_passed():
            return self.abort(
                "ProgressDeadlineExceeded",
                f"{target} made no progress within {self.spec.progress_deadline_seconds}s",
            )
        strategy = self.spec.strategy
        if strategy.blue_green is not None:
            return self.blue_green(target)
        if strategy.canary is not None:
            return self.canary(target, strategy.canary.steps)
        if strategy.experiment is not None:
            return run_experiment(self, target, strategy.experiment)
        return self.replace(target)

    def command(self, cmd: Command) -> None:
        s = self.s
        s.last_command = cmd.raw
        in_progress = s.canary_version is not None
        if not cmd.known:
            self.event("Warning", "UnknownCommand", f"Ignored unknown command {cmd.raw!r}")
            return
        self.event("Normal", "Command", f"Acting on {cmd.verb}")
        if cmd.verb == "pause":
            s.paused = True
        elif cmd.verb == "resume":
            s.paused = None
            if in_progress:
                self.progressed()
                self.resume_waits()
        elif cmd.verb == "retry":
            s.aborted_version = s.aborted_generation = s.aborted_spec_hash = None
        elif not in_progress:
            return
        elif cmd.verb == "abort":
            self.abort("AbortedByUser", f"{s.canary_version} aborted by a person")
        elif cmd.verb in ("promote", "promote-full"):
            self.promote(full=cmd.verb == "promote-full")

    def spec_changed_since_abort(self) -> bool:
        s = self.s
        if s.aborted_spec_hash is not None:
            return s.aborted_spec_hash != spec_hash(self.dep)
        return s.aborted_generation != self.dep.metadata.generation  # aborted before the hash

    def resume_waits(self) -> None:
        """``resume`` ends an indefinite pause step and reruns an inconclusive analysis."""
        s = self.s
        s.analysis_runs = [r for r in s.analysis_runs or [] if r.phase != "Inconclusive"]
        if s.shadow is not None and s.shadow.phase == "Inconclusive":
            s.shadow = None  # the shadow step mirrors again
        step = self.current_step()
        if step is not None and step.pause is not None and step.pause.duration_seconds is None:
            self.next_step()

    def promote(self, *, full: bool) -> None:
        s = self.s
        s.approved = True
        s.analysis_runs = [runs.skipped(r, "promoted by a person") for r in s.analysis_runs or []]
        canary = self.spec.strategy.canary
        if canary is not None:
            if full:
                s.current_step_index = len(canary.steps)
                s.pause_start_time = None
                self.progressed()
            elif self.current_step() is not None:
                self.next_step()

    def current_step(self) -> CanaryStep | None:
        canary = self.spec.strategy.canary
        index = self.s.current_step_index
        if canary is None or index is None or index >= len(canary.steps):
            return None
        return canary.steps[index]

    def next_step(self) -> None:
        self.s.current_step_index = (self.s.current_step_index or 0) + 1
        self.s.pause_start_time = None
        self.progressed()

    def deadline_passed(self) -> bool:
        s = self.s
        if s.progress_time is None:
            return False
        step = self.current_step()
        if step is not None and step.pause is not None and step.pause.duration_seconds is not None:
            return False  # a timed pause ends by itself
        if waiting_for_promotion(s.experiment, self.spec.strategy.experiment):
            return False  # a person decides, as for a pause step
        deadline = s.progress_time + timedelta(seconds=self.spec.progress_deadline_seconds)
        if self.now >= deadline:
            return True
        self.d.wake_in((deadline - self.now).total_seconds())
        return False

    # -- no stable version yet ---------------------------------------------------------------

    def first(self, target: str | None) -> Decision:
        s = self.s
        if target is None:
            return self.d  # the caller explains why nothing can be served
        self.d.colors[self.active] = Want(target, self.n)
        self.d.colors[self.idle] = None
        if settled(self.track(self.active), target, self.n):
            s.stable_version = target
            self.record(target, "Promoted", "First version")
            self.end_rollout()
            self.event("Normal", "Promoted", f"Now serving {target}")
            return self.healthy()
        if s.rollout_start_time is None:
            s.rollout_start_time = s.progress_time = self.now
            self.record(target, "Progressing", "First version")
        track = self.track(self.active)
        if (track is not None and track.deadline_exceeded) or self.deadline_passed():
            return self.say(
                "Degraded",
                "ProgressDeadlineExceeded",
                f"{target} made no progress within {self.spec.progress_deadline_seconds}s",
                progressing="False",
                degraded="True",
            )
        return self.say("Progressing", "RollingOut", f"Starting {target} on {self.n} pod(s)")

    # -- nothing to roll out ------------------------------------------------------------------

    def steady(self, *, lost: bool) -> Decision:
        s = self.s
        stable = s.stable_version
        assert stable is not None
        if s.canary_version is not None and not lost:
            cancelled = s.canary_version
            self.record(cancelled, "RolledBack", f"The spec went back to {stable}")
            self.end_rollout()
            s.analysis_runs = []
            self.event(
                "Normal", "RolledBack", f"Rollout of {cancelled} cancelled: back to {stable}"
            )
        self.d.colors[self.active] = Want(stable, self.n)
        self.keep_or_scale_down_idle()
        free = self.idle in self.d.colors and self.d.colors[self.idle] is None
        if self.spec.shadow is not None and not lost and free:
            standalone_shadow(self, self.spec.shadow)
        elif self.spec.shadow is None:
            s.shadow = stopped_shadow(s.shadow, "spec.shadow was removed")
        if lost and s.canary_version is not None:
            # The version being rolled out vanished: finish nothing, keep serving stable.
            self.record(s.canary_version, "Aborted", "The new version is no longer available")
            self.end_rollout()
        if lost:
            return self.say(
                "Degraded",
                "TargetUnavailable",
                f"Still serving {stable}",
                progressing="False",
                degraded="True",
            )
        return self.healthy()

    def keep_or_scale_down_idle(self) -> None:
        s = self.s
        if s.scale_down_time is not None and self.now < s.scale_down_time:
            self.d.wake_in((s.scale_down_time - self.now).total_seconds())
            return  # the previous version stays warm for a fast rollback
        s.scale_down_time = None
        self.d.colors[self.idle] = None

    def healthy(self) -> Decision:
        stable = self.s.stable_version
        if self.s.paused:
            return self.say(
                "Paused",
                "PausedByUser",
                f"Serving {stable}; paused by a person, new versions wait for resume",
                ready="True",
                progressing="False",
            )
        return self.say(
            "Healthy",
            "RolloutComplete",
            f"Serving {stable} on {self.n} replica(s)",
            ready="True",
            progressing="False",
        )

    def held(self, target: str) -> Decision:
        self.d.colors[self.active] = Want(self.s.stable_version or target, self.n)
        self.keep_or_scale_down_idle()
        return self.say(
            "Paused",
            "PausedByUser",
            f"Serving {self.s.stable_version}; {target} waits until the Deployment is resumed",
            ready="True",
            progressing="False",
        )

    def aborted(self) -> Decision:
        s = self.s
        assert s.stable_version is not None  # only reached once a version has been served
        self.d.colors[self.active] = Want(s.stable_version, self.n)
        self.d.colors[self.idle] = None
        last = next((h for h in s.history or [] if h.version == s.aborted_version), None)
        why = f": {last.message}" if last and last.message else ""
        return self.say(
            "Aborted",
            "RolloutAborted",
            f"Serving {s.stable_version}; the rollout of {s.aborted_version} was aborted{why}. "
            "Change the spec or send retry to try again",
            progressing="False",
            degraded="True",
        )

    # -- starting, aborting, promoting ------------------------------------------------------

    def start(self, target: str) -> bool:
        """Begin rolling out ``target``; True when it could be finished at once (warm rollback)."""
        s = self.s
        if s.canary_version is not None:
            self.record(s.canary_version, "Superseded", f"Replaced by {target}")
            self.event("Normal", "Superseded", f"{s.canary_version} superseded by {target}")
        self.end_rollout()
        s.analysis_runs = []
        s.experiment = None
        s.shadow = stopped_shadow(s.shadow, f"the rollout of {target} needs the idle color")
        s.canary_version = target
        s.rollout_start_time = s.progress_time = self.now
        s.current_step_index = 0 if self.spec.strategy.canary is not None else None
        self.record(target, "Progressing", f"Rolling out over {s.stable_version}")
        self.event("Normal", "RolloutStarted", f"Rolling out {target} over {s.stable_version}")
        idle = self.track(self.idle)
        warm = s.scale_down_time is not None and self.now < s.scale_down_time
        if warm and settled(idle, target, self.n):
            self.switch("RolledBack", f"Switched back to {target}, still warm")
            return True
        return False

    def abort(self, reason: str, message: str) -> Decision:
        s = self.s
        version = s.canary_version
        assert version is not None
        self.record(version, "Aborted", message)
        self.event("Warning", "RolloutAborted", message)
        s.experiment = finished(s.experiment, promoted=False, now=self.now)
        step = s.current_step_index
        self.end_rollout()
        s.current_step_index = step  # kept, so the status still shows where it stopped
        s.aborted_version = version
        s.aborted_generation = self.dep.metadata.generation
        s.aborted_spec_hash = spec_hash(self.dep)
        s.scale_down_time = None
        self.d.colors[self.active] = Want(s.stable_version or version, self.n)
        self.d.colors[self.idle] = None
        self.d.weight = 0
        return self.say("Aborted", reason, message, progressing="False", degraded="True")

    def switch(self, outcome: Outcome, message: str) -> Decision:
        """Make the idle color, running the new version at full size, the active one."""
        s = self.s
        version = s.canary_version
        assert version is not None
        previous, old = s.stable_version, self.active
        self.record(version, outcome, message)
        self.event("Normal", outcome, f"Now serving {version} (was {previous})")
        s.experiment = finished(s.experiment, promoted=True, now=self.now)
        self.end_rollout()
        s.stable_version = version
        s.active_color = other(old)
        self.d.colors[self.active] = Want(version, self.n)
        blue_green = self.spec.strategy.blue_green
        delay = blue_green.scale_down_delay_seconds if blue_green else 0
        if delay and previous:
            s.scale_down_time = self.now + timedelta(seconds=delay)
            self.d.colors[old] = Want(previous, self.n)
            self.d.wake_in(delay)
        else:
            s.scale_down_time = None
            self.d.colors[old] = None
        self.d.weight = 0
        return self.healthy()

    # -- strategies -------------------------------------------------------------------------

    def replace(self, target: str) -> Decision:
        """No strategy: the active color's pods roll over to the new version in place."""
        self.d.colors[self.active] = Want(target, self.n)
        self.d.colors[self.idle] = None
        if (paused := self.frozen(target)) is not None:
            return paused
        if settled(self.track(self.active), target, self.n):
            s = self.s
            self.record(target, "Promoted", f"Replaced {s.stable_version}")
            self.event("Normal", "Promoted", f"Now serving {target} (was {s.stable_version})")
            s.stable_version = target
            self.end_rollout()
            return self.healthy()
        return self.say(
            "Progressing", "RollingOut", f"Replacing {self.s.stable_version} by {target}"
        )

    def blue_green(self, target: str) -> Decision:
        s, bg = self.s, self.spec.strategy.blue_green
        assert bg is not None
        stable = s.stable_version or target
        preview = min(bg.preview_replicas or self.n, self.n) if self.n else 0
        self.d.colors[self.active] = Want(stable, self.n)
        promoting = bool(s.approved) or bg.auto_promote
        size = self.n if promoting else preview
        self.d.colors[self.idle] = Want(target, max(size, preview))
        if (paused := self.frozen(target)) is not None:
            return paused
        if not settled(self.track(self.idle), target, preview):
            return self.say(
                "Progressing", "RollingOut", f"Starting {preview} preview pod(s) of {target}"
            )
        if bg.pre_promotion_analysis and self.spec.analysis is not None:
            verdict = self.analyse(PRE_PROMOTION, self.spec.analysis.count)
            if verdict is not None:
                return verdict
        if not promoting:
            if s.pause_start_time is None:
                s.pause_start_time = self.now
            return self.say(
                "Paused",
                "WaitingForPromotion",
                f"{target} is Ready behind the preview Service; promote to switch",
            )
        if not settled(self.track(self.idle), target, self.n):
            return self.say("Progressing", "RollingOut", f"Scaling {target} to {self.n} pod(s)")
        return self.switch("Promoted", "Blue-green switch")

    def canary(self, target: str, steps: list[CanaryStep]) -> Decision:
        s = self.s
        stable = s.stable_version or target
        routing = self.spec.traffic_routing
        exact = routing is not None and routing.http_route is not None
        for _ in range(len(steps) + 1):
            index = s.current_step_index or 0
            weight = s.canary_weight or 0
            canary_pods, stable_pods = self.pods_for(weight, exact=exact)
            self.d.colors[self.active] = Want(stable, stable_pods)
            self.d.colors[self.idle] = Want(target, canary_pods)
            # A canary track that is (again) starting up gets no traffic until a pod is Ready,
            # whatever weight the rollout had reached, e.g. when a paused rollout's target
            # comes back after another version had been asked for meanwhile.
            track = self.track(self.idle)
            up = track is not None and track.version == target and track.ready > 0
            self.d.weight = weight if up else 0
            if (paused := self.frozen(target)) is not None:
                return paused
            if exact and self.inp.route_problem:
                return self.say("Progressing", "RouteNotReady", self.inp.route_problem)
            if index >= len(steps):
                return self.finish_canary(target)
            step, where = steps[index], f"step {index + 1}/{len(steps)}"
            if step.set_weight is not None:
                wanted, _ = self.pods_for(step.set_weight, exact=exact)
                self.d.colors[self.idle] = Want(target, max(wanted, canary_pods))
                if not settled(self.track(self.idle), target, wanted):
                    return self.say(
                        "Progressing",
                        "RollingOut",
                        f"{where}: starting {wanted} pod(s) of {target} for {step.set_weight}%",
                    )
                s.canary_weight = step.set_weight
                self.next_step()
                continue
            if step.pause is not None:
                if s.pause_start_time is None:
                    s.pause_start_time = self.now
                duration = step.pause.duration_seconds
                if duration is None:
                    return self.say(
                        "Paused", "PausedByStep", f"{where}: paused at {weight}% until promoted"
                    )
                end = s.pause_start_time + timedelta(seconds=duration)
                if self.now < end:
                    self.d.wake_in((end - self.now).total_seconds())
                    return self.say(
                        "Paused", "PausedByStep", f"{where}: paused at {weight}% for {duration}s"
                    )
                self.next_step()
                continue
            if step.shadow is not None:
                verdict = shadow_step(self, target, step.shadow, index, where)
                if verdict is not None:
                    return verdict
                self.next_step()
                continue
            analysis_step = step.analysis
            assert analysis_step is not None
            count = analysis_step.count or (self.spec.analysis.count if self.spec.analysis else 1)
            verdict = self.analyse(f"step-{index + 1}", count)
            if verdict is not None:
                return verdict
            self.next_step()
        return self.finish_canary(target)

    def pods_for(self, weight: int, *, exact: bool) -> tuple[int, int]:
        if exact:  # the route sets the split; pods only need to carry their share
            canary = 0 if weight <= 0 else max(1, math.ceil(self.n * weight / 100))
            return canary, self.n
        return split_replicas(self.n, weight)

    def finish_canary(self, target: str) -> Decision:
        s = self.s
        self.d.colors[self.idle] = Want(target, self.n)
        if not settled(self.track(self.idle), target, self.n):
            return self.say(
                "Progressing", "RollingOut", f"All steps done: scaling {target} to {self.n} pod(s)"
            )
        s.canary_weight = 100
        return self.switch("Promoted", "Canary promoted")

    def analyse(self, name: str, count: int) -> Decision | None:
        """Advance the analysis run ``name``; a Decision when the rollout must wait or stop."""
        s, analysis = self.s, self.spec.analysis
        if analysis is None:
            return None
        existing = next((r for r in s.analysis_runs or [] if r.name == name), None)
        run = existing or runs.new_run(name, self.now)
        before = len(run.measurements)
        run, _ = runs.advance(run, analysis, count, self.inp.sample, self.now)
        s.analysis_runs = [
            *(r for r in s.analysis_runs or [] if r.name != name),
            run,
        ][-20:]
        if len(run.measurements) != before or existing is None:
            self.progressed()
        if run.phase == "Successful":
            return None
        if run.phase == "Failed":
            self.event("Warning", "AnalysisFailed", f"{name}: {run.message}")
            return self.abort("AnalysisFailed", f"Analysis {name} failed: {run.message}")
        if run.phase == "Inconclusive":
            return self.say(
                "Paused",
                "AnalysisInconclusive",
                f"Analysis {name} inconclusive ({run.message}); resume to measure again, "
                "promote to go on",
            )
        self.d.wake_in(runs.next_measurement_in(run, analysis, self.now))
        return self.say(
            "Progressing", "AnalysisRunning", f"Analysis {name}: {run.message or 'measuring'}"
        )


def with_state(status: DeploymentStatus, state: State) -> DeploymentStatus:
    return status.model_copy(update=state.update())
