"""Shadow comparisons: the stable pods' shadow counters, what they say, and the shadow's stages.

The stable pods copy requests to the candidate and count (``runtime.server.shadow``): copies
by outcome, the candidate's answer times, compared and agreeing rows, absolute differences,
and labelled pairs. Summed over the stable pods, they give the status and the checks:

* agreement: k of n rows with a 95 % Wilson interval; passes once the interval's lower end is
  at or above ``min``, fails once its upper end is below (``statistics.agreement``), so a
  near-identical candidate passes and a different one fails on evidence, not on a few rows;
* latency and absDifference: the histogram quantile against ``max``;
* errorRate: failed and timed-out copies over all copies sent, against ``max``;
* McNemar's exact test of the labelled pairs only one side got right (reported, not checked).
  With capture on the pairs come from the aggregator's join (``pairedFrom: capture``): every
  replica's captures of both versions, paired by request id and row with the labels posted to
  any replica, over the aggregator's window. Without capture (or while the aggregator cannot
  be read) they are the stable pods' own counts (``pairedFrom: process``): only labels that
  reach the process that copied the request, which remembers both answers.

A step's verdict: Failed as soon as a check fails (once ``minRows`` rows are compared), Passed
once every check passes, Inconclusive when ``maxDurationSeconds`` passes first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from modelwerk.api.v1alpha1.shadow import ShadowCheck, ShadowCheckResult, ShadowStatus
from modelwerk.logic.measure import histogram_quantile, parse_le
from modelwerk.statistics.agreement import agreement, mcnemar

REQUESTS = "modelwerk_shadow_requests_total"
SECONDS_BUCKET = "modelwerk_shadow_request_seconds_bucket"
COMPARED = "modelwerk_shadow_compared_rows_total"
AGREED = "modelwerk_shadow_agreed_rows_total"
DIFFERENCE_BUCKET = "modelwerk_shadow_abs_difference_bucket"
PAIRED = "modelwerk_shadow_paired_rows_total"
CONFIDENCE = 0.95

Verdict = Literal["Passed", "Failed", "Undecided"]
K = TypeVar("K")
_VERDICTS: dict[str, Verdict] = {"pass": "Passed", "fail": "Failed", "undecided": "Undecided"}
Action = Literal["start", "run", "pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class JoinedPairs:
    """The aggregator's paired outcomes of the stable version and the shadow."""

    stable_only: float = 0.0
    shadow_only: float = 0.0
    both_right: float = 0.0
    both_wrong: float = 0.0


def parse_pairs(doc: Any, stable: str, shadow: str) -> JoinedPairs:
    """The pair (``stable``, ``shadow``) from the aggregator's ``/live`` document, in either
    order; all zeros when no label scored both yet. ``ValueError`` when it is not one.

    >>> doc = {"pairs": [{"first": "v1", "second": "v2", "bothRight": 5, "firstOnly": 1,
    ...                   "secondOnly": 3, "bothWrong": 0}]}
    >>> parse_pairs(doc, "v2", "v1")
    JoinedPairs(stable_only=3.0, shadow_only=1.0, both_right=5.0, both_wrong=0.0)
    """
    pairs = doc.get("pairs") if isinstance(doc, dict) else None
    if not isinstance(pairs, list):
        raise ValueError("no paired outcomes (an aggregator older than the operator?)")
    for entry in pairs:
        if not isinstance(entry, dict):
            raise ValueError("a pair is not an object")
        versions = (entry.get("first"), entry.get("second"))
        if versions not in ((stable, shadow), (shadow, stable)):
            continue
        counts = {}
        for key in ("bothRight", "firstOnly", "secondOnly", "bothWrong"):
            value = entry.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"pair {versions}: {key} = {value!r}")
            counts[key] = float(value)
        first_is_stable = versions[0] == stable
        return JoinedPairs(
            stable_only=counts["firstOnly" if first_is_stable else "secondOnly"],
            shadow_only=counts["secondOnly" if first_is_stable else "firstOnly"],
            both_right=counts["bothRight"],
            both_wrong=counts["bothWrong"],
        )
    return JoinedPairs()


@dataclass
class ShadowFigures:
    """The stable pods' shadow counters, summed."""

    pods: int = 0
    outcomes: dict[str, float] = field(default_factory=dict)
    seconds: dict[float, float] = field(default_factory=dict)
    compared: float = 0.0
    agreed: float = 0.0
    differences: dict[float, float] = field(default_factory=dict)
    paired: dict[str, float] = field(default_factory=dict)
    joined: JoinedPairs | None = None
    """The aggregator's paired outcomes (capture on); they replace ``paired``."""

    def add(self, other: ShadowFigures) -> None:
        self.pods += other.pods
        self.compared += other.compared
        self.agreed += other.agreed
        _add(self.outcomes, other.outcomes)
        _add(self.seconds, other.seconds)
        _add(self.differences, other.differences)
        _add(self.paired, other.paired)


def _add(mine: dict[K, float], theirs: dict[K, float]) -> None:
    for key, value in theirs.items():
        mine[key] = mine.get(key, 0.0) + value


def parse_pod(text: str) -> ShadowFigures:
    """One stable pod's exposition; raises ``ValueError`` when it is not one.

    >>> f = parse_pod('modelwerk_shadow_requests_total{outcome="ok"} 9\\n'
    ...               'modelwerk_shadow_compared_rows_total 12\\n'
    ...               'modelwerk_shadow_agreed_rows_total 11\\n')
    >>> f.outcomes, f.compared, f.agreed
    ({'ok': 9.0}, 12.0, 11.0)
    """
    pod = ShadowFigures(pods=1)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            value = float(s.value)
            if math.isnan(value):
                continue
            if s.name == REQUESTS:
                outcome = s.labels.get("outcome", "")
                pod.outcomes[outcome] = pod.outcomes.get(outcome, 0.0) + value
            elif s.name == SECONDS_BUCKET:
                le = parse_le(s.labels.get("le", ""))
                pod.seconds[le] = pod.seconds.get(le, 0.0) + value
            elif s.name == COMPARED:
                pod.compared += value
            elif s.name == AGREED:
                pod.agreed += value
            elif s.name == DIFFERENCE_BUCKET:
                le = parse_le(s.labels.get("le", ""))
                pod.differences[le] = pod.differences.get(le, 0.0) + value
            elif s.name == PAIRED:
                result = s.labels.get("result", "")
                pod.paired[result] = pod.paired.get(result, 0.0) + value
    return pod


def combine(pods: list[ShadowFigures]) -> ShadowFigures:
    total = ShadowFigures()
    for pod in pods:
        total.add(pod)
    return total


def _quantile(q: float, buckets: dict[float, float]) -> float | None:
    found = histogram_quantile(q, buckets) if buckets else None
    return found[0] if found is not None else None


def judge(check: ShadowCheck, figures: ShadowFigures, min_rows: int) -> ShadowCheckResult:
    """One check against this reading."""
    if figures.compared < min_rows:
        return ShadowCheckResult(
            metric=check.metric,
            verdict="Undecided",
            message=f"{figures.compared:.0f} of {min_rows} rows compared",
        )
    if check.metric == "agreement":
        a = agreement(figures.agreed, figures.compared, CONFIDENCE)
        assert a is not None and check.min is not None
        verdict = _VERDICTS[a.judge(check.min)]
        return ShadowCheckResult(
            metric="agreement",
            value=a.rate,
            verdict=verdict,
            message=f"{a.agreed:.0f} of {a.compared:.0f} rows agree, 95 % interval "
            f"{a.low:.4f} to {a.high:.4f}, min {check.min:g}",
        )
    assert check.max is not None
    if check.metric == "errorRate":
        failed = figures.outcomes.get("error", 0.0) + figures.outcomes.get("timeout", 0.0)
        sent = failed + figures.outcomes.get("ok", 0.0)
        value = failed / sent if sent else 0.0
        text = f"{failed:.0f} of {sent:.0f} copies failed or timed out"
    else:
        buckets = figures.seconds if check.metric == "latency" else figures.differences
        found = _quantile(check.quantile, buckets)
        if found is None:
            return ShadowCheckResult(
                metric=check.metric, verdict="Undecided", message="nothing measured yet"
            )
        value = found
        text = f"p{check.quantile * 100:g} = {value:.4g}"
    within: Verdict = "Passed" if value <= check.max else "Failed"
    return ShadowCheckResult(
        metric=check.metric, value=value, verdict=within, message=f"{text}, max {check.max:g}"
    )


def read(
    status: ShadowStatus,
    figures: ShadowFigures,
    checks: list[ShadowCheck],
    min_rows: int,
    now: datetime,
) -> ShadowStatus:
    """The status with this reading's figures and verdicts."""
    a = agreement(figures.agreed, figures.compared, CONFIDENCE) if figures.agreed else None
    if figures.joined is not None:
        stable_only, shadow_only = figures.joined.stable_only, figures.joined.shadow_only
        paired_from: str | None = "capture"
    else:
        stable_only = figures.paired.get("stable_only", 0.0)
        shadow_only = figures.paired.get("shadow_only", 0.0)
        paired_from = "process" if figures.paired else None
    test = mcnemar(int(stable_only), int(shadow_only)) if stable_only + shadow_only else None
    return status.model_copy(
        update={
            "last_look_time": now,
            "copies": figures.outcomes.get("ok", 0.0),
            "failed": figures.outcomes.get("error", 0.0) + figures.outcomes.get("timeout", 0.0),
            "dropped": figures.outcomes.get("dropped", 0.0),
            "compared_rows": figures.compared,
            "agreement": a.rate if a else None,
            "agreement_low": a.low if a else None,
            "agreement_high": a.high if a else None,
            "latency_p99_seconds": _quantile(0.99, figures.seconds),
            "abs_difference_p99": _quantile(0.99, figures.differences),
            "stable_only_right": stable_only,
            "shadow_only_right": shadow_only,
            "mcnemar_p_value": test.p_value if test else None,
            "paired_from": paired_from,
            "checks": [judge(c, figures, min_rows) for c in checks],
        }
    )


def look_due(status: ShadowStatus | None, interval: int, now: datetime) -> bool:
    if status is None or status.phase != "Running":
        return False
    if status.last_look_time is None:
        return True
    return now >= status.last_look_time + timedelta(seconds=interval)


@dataclass(frozen=True)
class ShadowInput:
    version: str
    stable: str
    step: int | None
    checks: list[ShadowCheck]
    min_rows: int
    interval: int
    max_duration: int | None
    """A step's limit; None for a standalone shadow (it runs until removed)."""
    status: ShadowStatus | None
    sides_up: bool
    """The candidate's pods and the copying stable pods are all up."""
    figures: ShadowFigures | str | None
    now: datetime


@dataclass
class ShadowOutcome:
    status: ShadowStatus
    action: Action
    message: str
    wake_in: float | None = None
    progressed: bool = False


def step(inp: ShadowInput) -> ShadowOutcome:
    """The shadow's next move (pure)."""
    now, status = inp.now, inp.status
    if status is None or (status.version, status.stable_version, status.step) != (
        inp.version,
        inp.stable,
        inp.step,
    ):
        status = ShadowStatus(version=inp.version, stable_version=inp.stable, step=inp.step)
    if status.phase in ("Passed", "Failed", "Inconclusive"):
        action: Action = {"Passed": "pass", "Failed": "fail", "Inconclusive": "inconclusive"}[
            status.phase
        ]  # type: ignore[assignment]
        return ShadowOutcome(status, action, status.message or status.phase)
    if status.phase != "Running":
        if not inp.sides_up:
            message = f"starting {inp.version} and the copying stable pods"
            return ShadowOutcome(status.model_copy(update={"message": message}), "start", message)
        status = status.model_copy(
            update={"phase": "Running", "start_time": now, "message": "mirroring"}
        )
        return ShadowOutcome(status, "run", "mirroring started", wake_in=1.0, progressed=True)
    figures = inp.figures
    if isinstance(figures, str):
        message = f"the comparison could not be read: {figures}"
        return ShadowOutcome(
            status.model_copy(update={"message": message}), "run", message, wake_in=inp.interval
        )
    if figures is None:
        due = (status.last_look_time or now) + timedelta(seconds=inp.interval)
        return ShadowOutcome(
            status,
            "run",
            status.message or "mirroring",
            wake_in=max((due - now).total_seconds(), 1.0),
        )
    status = read(status, figures, inp.checks, inp.min_rows, now)
    summary = _summary(status)
    failed = [c for c in status.checks if c.verdict == "Failed"]
    if failed and inp.max_duration is not None:
        message = "; ".join(f"{c.metric}: {c.message}" for c in failed)
        return _ended(status, "Failed", "fail", message, now)
    decided = status.compared_rows >= inp.min_rows and all(
        c.verdict == "Passed" for c in status.checks
    )
    if decided and inp.max_duration is not None:
        return _ended(status, "Passed", "pass", summary, now)
    start = status.start_time or now
    if inp.max_duration is not None and now >= start + timedelta(seconds=inp.max_duration):
        undecided = [c for c in status.checks if c.verdict == "Undecided"]
        why = "; ".join(f"{c.metric}: {c.message}" for c in undecided) or summary
        return _ended(
            status,
            "Inconclusive",
            "inconclusive",
            f"undecided after {inp.max_duration}s: {why}",
            now,
        )
    status = status.model_copy(update={"message": summary})
    return ShadowOutcome(status, "run", summary, wake_in=float(inp.interval), progressed=True)


def _ended(
    status: ShadowStatus, phase: str, action: Action, message: str, now: datetime
) -> ShadowOutcome:
    ended = status.model_copy(update={"phase": phase, "message": message})
    return ShadowOutcome(ended, action, message, progressed=True)


def _summary(status: ShadowStatus) -> str:
    parts = [f"{status.compared_rows:.0f} rows compared"]
    if status.agreement is not None:
        parts.append(f"agreement {status.agreement:.4f}")
    if status.latency_p99_seconds is not None:
        parts.append(f"shadow p99 {status.latency_p99_seconds * 1000:.1f} ms")
    if status.failed or status.dropped:
        parts.append(f"{status.failed:.0f} failed, {status.dropped:.0f} dropped")
    return ", ".join(parts)
