"""Shadows inside the rollout machine: a canary's ``shadow`` step, and a standalone shadow while
no rollout needs the idle color.

Either way the candidate runs on the idle color behind ``<name>-shadow``, a Service no user
calls, and the stable color's pods copy requests to it (their template carries the shadow's
environment, so they roll over when a shadow starts and again when it ends). The stable Service
keeps selecting the stable color only. The comparison and its verdicts are ``logic.shadow``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from modelwerk.api.v1alpha1.deployment import Deployment
from modelwerk.api.v1alpha1.shadow import Shadow, ShadowStatus, ShadowStep
from modelwerk.builders.shadow import ShadowRole
from modelwerk.logic import shadow
from modelwerk.logic.tracks import Want, settled

if TYPE_CHECKING:
    from modelwerk.logic.rollout import Decision, _Machine

STANDALONE_MIN_ROWS = 100


def shadow_step(
    m: _Machine, target: str, spec: ShadowStep, index: int, where: str
) -> Decision | None:
    """Advance the canary's shadow step; None once it passed."""
    s = m.s
    stable = s.stable_version or target
    out = _advance(
        m,
        shadow.ShadowInput(
            version=target,
            stable=stable,
            step=index,
            checks=spec.checks,
            min_rows=spec.min_rows,
            interval=spec.interval_seconds,
            max_duration=spec.max_duration_seconds,
            status=s.shadow,
            sides_up=_sides_up(m, stable, target, spec.replicas),
            figures=m.inp.shadow_figures,
            now=m.now,
        ),
        stable,
        target,
        spec.percent,
        spec.replicas,
    )
    m.d.weight = 0
    if out.action == "pass":
        m.event("Normal", "ShadowPassed", f"{where}: {out.message}")
        m.d.shadow_service = False  # the next step sets the colors anew
        return None
    if out.action == "fail":
        m.event("Warning", "ShadowFailed", f"{where}: {out.message}")
        m.d.shadow_service = False
        return m.abort("ShadowFailed", f"Shadow {where} failed: {out.message}")
    if out.action == "inconclusive":
        return m.say(
            "Paused",
            "ShadowInconclusive",
            f"{where}: shadow {out.message}; resume to mirror again, promote to go on",
        )
    return m.say("Progressing", "Shadowing", f"{where}: shadow of {target}: {out.message}")


def standalone(m: _Machine, spec: Shadow) -> None:
    """Mirror ``spec.modelVersion`` while the Deployment is steady and the idle color is free."""
    s = m.s
    stable = s.stable_version
    if stable is None or spec.model_version == stable:
        s.shadow = stopped(s.shadow, "the candidate is the stable version")
        return
    _advance(
        m,
        shadow.ShadowInput(
            version=spec.model_version,
            stable=stable,
            step=None,
            checks=spec.checks,
            min_rows=STANDALONE_MIN_ROWS,
            interval=spec.interval_seconds,
            max_duration=None,
            status=s.shadow,
            sides_up=_sides_up(m, stable, spec.model_version, spec.replicas),
            figures=m.inp.shadow_figures,
            now=m.now,
        ),
        stable,
        spec.model_version,
        spec.percent,
        spec.replicas,
    )


def _advance(
    m: _Machine,
    inp: shadow.ShadowInput,
    stable: str,
    candidate: str,
    percent: int,
    replicas: int,
) -> shadow.ShadowOutcome:
    out = shadow.step(inp)
    m.s.shadow = out.status
    if out.progressed:
        m.progressed()
    if out.wake_in is not None:
        m.d.wake_in(out.wake_in)
    m.d.colors[m.active] = Want(stable, m.n, shadow=ShadowRole(candidate, percent))
    m.d.colors[m.idle] = Want(candidate, replicas)
    m.d.shadow_service = True
    return out


def _sides_up(m: _Machine, stable: str, candidate: str, replicas: int) -> bool:
    return settled(m.track(m.active), stable, m.n) and settled(m.track(m.idle), candidate, replicas)


def stopped(status: ShadowStatus | None, why: str) -> ShadowStatus | None:
    """A standalone shadow that ends (its spec removed, or a rollout needs the idle color)."""
    if status is None or status.step is not None or status.phase == "Stopped":
        return status
    return status.model_copy(update={"phase": "Stopped", "message": why})


def look_interval(dep: Deployment) -> int | None:
    """Seconds between readings of the shadow in progress, if one is running."""
    status = dep.status.shadow
    if status is None or status.phase != "Running":
        return None
    if status.step is None:
        return dep.spec.shadow.interval_seconds if dep.spec.shadow else None
    canary = dep.spec.strategy.canary
    if canary is None or status.step >= len(canary.steps):
        return None
    step = canary.steps[status.step].shadow
    return step.interval_seconds if step else None


def wants_figures(dep: Deployment, now: datetime) -> bool:
    interval = look_interval(dep)
    return (
        interval is not None
        and not dep.status.paused
        and shadow.look_due(dep.status.shadow, interval, now)
    )
