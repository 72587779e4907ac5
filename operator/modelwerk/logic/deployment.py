"""Decisions for modelwerk Deployments: which version to serve, how it rolls out, what is
monitored.

The rollout itself is the state machine in ``logic.rollout``; the closed loop is
``logic.drift``, ``logic.live`` and ``logic.retraining``. This module resolves the target version, runs both, and turns
the outcome into children, a status and events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelwerk.api.conditions import set_condition
from modelwerk.api.v1alpha1.deployment import (
    Deployment,
    DeploymentStatus,
    Endpoints,
    MetricSample,
)
from modelwerk.api.v1alpha1.model_version import ModelVersion
from modelwerk.builders.experiment import arm_service_name
from modelwerk.builders.monitor import build_monitor, capture_of, monitor_name
from modelwerk.builders.serving import (
    build_service,
    build_track,
    canary_service_name,
    preview_service_name,
    track_name,
)
from modelwerk.builders.shadow import shadow_service_name
from modelwerk.builders.workload import WorkloadConfig
from modelwerk.logic.commands import pending_command
from modelwerk.logic.compatibility import (
    BACKEND_UNAVAILABLE,
    RECHECK_SECONDS,
    Refusal,
    backend_refusal,
    with_incompatibility,
)
from modelwerk.logic.drift import DRIFT_DETECTED, DriftDecision, DriftInput, decide_drift
from modelwerk.logic.experiment_figures import ExperimentFigures
from modelwerk.logic.live import CAPTURE_DEGRADED, LiveDecision, LiveInput, decide_live
from modelwerk.logic.plan import ObjectKey, Plan
from modelwerk.logic.retraining import (
    RETRAINING,
    RetrainingDecision,
    RetrainingInput,
    decide_retraining,
    drift_message,
)
from modelwerk.logic.rollout import (
    Decision,
    RolloutInput,
    decide,
    strategy_name,
    with_state,
)
from modelwerk.logic.routing import route_patch
from modelwerk.logic.scaling import scale_status
from modelwerk.logic.shadow import ShadowFigures
from modelwerk.logic.status import with_ready
from modelwerk.logic.tracks import TrackState, other

WAIT_FOR_MODEL_SECONDS = 30.0


@dataclass(frozen=True)
class ObservedDeployment:
    versions: list[ModelVersion]
    """ModelVersions in the Deployment's namespace."""
    tracks: dict[str, TrackState]
    """The color tracks that exist, by color."""
    services: frozenset[str] = frozenset()
    """Names of the Services of this Deployment that exist."""
    service_ips: Mapping[str, str] = field(default_factory=dict)
    """Their cluster IPs: pods reach the arm and shadow Services by IP (not every cluster
    resolves Service names, the e2e node among them)."""
    sample: MetricSample | str | None = None
    """Metrics of the idle color's pods, when an analysis needs them."""
    drift: DriftInput = field(default_factory=DriftInput)
    retraining: RetrainingInput = field(default_factory=RetrainingInput)
    """The runs, template and Dataset of the retraining policy, when there is one."""
    route: dict[str, Any] | None = None
    """The HTTPRoute named in trafficRouting, when it exists."""
    refusals: list[Refusal] = field(default_factory=list)
    """Serving pods that refused their model (another scikit-learn), read while a track is
    not fully ready."""
    live: LiveInput = field(default_factory=LiveInput)
    """What the aggregator and the serving pods said about capture, when read."""
    monitor: bool = False
    """The aggregator's apps/v1 Deployment exists."""
    figures: ExperimentFigures | str | None = None
    """Both arms' experiment figures, when a look is due."""
    shadow_figures: ShadowFigures | str | None = None
    """The stable pods' shadow counters, when a reading is due."""


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
        refused = backend_refusal(dep, pinned)
        if refused is not None:
            return None, BACKEND_UNAVAILABLE, refused
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
    refused = backend_refusal(dep, newest)
    if refused is not None:
        return None, BACKEND_UNAVAILABLE, refused
    return newest, "Resolved", f"Serving the newest Ready version of {chooser.model}"


def reconcile_deployment(
    dep: Deployment, observed: ObservedDeployment, *, now: datetime, config: WorkloadConfig
) -> Plan:
    meta, spec = dep.metadata, dep.spec
    target, reason, why = resolve(dep, observed.versions)
    route = _route(dep, observed.route)
    decision = decide(
        RolloutInput(
            dep=dep,
            target=target.metadata.name if target else None,
            tracks=observed.tracks,
            command=pending_command(meta.annotations, dep.status.last_command),
            sample=observed.sample,
            figures=observed.figures,
            shadow_figures=observed.shadow_figures,
            route_problem=route.problem,
            now=now,
        )
    )
    state = decision.state
    drift = decide_drift(dep, observed.drift, now)
    live = decide_live(dep, observed.live, now)
    retraining = decide_retraining(
        dep,
        observed.retraining,
        observed.versions,
        drifting=drift_message(dep, drift.condition),
        live=live.live,
        now=now,
    )
    apply, delete = _children(dep, observed, decision, config)

    phase, ready, status_reason, message = (
        decision.phase,
        decision.ready,
        decision.reason,
        decision.message,
    )
    requeue = _earliest(
        decision.requeue_after,
        drift.requeue_after,
        live.requeue_after,
        retraining.requeue_after,
    )
    conditions = decision.conditions
    if target is None and state.stable_version is None:
        phase, ready, status_reason, message = "Progressing", "False", reason, why
        conditions = [("Available", "False", reason), ("Progressing", "False", reason)]
        requeue = _earliest(requeue, WAIT_FOR_MODEL_SECONDS)
    elif target is None:
        message = f"{message}: {why}"

    served = next((v for v in observed.versions if v.metadata.name == state.stable_version), None)
    model = (
        served.spec.model
        if served
        else target.spec.model
        if target
        else spec.model_selector.model
        if spec.model_selector
        else None
    )
    scale = scale_status(dep, decision, observed.tracks)
    status = with_state(dep.status, state)
    status = with_ready(
        status,
        ready,
        status_reason,
        message,
        phase=phase,
        generation=meta.generation,
        now=now,
        also=conditions,
        model=model,
        strategy=strategy_name(dep),
        actual_weight=_actual_weight(dep, decision, observed.tracks),
        replicas=scale.replicas,
        ready_replicas=scale.ready,
        selector=scale.selector,
        endpoints=_endpoints(dep) if apply else dep.status.endpoints,
        drift=drift.drift,
    )
    status = _with_drift_condition(status, drift, meta.generation, now)
    status = _with_retraining(status, retraining, meta.generation, now)
    status = with_incompatibility(status, observed.refusals, generation=meta.generation, now=now)
    if any(t.ready < t.replicas for t in observed.tracks.values()):
        requeue = _earliest(requeue, RECHECK_SECONDS)
    status = _with_live(status, live, meta.generation, now)
    return Plan(
        status=status,
        apply=tuple(apply),
        delete=tuple(delete),
        patch=route.patches(dep, decision),
        create=tuple(retraining.create),
        events=(*decision.events, *drift.events, *live.events, *retraining.events),
        requeue_after=requeue,
    )


def _children(
    dep: Deployment, observed: ObservedDeployment, decision: Decision, config: WorkloadConfig
) -> tuple[list[dict[str, Any]], list[ObjectKey]]:
    meta, state = dep.metadata, decision.state
    by_name = {v.metadata.name: v for v in observed.versions}
    apply: list[dict[str, Any]] = []
    delete: list[ObjectKey] = []
    for color, want in decision.colors.items():
        if want is None:
            if color in observed.tracks:
                delete.append(
                    ObjectKey("apps/v1", "Deployment", meta.namespace, track_name(dep, color))
                )
            continue
        mv = by_name.get(want.version)
        if mv is not None:  # a deleted ModelVersion leaves its pods as they are
            apply.append(
                build_track(
                    dep,
                    mv,
                    color,
                    want.replicas,
                    config,
                    want.arm,
                    want.shadow,
                    observed.service_ips,
                )
            )
    if not apply and not observed.tracks:
        return apply, delete
    capture = capture_of(dep)
    if capture is not None:
        apply.append(build_monitor(dep, capture, config))
    elif observed.monitor:
        delete.append(ObjectKey("apps/v1", "Deployment", meta.namespace, monitor_name(dep)))
    active = state.active_color
    rolling = state.canary_version is not None
    apply.append(
        build_service(dep, meta.name, None if _split(dep, decision) else active, public=True)
    )
    side = other(active) if rolling else active
    experimenting = dep.spec.strategy.experiment is not None and rolling
    wanted = {
        preview_service_name(dep): (dep.spec.strategy.blue_green is not None, side),
        canary_service_name(dep): (dep.spec.strategy.canary is not None, side),
        arm_service_name(dep, "a"): (experimenting, active),
        arm_service_name(dep, "b"): (experimenting, other(active)),
        shadow_service_name(dep): (decision.shadow_service, other(active)),
    }
    for name, (needed, track) in wanted.items():
        if needed:
            apply.append(build_service(dep, name, track))
        elif name in observed.services:
            delete.append(ObjectKey("v1", "Service", meta.namespace, name))
    return apply, delete


@dataclass(frozen=True)
class _Route:
    body: dict[str, Any] | None
    problem: str | None

    def patches(
        self, dep: Deployment, decision: Decision
    ) -> tuple[tuple[ObjectKey, dict[str, Any]], ...]:
        if self.body is None or self.problem:
            return ()
        patch, _ = route_patch(
            self.body,
            dep.metadata.name,
            canary_service_name(dep),
            dep.spec.service.port,
            decision.weight if decision.state.canary_version else 0,
        )
        if patch is None:
            return ()
        key = ObjectKey(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            dep.metadata.namespace,
            self.body["metadata"]["name"],
        )
        return ((key, patch),)


def _route(dep: Deployment, body: dict[str, Any] | None) -> _Route:
    routing = dep.spec.traffic_routing
    if routing is None or routing.http_route is None:
        return _Route(None, None)
    if body is None:
        return _Route(None, f"HTTPRoute {routing.http_route.name} not found")
    _, problem = route_patch(
        body, dep.metadata.name, canary_service_name(dep), dep.spec.service.port, 0
    )
    return _Route(body, problem)


def _endpoints(dep: Deployment) -> Endpoints:
    meta, port = dep.metadata, dep.spec.service.port

    def url(name: str) -> str:
        return f"http://{name}.{meta.namespace}.svc:{port}"

    strategy = dep.spec.strategy
    return Endpoints(
        stable=url(meta.name),
        preview=url(preview_service_name(dep)) if strategy.blue_green else None,
        canary=url(canary_service_name(dep)) if strategy.canary else None,
    )


def _split(dep: Deployment, decision: Decision) -> bool:
    """The stable Service selects both colors: without an HTTPRoute, the canary's share of the
    traffic comes from the replica ratio."""
    routing = dep.spec.traffic_routing
    if decision.select_both:
        return True
    return decision.weight > 0 and (routing is None or routing.http_route is None)


def _actual_weight(
    dep: Deployment, decision: Decision, tracks: dict[str, TrackState]
) -> int | None:
    """The share of traffic really reaching the new version."""
    state = decision.state
    if state.canary_version is None:
        return None
    if decision.experiment_percent is not None:
        return decision.experiment_percent  # assigned by the pods, whatever the replica ratio
    routing = dep.spec.traffic_routing
    if routing is not None and routing.http_route is not None:
        return decision.weight
    if decision.weight == 0:
        return 0
    idle, active = tracks.get(other(state.active_color)), tracks.get(state.active_color)
    new = idle.ready if idle and idle.version == state.canary_version else 0
    old = active.ready if active else 0
    return round(100 * new / (new + old)) if new + old else 0


def _with_drift_condition(
    status: DeploymentStatus, drift: DriftDecision, generation: int, now: datetime
) -> DeploymentStatus:
    if drift.condition is None:
        return status
    state, reason, message = drift.condition
    conditions = set_condition(
        status.conditions, DRIFT_DETECTED, state, reason, message, now=now, generation=generation
    )
    return status.model_copy(update={"conditions": conditions})


def _with_retraining(
    status: DeploymentStatus, retraining: RetrainingDecision, generation: int, now: datetime
) -> DeploymentStatus:
    conditions = status.conditions
    if retraining.condition is not None:
        state, reason, message = retraining.condition
        conditions = set_condition(
            conditions, RETRAINING, state, reason, message, now=now, generation=generation
        )
    elif any(c.type == RETRAINING for c in conditions):
        conditions = [c for c in conditions if c.type != RETRAINING]
    drift = status.drift
    run = retraining.status.last_run if retraining.status else None
    if retraining.started and run is not None and drift is not None:
        # kept for clients that read status.drift (kubectl modelwerk before status.retraining)
        drift = drift.model_copy(
            update={"last_retraining_job": run.training_job, "last_retraining_time": run.time}
        )
    return status.model_copy(
        update={"conditions": conditions, "retraining": retraining.status, "drift": drift}
    )


def _with_live(
    status: DeploymentStatus, live: LiveDecision, generation: int, now: datetime
) -> DeploymentStatus:
    conditions = status.conditions
    if live.remove_condition:
        conditions = [c for c in conditions if c.type != CAPTURE_DEGRADED]
    elif live.condition is not None:
        state, reason, message = live.condition
        conditions = set_condition(
            conditions, CAPTURE_DEGRADED, state, reason, message, now=now, generation=generation
        )
    return status.model_copy(
        update={"conditions": conditions, "live_metrics": live.live, "capture": live.capture}
    )


def _earliest(*delays: float | None) -> float | None:
    present = [d for d in delays if d is not None]
    return min(present) if present else None
