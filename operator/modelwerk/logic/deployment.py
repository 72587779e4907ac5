"""Decisions for modelwerk Deployments: which version to serve, and whether it is served.

This version serves the resolved ModelVersion on one ``stable`` track and replaces it in place
when the target changes (the apps/v1 rolling update keeps full capacity: maxUnavailable 0).
The blue-green and canary state machine builds on these tracks; until it exists a Deployment
that asks for either says so in its Progressing condition instead of silently pretending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelwerk.api.conditions import ConditionStatus
from modelwerk.api.v1alpha1.deployment import Deployment, Endpoints, RolloutRecord
from modelwerk.api.v1alpha1.model_version import ModelVersion
from modelwerk.builders.serving import build_service, build_track, selector
from modelwerk.builders.workload import WorkloadConfig
from modelwerk.logic.plan import Event, Plan
from modelwerk.logic.status import with_ready

STABLE = "stable"
AVAILABLE = "Available"
PROGRESSING = "Progressing"
WAIT_FOR_MODEL_SECONDS = 30.0


@dataclass(frozen=True)
class TrackState:
    """What an apps/v1 Deployment of one track reports."""

    version: str | None
    replicas: int
    updated: int
    ready: int
    available: int
    current: bool
    """Its controller has seen the latest spec (status.observedGeneration)."""
    deadline_exceeded: bool


@dataclass(frozen=True)
class ObservedDeployment:
    versions: list[ModelVersion]
    """ModelVersions in the Deployment's namespace."""
    tracks: dict[str, TrackState]


def resolve(dep: Deployment, versions: list[ModelVersion]) -> tuple[ModelVersion | None, str, str]:
    """The ModelVersion to serve, or None with the reason and a message saying why not."""
    spec = dep.spec
    ready = [v for v in versions if v.status.phase == "Ready"]
    if spec.model_version is not None:
        pinned = next((v for v in versions if v.metadata.name == spec.model_version), None)
        if pinned is None:
            return None, "ModelVersionNotFound", f"ModelVersion {spec.model_version} does not exist"
        if pinned.status.phase != "Ready":
            why = pinned.status.message or pinned.status.phase or "not verified yet"
            return (
                None,
                "ModelVersionNotReady",
                f"ModelVersion {spec.model_version} is not Ready: {why}",
            )
        return pinned, "Resolved", f"Serving the pinned ModelVersion {pinned.metadata.name}"
    chooser = spec.model_selector
    assert chooser is not None
    candidates = [
        v for v in ready
        if v.spec.model == chooser.model and (chooser.stage is None or v.spec.stage == chooser.stage)
    ]  # fmt: skip
    if not candidates:
        stage = f" in stage {chooser.stage}" if chooser.stage else ""
        return None, "NoReadyVersion", f"No Ready ModelVersion of model {chooser.model}{stage}"
    newest = max(candidates, key=lambda v: v.spec.version)
    return newest, "Resolved", f"Serving the newest Ready version of {chooser.model}"


def strategy_name(dep: Deployment) -> str:
    strategy = dep.spec.strategy
    return "BlueGreen" if strategy.blue_green else "Canary" if strategy.canary else "Replace"


def reconcile_deployment(
    dep: Deployment, observed: ObservedDeployment, *, now: datetime, config: WorkloadConfig
) -> Plan:
    meta, spec, status = dep.metadata, dep.spec, dep.status
    target, reason, message = resolve(dep, observed.versions)
    stable = observed.tracks.get(STABLE)
    serving = next(
        (v for v in observed.versions if stable and v.metadata.name == stable.version), None
    )
    # A version that can no longer be resolved (deleted, failed) keeps serving what serves now:
    # taking a model offline is a decision for a person, not a side effect.
    effective = target or serving
    apply: list[dict[str, Any]] = []
    if effective is not None:
        apply = [
            build_track(dep, effective, STABLE, spec.replicas, config),
            build_service(dep, meta.name, STABLE),
        ]
    rolled_out = (
        stable is not None
        and effective is not None
        and stable.version == effective.metadata.name
        and stable.current
        and stable.updated >= spec.replicas
        and stable.available >= spec.replicas
    )
    available = stable is not None and stable.available > 0
    stable_version = effective.metadata.name if rolled_out and effective else status.stable_version
    model = (
        effective.spec.model
        if effective
        else (spec.model_selector.model if spec.model_selector else None)
    )
    unsupported = strategy_name(dep) != "Replace"
    note = (
        f" ({strategy_name(dep)} rollouts are not implemented yet: versions are replaced in place)"
        if unsupported
        else ""
    )

    conditions: list[tuple[str, ConditionStatus, str]] = []
    events: list[Event] = []
    requeue = None
    if effective is None:
        phase, ready, why, text = "Progressing", "False", reason, message
        conditions = [(AVAILABLE, "False", reason), (PROGRESSING, "False", reason)]
        requeue = WAIT_FOR_MODEL_SECONDS
    elif stable is not None and stable.deadline_exceeded and not rolled_out:
        text = (
            f"{effective.metadata.name} made no progress within {spec.progress_deadline_seconds}s"
        )
        phase, ready, why = "Degraded", "False", "ProgressDeadlineExceeded"
        conditions = [(AVAILABLE, "True" if available else "False", "ProgressDeadlineExceeded"),
                      (PROGRESSING, "False", "ProgressDeadlineExceeded")]  # fmt: skip
    elif not rolled_out:
        text = f"Rolling out {effective.metadata.name}{note}"
        phase, ready, why = "Progressing", "False", "RollingOut"
        conditions = [(AVAILABLE, "True" if available else "False", "RollingOut"),
                      (PROGRESSING, "True", "RollingOut")]  # fmt: skip
    elif target is None:
        text = f"Still serving {effective.metadata.name}: {message}"
        phase, ready, why = "Degraded", "False", reason
        conditions = [(AVAILABLE, "True", "Serving"), (PROGRESSING, "False", reason)]
    else:
        text = f"Serving {effective.metadata.name} on {spec.replicas} replica(s){note}"
        phase, ready, why = "Healthy", "True", "Serving"
        conditions = [(AVAILABLE, "True", "Serving"), (PROGRESSING, "False", "RolloutComplete")]

    history = list(status.history or [])
    if stable_version and stable_version != status.stable_version:
        history = [
            RolloutRecord(version=stable_version, outcome="Promoted", finish_time=now,
                          message=f"Replaced {status.stable_version or 'nothing'}"),
            *history,
        ][: spec.history_limit]  # fmt: skip
        events.append(Event("Normal", "Promoted", f"Now serving {stable_version}"))

    port = spec.service.port
    new = with_ready(
        status,
        ready,  # type: ignore[arg-type]
        why,
        text,
        phase=phase,
        generation=meta.generation,
        now=now,
        also=conditions,
        model=model,
        strategy=strategy_name(dep),
        stable_version=stable_version,
        canary_version=None,
        replicas=stable.replicas if stable else 0,
        ready_replicas=stable.ready if stable else 0,
        selector=",".join(f"{k}={v}" for k, v in selector(dep).items()),
        endpoints=Endpoints(stable=f"http://{meta.name}.{meta.namespace}.svc:{port}")
        if apply
        else None,
        history=history or None,
    )
    return Plan(status=new, apply=tuple(apply), events=tuple(events), requeue_after=requeue)
