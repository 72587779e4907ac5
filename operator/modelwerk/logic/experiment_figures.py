"""An experiment's figures, read from the serving pods of both arms.

Each serving pod of an experiment counts (``runtime.server.experiment``):

* the requests it assigned, by the arm it assigned them to and whether they had a key
  (assignments happen at whatever pod a request lands on, so the units of an arm are summed
  over the pods of *both* colors);
* the requests it served for its own arm, their 5xx errors, their serving time and its square;
* the feedback it matched (correct, incorrect), as every server does.

The figures are cumulative since the pods started; the pods of both arms start with the
experiment (the arm's environment is part of their template), so nothing before it is counted.

With capture on (``spec.monitoring.capture``) the primary metric does not come from the pods
but from the aggregator's join (``GET /live?since=<start>``, :func:`parse_joined`): every
serving pod of an experiment writes its arm with each captured prediction, and the aggregator
adds up, per (version, arm), the labels and rewards joined with the predictions of *all*
replicas and worker processes since the experiment began. ``mae``, ``rmse`` and ``reward``
exist only there (the API refuses them without capture); ``accuracy`` falls back to the pods'
own counters without capture.

Q: What is lost without capture?
A: Labels sent with the key header are forwarded to the key's arm, but are matched only in
   the process that served the prediction: with one pod and one worker per arm all match,
   with several only about one in (the arm's pods times their workers) does, as issue 14
   measured for the stable Service; those that match are a random subset of the arm's, so the estimate stays unbiased
   on fewer observations. A keyless label, or one keyed by a parameter, stays on the pod it
   lands on. A serving pod that restarts during the experiment starts its counters from zero,
   so its arm loses what it had counted (and the units may look mismatched).

Q: How are units counted?
A: With capture on, every captured row of an experiment carries its unit (a hash of the key,
   or a token per keyless request) and the aggregator counts each arm's distinct units since
   the start from all replicas (hash-sampled at one rate in both arms once there are more than
   it keeps): the sample-ratio check is an exact binomial test of them, and it is enforced.
   Without capture the pods count requests (they cannot see each other's keys), which are not
   units for a keyed experiment: the check is then advisory (``units_are_requests``).
   Guardrails (errors, latency) always come from the pods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ASSIGNMENTS = "modelwerk_experiment_assignments_total"
SERVED = "modelwerk_experiment_served_total"
SERVED_SECONDS = "modelwerk_experiment_served_seconds_total"
SERVED_SQUARES = "modelwerk_experiment_served_seconds_squared_total"
FEEDBACK = "modelwerk_model_feedback_total"


@dataclass
class ArmCounters:
    """One color's pods, summed."""

    pods: int = 0
    assigned: dict[tuple[str, bool], float] = field(default_factory=dict)
    """Requests these pods assigned, by (arm, keyed)."""
    served: float = 0.0
    errors: float = 0.0
    seconds: float = 0.0
    squares: float = 0.0
    correct: float = 0.0
    incorrect: float = 0.0

    def add(self, other: ArmCounters) -> None:
        self.pods += other.pods
        for key, value in other.assigned.items():
            self.assigned[key] = self.assigned.get(key, 0.0) + value
        self.served += other.served
        self.errors += other.errors
        self.seconds += other.seconds
        self.squares += other.squares
        self.correct += other.correct
        self.incorrect += other.incorrect


@dataclass(frozen=True)
class JoinedArm:
    """One arm's labels and rewards joined in the artifact store since the experiment began."""

    matched: float = 0.0
    """Labelled rows matched with the arm's predictions."""
    correct: float = 0.0
    abs_error: float = 0.0
    squared_error: float = 0.0
    error_fourth: float = 0.0
    rewards: float = 0.0
    reward_sum: float = 0.0
    reward_squares: float = 0.0
    units: float | None = None
    """Distinct units seen in the arm since the start (kept at ``unit_rate``); None from an
    aggregator that does not count them."""


@dataclass(frozen=True)
class JoinedFigures:
    a: JoinedArm
    b: JoinedArm
    unit_rate: float = 1.0
    """The share of units the distinct counts keep (the same in both arms)."""

    @property
    def units_counted(self) -> bool:
        return self.a.units is not None and self.b.units is not None


@dataclass(frozen=True)
class ExperimentFigures:
    """Both arms' counters at one look."""

    a: ArmCounters
    b: ArmCounters
    joined: JoinedFigures | None = None
    """The aggregator's figures per arm, with capture on (they decide the primary metric)."""

    def units(self, arm: str) -> float:
        if self.units_distinct and self.joined is not None:
            return float((self.joined.a if arm == "a" else self.joined.b).units or 0.0)
        return sum(
            v for side in (self.a, self.b) for (k, _), v in side.assigned.items() if k == arm
        )

    @property
    def units_distinct(self) -> bool:
        """Units are distinct units counted from the capture."""
        return self.joined is not None and self.joined.units_counted

    @property
    def units_are_requests(self) -> bool:
        """Keyed requests were counted: units are requests, not distinct keys."""
        return not self.units_distinct and any(
            v > 0 for side in (self.a, self.b) for (_, keyed), v in side.assigned.items() if keyed
        )


def parse_pod(text: str) -> ArmCounters:
    """One serving pod's exposition; raises ``ValueError`` when it is not one.

    >>> text = '''modelwerk_experiment_assignments_total{version="v1",arm="b",keyed="true"} 3
    ... modelwerk_experiment_served_total{version="v1",arm="a",outcome="error",via="direct"} 2
    ... modelwerk_experiment_served_total{version="v1",arm="a",outcome="ok",via="forwarded"} 8
    ... modelwerk_model_feedback_total{model="m",version="v1",result="correct"} 5
    ... '''
    >>> c = parse_pod(text)
    >>> c.assigned, c.served, c.errors, c.correct
    ({('b', True): 3.0}, 10.0, 2.0, 5.0)
    """
    pod = ArmCounters(pods=1)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            value = float(s.value)
            if math.isnan(value):
                continue
            if s.name == ASSIGNMENTS:
                key = (s.labels.get("arm", ""), s.labels.get("keyed") == "true")
                pod.assigned[key] = pod.assigned.get(key, 0.0) + value
            elif s.name == SERVED:
                pod.served += value
                if s.labels.get("outcome") == "error":
                    pod.errors += value
            elif s.name == SERVED_SECONDS:
                pod.seconds += value
            elif s.name == SERVED_SQUARES:
                pod.squares += value
            elif s.name == FEEDBACK:
                result = s.labels.get("result")
                if result == "correct":
                    pod.correct += value
                elif result == "incorrect":
                    pod.incorrect += value
    return pod


def combine(pods: list[ArmCounters]) -> ArmCounters:
    total = ArmCounters()
    for pod in pods:
        total.add(pod)
    return total


_JOINED_KEYS = {
    "matched": "matched",
    "correct": "correct",
    "absError": "abs_error",
    "squaredError": "squared_error",
    "errorFourth": "error_fourth",
    "rewards": "rewards",
    "rewardSum": "reward_sum",
    "rewardSquares": "reward_squares",
}


def parse_joined(doc: Any, version_a: str, version_b: str) -> JoinedFigures:
    """Arm A's (``version_a``, arm "a") and arm B's figures from the aggregator's
    ``/live?since=…`` document; an arm without a matched label yet is all zeros. Raises
    ``ValueError`` when the document is not such an answer.

    >>> doc = {"experiment": {"arms": [
    ...     {"version": "v2", "arm": "b", "matched": 40, "correct": 30},
    ...     {"version": "v1", "arm": "a", "matched": 38, "correct": 20},
    ...     {"version": "v1", "arm": "b", "matched": 5, "correct": 5}]}}
    >>> j = parse_joined(doc, "v1", "v2")
    >>> (j.a.matched, j.a.correct), (j.b.matched, j.b.correct)
    ((38.0, 20.0), (40.0, 30.0))
    """
    experiment = doc.get("experiment") if isinstance(doc, dict) else None
    arms = experiment.get("arms") if isinstance(experiment, dict) else None
    if not isinstance(experiment, dict) or not isinstance(arms, list):
        raise ValueError("no experiment figures (an aggregator older than the operator?)")
    if experiment.get("complete") is False:
        raise ValueError("the aggregator is still reading the experiment back from the store")
    counted = "unitRate" in experiment
    rate = experiment.get("unitRate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
        raise ValueError(f"unitRate = {rate!r} is not a share")

    def arm(version: str, name: str) -> JoinedArm:
        for entry in arms:
            if not isinstance(entry, dict):
                raise ValueError("an experiment arm is not an object")
            if entry.get("version") == version and entry.get("arm") == name:
                values = {}
                for key, field_name in _JOINED_KEYS.items():
                    value = entry.get(key, 0.0)
                    if isinstance(value, bool) or not isinstance(value, int | float):
                        raise ValueError(f"experiment arm {name}: {key} is not a number")
                    if not math.isfinite(value) or value < 0:
                        raise ValueError(f"experiment arm {name}: {key} = {value}")
                    values[field_name] = float(value)
                units = entry.get("units", 0) if counted else None
                if units is not None and (
                    isinstance(units, bool) or not isinstance(units, int) or units < 0
                ):
                    raise ValueError(f"experiment arm {name}: units = {units!r}")
                return JoinedArm(**values, units=units)
        return JoinedArm(units=0 if counted else None)

    return JoinedFigures(arm(version_a, "a"), arm(version_b, "b"), float(rate))
