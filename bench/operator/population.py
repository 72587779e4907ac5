"""A realistic population of modelwerk Deployments for timing the pure decision.

Every object is brought into its state by the real decision itself, walked through whole
rollouts on the simulated cluster of the unit tests (``tests/unit/logic/rollout_sim.py``:
applied color tracks become observed tracks, Ready at once), so statuses carry what a cluster
that has been running for a while carries: rollout history, analysis runs with measurements
and their baseline sample, conditions, endpoints, drift readings.

Three kinds, mixed by ``build(n, mix)``:

* ``steady``: Healthy after three promoted rollouts (v1 -> v2 -> v3); a third of each
  strategy (replace, blue-green, canary); half of them monitor drift, and a drift reading is
  due in the timed decision.
* ``canary``: mid-rollout of v4 over v3 with analysis (error rate, drift, and latency p99 when measured), at an
  analysis step with several measurements taken; the timed decision brings the next sample,
  so it measures, as a real analysis reconcile does.
* ``bluegreen``: v4 Ready behind the preview Service, Paused waiting for a manual promote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.unit.logic.rollout_sim import Sim, version

from modelwerk.api.v1alpha1 import Deployment, ModelVersion
from modelwerk.api.v1alpha1.deployment import Check, LatencyBucket, MetricSample
from modelwerk.logic.deployment import ObservedDeployment
from modelwerk.logic.drift import DriftInput
from modelwerk.logic.measure import measure

MODEL = "iris-classifier"
VERSIONS = 4
NAMESPACE = "bench"
INTERVAL = 30  # analysis and drift interval, seconds
MEASURED = 4  # analysis rounds already taken when a canary is timed
ANALYSIS_COUNT = 10  # rounds the analysis step needs

Kind = str
KINDS: tuple[Kind, ...] = ("steady", "canary", "bluegreen")


@dataclass(frozen=True)
class Case:
    """One object as the operator meets it on a reconcile."""

    kind: Kind
    body: dict[str, Any]
    """The object as read from the API server (camelCase JSON)."""
    observed: ObservedDeployment
    now: datetime
    expect: tuple[str, str]
    """(phase, Ready reason) the object is in; checked when the population is built."""


def versions() -> list[ModelVersion]:
    return [version(n) for n in range(1, VERSIONS + 1)]


def version_bodies() -> list[dict[str, Any]]:
    """The ModelVersions as the API server lists them (what observe_deployment parses)."""
    return [v.model_dump(by_alias=True, exclude_none=True, mode="json") for v in versions()]


def _deployment(name: str, **spec: Any) -> Deployment:
    return Deployment.from_k8s(
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "uid": f"uid-{name}",
                "generation": 1,
                "labels": {"app.kubernetes.io/part-of": "bench"},
            },
            "spec": {"modelVersion": f"{MODEL}-v1", "replicas": 4, **spec},
        }
    )


def _v(n: int) -> str:
    return f"{MODEL}-v{n}"


class _Traffic:
    """Cumulative serving counters of the analysed pods: 600 requests and a few errors per
    interval, latencies well under the bound, low drift."""

    def __init__(self) -> None:
        self.requests = 0.0

    def sample(self, at: datetime) -> MetricSample:
        self.requests += 600
        return MetricSample(
            time=at,
            pods=2,
            requests=self.requests,
            errors=self.requests * 0.001,
            latency_buckets=[
                LatencyBucket(le=le, count=self.requests * share)
                for le, share in (("0.005", 0.6), ("0.01", 0.9), ("0.05", 0.99), ("0.1", 1.0))
            ]
            + [LatencyBucket(le="+Inf", count=self.requests)],
            drift_score=0.04,
            drift_feature="petal length (cm)",
        )


def _promote_through(sim: Sim, *targets: int) -> None:
    """Roll out each target to the end: analysis fed with passing samples, indefinite pauses
    promoted by hand."""
    traffic = _Traffic()
    for n in targets:
        sim.set_spec(modelVersion=_v(n))
        for _ in range(100):
            sim.step(seconds=INTERVAL, sample=traffic.sample(sim.now))
            if sim.status.stable_version == _v(n) and sim.status.phase == "Healthy":
                break
            if sim.status.phase == "Paused":  # an indefinite pause step waits for a person
                sim.command("promote")
        else:
            raise AssertionError(f"{_v(n)} not promoted: {sim.status.message}")
        # Past blue-green's scaleDownDelaySeconds: the old color goes away.
        sim.step(seconds=60)
        sim.step()


def _steady(name: str, i: int) -> tuple[Sim, MetricSample | None, DriftInput]:
    strategies: list[dict[str, Any]] = [
        {},
        {"blueGreen": {"scaleDownDelaySeconds": 30}},
        {"canary": {"steps": [{"setWeight": 25}, {"pause": {"durationSeconds": 5}}]}},
    ]
    spec: dict[str, Any] = {"strategy": strategies[i % 3]}
    monitors = i % 2 == 0
    if monitors:
        spec["monitoring"] = {"drift": {"threshold": 0.2, "intervalSeconds": INTERVAL}}
    sim = Sim(_deployment(name, **spec), versions())
    sim.until(lambda s: s.status.phase == "Healthy")
    _promote_through(sim, 2, 3)
    drift = DriftInput()
    if monitors:
        traffic = _Traffic()
        sim.step(drift=DriftInput(sample=traffic.sample(sim.now)))
        sim.step(seconds=INTERVAL)
        drift = DriftInput(sample=traffic.sample(sim.now))
    return sim, None, drift


def checks() -> list[dict[str, Any]]:
    """Error rate and drift, and latency p99 when this version of the logic measures it (the
    placeholder measurement module answers Inconclusive for latency)."""
    wanted = [{"metric": "errorRate", "max": 0.01}, {"metric": "drift", "max": 0.2}]
    latency = {"metric": "latency", "quantile": 0.99, "max": 0.25}
    traffic, at = _Traffic(), datetime(2026, 1, 1, tzinfo=UTC)
    before, after = traffic.sample(at), traffic.sample(at + timedelta(seconds=INTERVAL))
    probe = measure(Check.model_validate(latency), before, after, min_requests=20, now=at)
    return [*wanted, latency] if probe.value is not None else wanted


def _canary(name: str, i: int) -> tuple[Sim, MetricSample | None, DriftInput]:
    spec = {
        "strategy": {
            "canary": {
                "steps": [
                    {"setWeight": 25},
                    {"analysis": {"count": ANALYSIS_COUNT}},
                    {"setWeight": 50},
                    {"pause": {}},
                    {"setWeight": 100},
                ]
            }
        },
        "analysis": {
            "intervalSeconds": INTERVAL,
            "failureLimit": 1,
            "checks": checks(),
        },
    }
    sim = Sim(_deployment(name, **spec), versions())
    sim.until(lambda s: s.status.phase == "Healthy")
    _promote_through(sim, 2, 3)
    sim.set_spec(modelVersion=_v(4))
    traffic = _Traffic()
    sim.until(lambda s: s.status.analysis_runs, sample=traffic.sample(sim.now))
    for _ in range(MEASURED):
        sim.step(seconds=INTERVAL, sample=traffic.sample(sim.now))
    sim.step(seconds=INTERVAL)
    return sim, traffic.sample(sim.now), DriftInput()


def _bluegreen(name: str, i: int) -> tuple[Sim, MetricSample | None, DriftInput]:
    spec = {"strategy": {"blueGreen": {"autoPromote": False, "scaleDownDelaySeconds": 30}}}
    sim = Sim(_deployment(name, **spec), versions())
    sim.until(lambda s: s.status.phase == "Healthy")
    _promote_through(sim, 2, 3)
    sim.set_spec(modelVersion=_v(4))
    sim.until(_waiting)
    sim.step(seconds=INTERVAL)
    return sim, None, DriftInput()


def _waiting(sim: Sim) -> bool:
    ready = next((c for c in sim.status.conditions if c.type == "Ready"), None)
    return ready is not None and ready.reason == "WaitingForPromotion"


EXPECT: dict[Kind, tuple[str, str]] = {
    "steady": ("Healthy", "RolloutComplete"),
    "canary": ("Progressing", "AnalysisRunning"),
    "bluegreen": ("Paused", "WaitingForPromotion"),
}

_BUILDERS: dict[Kind, Callable[[str, int], tuple[Sim, MetricSample | None, DriftInput]]] = {
    "steady": _steady,
    "canary": _canary,
    "bluegreen": _bluegreen,
}


def _case(kind: Kind, i: int) -> Case:
    sim, sample, drift = _BUILDERS[kind](f"{kind}-{i:04d}", i)
    dep = sim.dep
    ready = next(c for c in dep.status.conditions if c.type == "Ready")
    if (dep.status.phase, ready.reason) != EXPECT[kind]:
        raise AssertionError(
            f"{dep.metadata.name}: built into {dep.status.phase}/{ready.reason}, wanted "
            f"{EXPECT[kind]} ({dep.status.message}); has the rollout logic changed?"
        )
    observed = ObservedDeployment(
        versions=list(sim.versions),
        tracks=dict(sim.tracks),
        services=frozenset(sim.services),
        sample=sample,
        drift=drift,
    )
    body = dep.model_dump(by_alias=True, exclude_none=True, mode="json")
    return Case(kind, body, observed, sim.now + timedelta(seconds=1), EXPECT[kind])


def build(n: int, mix: dict[Kind, float]) -> list[Case]:
    """``n`` objects, ``mix`` giving each kind's share (the shares are normalised)."""
    total = sum(mix.values())
    counts = {kind: round(n * share / total) for kind, share in mix.items()}
    counts[max(counts, key=lambda k: counts[k])] += n - sum(counts.values())
    cases: list[Case] = []
    for kind, count in counts.items():
        template = [_case(kind, i) for i in range(min(count, 6))]
        for i in range(count):
            # Objects of one kind differ only by name: build a few, rename the rest.
            base = template[i % len(template)]
            name = f"{kind}-{i:04d}"
            observed = replace(
                base.observed,
                services=frozenset(
                    s.replace(base.body["metadata"]["name"], name, 1)
                    for s in base.observed.services
                ),
            )
            cases.append(Case(kind, _renamed(base.body, name), observed, base.now, base.expect))
    return cases


def _renamed(body: dict[str, Any], name: str) -> dict[str, Any]:
    meta = {**body["metadata"], "name": name, "uid": f"uid-{name}"}
    return {**body, "metadata": meta}
