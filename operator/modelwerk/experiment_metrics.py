"""The operator's metrics of A/B experiments and shadows: per Deployment with an experiment, the
figures of its status (units, observations and estimate per arm; the primary metric's
difference, confidence sequence and always-valid p-value; the sample-ratio p-value), and the
decisions; per Deployment with a shadow, its agreement (with the Wilson interval), its p99
latency and its failed and dropped copies.

Like the Deployment gauges in ``metrics``, kept as the last status per Deployment and turned
into samples only when scraped; a Deployment without an experiment costs nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Generic, TypeVar, get_args

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelwerk.api.v1alpha1.experiment import ExperimentDecision
from modelwerk.metrics import REGISTRY

if TYPE_CHECKING:
    from modelwerk.api.v1alpha1.experiment import ExperimentStatus
    from modelwerk.api.v1alpha1.shadow import ShadowStatus

DECISIONS = get_args(ExperimentDecision)
S = TypeVar("S")


class _LastStatus(Collector, Generic[S]):
    """The last status of each Deployment that has one; samples are made when scraped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # scrapes run on the HTTP server's thread
        self._status: dict[tuple[str, str], S] = {}

    def keep(self, status: S | None) -> bool:
        return status is not None

    def record(self, namespace: str, name: str, status: S | None) -> None:
        with self._lock:
            if status is not None and self.keep(status):
                self._status[(namespace, name)] = status
            else:
                self._status.pop((namespace, name), None)

    def _families(self) -> dict[str, GaugeMetricFamily]:
        raise NotImplementedError

    def describe(self) -> Iterable[Metric]:
        return self._families().values()

    def statuses(self) -> list[tuple[tuple[str, str], S]]:
        with self._lock:
            return list(self._status.items())


class _ExperimentGauges(_LastStatus["ExperimentStatus"]):
    def _families(self) -> dict[str, GaugeMetricFamily]:
        dep = ["namespace", "deployment"]
        specs = {
            "decision": ("Current decision: 1 for it, 0 for the others.", [*dep, "decision"]),
            "units": ("Units assigned to each arm.", [*dep, "arm", "version"]),
            "observations": ("Observations of the primary metric per arm.", [*dep, "arm"]),
            "estimate": ("The primary metric on each arm.", [*dep, "arm", "metric"]),
            "difference": ("B minus A, per metric.", [*dep, "metric"]),
            "ci_low": ("Lower end of the confidence sequence of B minus A.", [*dep, "metric"]),
            "ci_high": ("Upper end of the confidence sequence of B minus A.", [*dep, "metric"]),
            "p_value": ("Always-valid p-value (BH-adjusted) per metric.", [*dep, "metric"]),
            "srm_p_value": ("Sample-ratio-mismatch p-value of the units.", dep),
        }
        return {
            key: GaugeMetricFamily(f"modelwerk_experiment_{key}", text, labels=labels)
            for key, (text, labels) in specs.items()
        }

    def collect(self) -> Iterable[Metric]:
        f = self._families()
        for (ns, name), s in self.statuses():
            for d in DECISIONS:
                f["decision"].add_metric([ns, name, d], 1.0 if s.decision == d else 0.0)
            if s.srm_p_value is not None:
                f["srm_p_value"].add_metric([ns, name], s.srm_p_value)
            metric = s.primary.name if s.primary else ""
            for arm in s.arms:
                f["units"].add_metric([ns, name, arm.arm, arm.version], arm.units)
                f["observations"].add_metric([ns, name, arm.arm], arm.observations)
                if arm.estimate is not None:
                    f["estimate"].add_metric([ns, name, arm.arm, metric], arm.estimate)
            for result in [s.primary, *s.guardrails]:
                if result is None:
                    continue
                labels = [ns, name, result.name]
                f["p_value"].add_metric(labels, result.adjusted_p_value)
                for key, value in (
                    ("difference", result.difference),
                    ("ci_low", result.ci_low),
                    ("ci_high", result.ci_high),
                ):
                    if value is not None:
                        f[key].add_metric(labels, value)
        return f.values()


class _ShadowGauges(_LastStatus["ShadowStatus"]):
    def keep(self, status: ShadowStatus | None) -> bool:
        return status is not None and status.phase != "Stopped"

    def _families(self) -> dict[str, GaugeMetricFamily]:
        labels = ["namespace", "deployment", "version"]
        specs = {
            "agreement": "Share of compared rows on which the shadow agrees with stable.",
            "agreement_low": "Lower end of the agreement's 95 % Wilson interval.",
            "agreement_high": "Upper end of the agreement's 95 % Wilson interval.",
            "latency_p99_seconds": "The shadow's 99th percentile answer time.",
            "compared_rows": "Rows compared so far.",
            "failed_copies": "Copies that failed or timed out.",
            "dropped_copies": "Copies dropped because the stable pods' queue was full.",
        }
        return {
            key: GaugeMetricFamily(f"modelwerk_deployment_shadow_{key}", text, labels=labels)
            for key, text in specs.items()
        }

    def collect(self) -> Iterable[Metric]:
        f = self._families()
        for (ns, name), s in self.statuses():
            values = {
                "agreement": s.agreement,
                "agreement_low": s.agreement_low,
                "agreement_high": s.agreement_high,
                "latency_p99_seconds": s.latency_p99_seconds,
                "compared_rows": s.compared_rows,
                "failed_copies": s.failed,
                "dropped_copies": s.dropped,
            }
            for key, value in values.items():
                if value is not None:
                    f[key].add_metric([ns, name, s.version], value)
        return f.values()


SHADOW_GAUGES = _ShadowGauges()
REGISTRY.register(SHADOW_GAUGES)
EXPERIMENT_GAUGES = _ExperimentGauges()
REGISTRY.register(EXPERIMENT_GAUGES)
EXPERIMENT_DECISIONS = Counter(
    "modelwerk_experiment_decisions",
    "Experiment decisions (BWins, BLoses, NoWinner, GuardrailFailed, SampleRatioMismatch).",
    ["namespace", "decision"],
    registry=REGISTRY,
)


def record_experiment(
    namespace: str, name: str, old: ExperimentStatus | None, new: ExperimentStatus | None
) -> None:
    EXPERIMENT_GAUGES.record(namespace, name, new)
    if new is None or new.decided_time is None:
        return
    if (
        old is None
        or old.decided_time is None
        or (old.version_a, old.version_b)
        != (
            new.version_a,
            new.version_b,
        )
    ):
        decision: str = new.decision
        if decision in ("Promoted", "Aborted") and new.reason:
            cause = new.reason.split(":", 1)[0]  # the decision that led there
            if cause not in ("Starting", "Running"):  # else: a person's promote or abort
                decision = cause
        EXPERIMENT_DECISIONS.labels(namespace, decision).inc()


def record_shadow(namespace: str, name: str, status: ShadowStatus | None) -> None:
    SHADOW_GAUGES.record(namespace, name, status)


def forget_experiment(namespace: str, name: str) -> None:
    EXPERIMENT_GAUGES.record(namespace, name, None)
    SHADOW_GAUGES.record(namespace, name, None)
