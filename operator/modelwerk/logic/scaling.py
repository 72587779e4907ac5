"""What the scale subresource reports, so that an autoscaler (HPA, KEDA) counts capacity right.

An HPA reads ``status.selector``, averages its metric over the Ready pods that selector
matches, and writes ``ceil(ready pods * usage / target)`` to ``spec.replicas``. So the
selector must match exactly the pods that carry the production traffic ``spec.replicas``
is meant to size:

============================================  ==========================================
state                                         ``status.selector`` / ``status.replicas``
============================================  ==========================================
steady, replace, blue-green (incl. preview    the active color only: a preview or a warm
and the warm previous color after a switch)   previous color gets no production traffic
canary with traffic on the new version        both colors: the canary's pods serve their
(replica ratio or HTTPRoute weights)          share of production requests
canary whose pods have no traffic yet         the active color only
============================================  ==========================================

Q: Why count canary pods, rather than keep them out as "not stable capacity"?
A: Because they answer production requests. With replica-ratio routing the canary's pods are
   carved out of ``spec.replicas`` (``split_replicas``), so stable + canary pods are the
   capacity the HPA sized; leaving the canary out would make the HPA see fewer pods carrying
   all the load and over-scale. With an HTTPRoute the canary pods come on top of
   ``spec.replicas``, serve ``weight`` % of the requests, and counting them keeps the average
   honest (the HPA then settles a little lower, consistently). A preview, in contrast, is idle
   until promoted: counting it would dilute the average and under-scale the live version.

Whatever the HPA writes to ``spec.replicas`` is picked up by the next reconcile: the canary
split, the blue-green preview (``previewReplicas`` or ``spec.replicas``, capped by it) and the
switch size are all derived from ``spec.replicas`` on every pass, never stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelwerk.api.v1alpha1.deployment import Deployment
from modelwerk.builders.serving import selector
from modelwerk.logic.rollout import Decision
from modelwerk.logic.tracks import COLORS, TrackState


@dataclass(frozen=True)
class ScaleStatus:
    replicas: int
    """Pods of the colors ``selector`` matches."""
    ready: int
    selector: str


def production_colors(dep: Deployment, decision: Decision) -> tuple[str, ...]:
    """The colors whose pods answer production requests after this decision.

    >>> from modelwerk.logic.rollout import State
    >>> from modelwerk.api.v1alpha1 import Deployment
    >>> dep = Deployment.from_k8s({"metadata": {"name": "d", "namespace": "n"},
    ...     "spec": {"modelVersion": "m-v2", "strategy": {"canary": {"steps": []}}}})
    >>> state = State.of(dep.status)
    >>> state.canary_version = "m-v2"
    >>> production_colors(dep, Decision(state=state, weight=0))
    ('blue',)
    >>> production_colors(dep, Decision(state=state, weight=25))
    ('blue', 'green')
    """
    state = decision.state
    canary = dep.spec.strategy.canary is not None
    if canary and state.canary_version is not None and decision.weight > 0:
        return tuple(COLORS)
    return (state.active_color,)


def scale_status(
    dep: Deployment, decision: Decision, tracks: Mapping[str, TrackState]
) -> ScaleStatus:
    colors = production_colors(dep, decision)
    labels = selector(dep, colors[0] if len(colors) == 1 else None)
    counted = [tracks[c] for c in colors if c in tracks]
    return ScaleStatus(
        replicas=sum(t.replicas for t in counted),
        ready=sum(t.ready for t in counted),
        selector=",".join(f"{k}={v}" for k, v in labels.items()),
    )
