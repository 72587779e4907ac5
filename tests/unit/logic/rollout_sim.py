"""A tiny simulated cluster for walking the Deployment decision through whole rollouts.

It plays the API server and the apps/v1 controllers only as far as the decision can observe
them: applied color tracks become observed tracks (Ready at once unless ``pods_ready`` is
off), deleted ones disappear, Services keep their selectors. Everything else is the real
decision function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelwerk.api.v1alpha1 import Deployment, ModelVersion
from modelwerk.api.v1alpha1.deployment import MetricSample
from modelwerk.logic.deployment import ObservedDeployment, reconcile_deployment
from modelwerk.logic.drift import DriftInput
from modelwerk.logic.experiment_figures import ExperimentFigures
from modelwerk.logic.live import LiveInput
from modelwerk.logic.plan import Plan
from modelwerk.logic.retraining import RetrainingInput
from modelwerk.logic.shadow import ShadowFigures
from modelwerk.logic.tracks import TrackState

from .conftest import NOW, WORKLOAD

MODEL = "iris-classifier"


def version(n: int, phase: str = "Ready", stage: str = "None", model: str = MODEL) -> ModelVersion:
    sha = f"{n:02d}" * 32
    return ModelVersion.from_k8s(
        {
            "metadata": {"name": f"{model}-v{n}", "namespace": "ns"},
            "spec": {
                "model": model,
                "version": n,
                "task": "classification",
                "stage": stage,
                "artifact": {
                    "uri": f"pvc://modelwerk-artifacts/models/{model}/{sha}/model.joblib",
                    "sha256": sha,
                },
            },
            "status": {"phase": phase},
        }
    )


def deployment(
    status: dict[str, Any] | None = None, generation: int = 1, **spec: Any
) -> Deployment:
    return Deployment.from_k8s(
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": "iris", "namespace": "ns", "uid": "d-1", "generation": generation},
            "spec": {"replicas": 4, **(spec or {"modelSelector": {"model": MODEL}})},
            "status": status or {},
        }
    )


@dataclass
class Sim:
    dep: Deployment
    versions: list[ModelVersion]
    now: datetime = NOW
    pods_ready: bool = True
    tracks: dict[str, TrackState] = field(default_factory=dict)
    services: dict[str, dict[str, str]] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    monitor: dict[str, Any] | None = None
    """The aggregator's apps/v1 Deployment, once applied."""

    @property
    def status(self) -> Any:
        return self.dep.status

    def step(
        self,
        seconds: float = 1,
        *,
        sample: MetricSample | str | None = None,
        drift: DriftInput | None = None,
        route: dict[str, Any] | None = None,
        live: LiveInput | None = None,
        figures: ExperimentFigures | str | None = None,
        shadow_figures: ShadowFigures | str | None = None,
        retraining: RetrainingInput | None = None,
    ) -> Plan:
        observed = ObservedDeployment(
            versions=list(self.versions),
            tracks=dict(self.tracks),
            services=frozenset(self.services),
            service_ips={name: self.service_ip(name) for name in self.services},
            sample=sample,
            drift=drift or DriftInput(),
            route=route,
            live=live or LiveInput(),
            monitor=self.monitor is not None,
            figures=figures,
            shadow_figures=shadow_figures,
            retraining=retraining or RetrainingInput(),
        )
        plan = reconcile_deployment(self.dep, observed, now=self.now, config=WORKLOAD)
        self.dep = self.dep.model_copy(update={"status": plan.status})
        for child in plan.apply:
            meta = child["metadata"]
            if meta["labels"].get("app.kubernetes.io/component") == "monitor":
                self.monitor = child
            elif child["kind"] == "Deployment":
                labels = meta["labels"]
                replicas = child["spec"]["replicas"]
                up = replicas if self.pods_ready else 0
                old = self.tracks.get(labels["modelwerk.dev/track"])
                if old and old.version == labels["modelwerk.dev/model-version"]:
                    up = max(up, min(old.ready, replicas)) if not self.pods_ready else up
                self.tracks[labels["modelwerk.dev/track"]] = TrackState(
                    labels["modelwerk.dev/model-version"], replicas, up, up, up, True
                )
            else:
                self.services[meta["name"]] = child["spec"]["selector"]
        for key in plan.delete:
            if key.kind == "Deployment" and key.name.endswith("-monitor"):
                self.monitor = None
            elif key.kind == "Deployment":
                self.tracks.pop(key.name.rsplit("-", 1)[1], None)
            else:
                self.services.pop(key.name, None)
        self.created.extend(plan.create)
        self.plans.append(plan)
        self.now += timedelta(seconds=seconds)
        return plan

    def until(self, predicate: Any, *, limit: int = 50, **kwargs: Any) -> Plan:
        for _ in range(limit):
            plan = self.step(**kwargs)
            if predicate(self):
                return plan
        raise AssertionError(f"not reached in {limit} steps: {self.status.message}")

    def set_spec(self, **changes: Any) -> None:
        body = self.dep.model_dump(by_alias=True, exclude_none=True, mode="json")
        body["spec"].update(changes)
        body["metadata"]["generation"] = self.dep.metadata.generation + 1
        self.dep = Deployment.from_k8s(body)

    def command(self, verb: str) -> None:
        body = self.dep.model_dump(by_alias=True, exclude_none=True, mode="json")
        annotations = body["metadata"].setdefault("annotations", {})
        annotations["modelwerk.dev/command"] = f"{verb}@{len(self.plans)}"
        self.dep = Deployment.from_k8s(body)

    @staticmethod
    def service_ip(name: str) -> str:
        """A cluster IP per Service name, as the API server would allocate."""
        return f"10.96.0.{sum(name.encode()) % 250 + 2}"

    def stable_selector(self) -> dict[str, str]:
        return self.services["iris"]

    def serving_colors(self) -> set[str]:
        """Colors whose Ready pods the stable Service sends requests to."""
        selector = self.stable_selector()
        colors = (
            [selector["modelwerk.dev/track"]]
            if "modelwerk.dev/track" in selector
            else list(self.tracks)
        )
        return {c for c in colors if c in self.tracks and self.tracks[c].ready > 0}

    def version_on(self, color: str) -> str | None:
        track = self.tracks.get(color)
        return track.version if track else None
