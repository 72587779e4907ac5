"""Retraining decisions: which trigger fired, and whether a run may start.

Q: Why does a trigger alone not start a run?
A: A run on the data the served model was trained on reproduces that model (same data, same
   spec, same seed: the same bytes), and since the evidence that fired the trigger does not go
   away, it would start again every minIntervalSeconds. A run therefore starts only when the
   template's Dataset holds a version that no run of this Deployment's lineage, the served
   version and the template trained on; otherwise the Retraining condition says it is waiting
   for new data and nothing starts.

Q: When is a suppression recorded and counted?
A: When a trigger starts being held back (a new trigger or reason, or the first since the
   last run), not on every reconcile while it stays held back: the counter then counts
   episodes, whatever the reconcile rate.

At most one run is in flight per Deployment and two runs are at least ``minIntervalSeconds``
apart; the run's name is derived from the runs that exist, so a restart between creating it
and recording it in the status cannot start a second one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelwerk.api.conditions import ConditionStatus, get_condition
from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.api.v1alpha1.deployment import Deployment
from modelwerk.api.v1alpha1.model_version import ModelVersion
from modelwerk.api.v1alpha1.production import LiveMetrics
from modelwerk.api.v1alpha1.retraining import (
    TRIGGERS,
    Retraining,
    RetrainingRecord,
    RetrainingStatus,
    Trigger,
    parse_cron,
)
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.builders.retraining import build_retraining_job, retraining_name
from modelwerk.logic.plan import Event

RETRAINING = "Retraining"
FINISHED = ("Succeeded", "Failed", "Rejected")
SCHEDULE_HORIZON_SECONDS = 3600.0
"""Longest wait before the schedule is looked at again (a cron time far away)."""
RECHECK_SECONDS = 60.0
"""How often a Deployment with a retraining policy looks again without an event: a new
Dataset version or a finished run is not an event on the Deployment."""


@dataclass(frozen=True)
class RetrainingRun:
    name: str
    phase: str | None
    number: int
    dataset_version: str | None = None
    """The version it trained on (its status), or the one it was started for."""


@dataclass(frozen=True)
class RetrainingInput:
    runs: list[RetrainingRun] = field(default_factory=list)
    """TrainingJobs this Deployment started."""
    template: TrainingJob | None = None
    """The retraining template, when the policy names one that exists."""
    dataset: Dataset | None = None
    """The template's Dataset, when it exists."""


@dataclass(frozen=True)
class Firing:
    trigger: Trigger
    reason: str


@dataclass
class RetrainingDecision:
    status: RetrainingStatus | None
    condition: tuple[ConditionStatus, str, str] | None = None
    create: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    started: str | None = None
    """The run this decision starts."""


def fired(
    dep: Deployment,
    policy: Retraining,
    drifting: str | None,
    live: LiveMetrics | None,
    dataset: Dataset | None,
    unseen: bool,
    now: datetime,
) -> list[Firing]:
    """The triggers that fire now, most specific first. ``drifting`` is the DriftDetected
    message while drift is above the threshold."""
    triggers = policy.triggers
    out: dict[Trigger, str] = {}
    if triggers.drift and drifting is not None:
        out["drift"] = drifting
    if triggers.live_metric is not None and (crossed := _live_crossed(dep, policy, live)):
        out["liveMetric"] = crossed
    if triggers.schedule is not None and (due := _schedule_due(dep, policy, now)) is not None:
        out["schedule"] = f"schedule {triggers.schedule!r} named {due.isoformat()}"
    if triggers.new_data and unseen and dataset is not None:
        out["newData"] = (
            f"Dataset {dataset.metadata.name} has a new version "
            f"{dataset.status.short_version or dataset.status.version}"
        )
    return [Firing(t, out[t]) for t in TRIGGERS if t in out]


def _live_crossed(dep: Deployment, policy: Retraining, live: LiveMetrics | None) -> str | None:
    bound = policy.triggers.live_metric
    stable = dep.status.stable_version
    if bound is None or live is None or stable is None:
        return None
    row = next((v for v in live.versions if v.version == stable and v.arm is None), None)
    if row is None or row.matched < bound.min_labelled:
        return None
    value = getattr(row, bound.metric)
    if value is None:
        return None
    if bound.metric == "accuracy" and value < bound.bound:
        return f"live accuracy of {stable} {value:.4g} < {bound.bound:g} ({row.matched} labels)"
    if bound.metric != "accuracy" and value > bound.bound:
        return (
            f"live {bound.metric} of {stable} {value:.4g} > {bound.bound:g} ({row.matched} labels)"
        )
    return None


def _schedule_start(dep: Deployment) -> datetime | None:
    """Where the schedule is read from: the last time considered (none before the first
    reconcile with a schedule, which starts it from then on: no run for times before)."""
    previous = dep.status.retraining
    return previous.schedule_time if previous is not None else None


def _schedule_due(dep: Deployment, policy: Retraining, now: datetime) -> datetime | None:
    """The latest cron time in (last considered, now], or None."""
    expression, start = policy.triggers.schedule, _schedule_start(dep)
    if expression is None or start is None:
        return None
    due = None
    at = parse_cron(expression, start)
    while at <= now:
        due = at
        at = parse_cron(expression, at)
    return due


def seen_versions(dep: Deployment, inp: RetrainingInput, versions: list[ModelVersion]) -> set[str]:
    """Dataset versions this lineage already trained on: its runs, the served version and
    the template."""
    seen = {r.dataset_version for r in inp.runs if r.dataset_version}
    served = next((v for v in versions if v.metadata.name == dep.status.stable_version), None)
    lineage = served.spec.lineage if served is not None else None
    if lineage is not None and lineage.dataset_version:
        seen.add(lineage.dataset_version)
    if inp.template is not None and inp.template.status.dataset_version:
        seen.add(inp.template.status.dataset_version)
    return seen


def drift_message(
    dep: Deployment, condition: tuple[ConditionStatus, str, str] | None
) -> str | None:
    """The DriftDetected message while drift is above the threshold (this decision's
    condition, else the one the status holds)."""
    if condition is not None:
        return condition[2] if condition[0] == "True" else None
    was = get_condition(dep.status.conditions, "DriftDetected")
    return was.message if was is not None and was.status == "True" else None


def decide_retraining(
    dep: Deployment,
    inp: RetrainingInput,
    versions: list[ModelVersion],
    *,
    drifting: str | None,
    live: LiveMetrics | None,
    now: datetime,
) -> RetrainingDecision:
    """Whether a trigger fires, and whether it starts a run or is held back (and why)."""
    monitoring = dep.spec.monitoring
    policy = monitoring.retraining if monitoring else None
    previous = dep.status.retraining
    if policy is None:
        return RetrainingDecision(status=previous)
    status = previous or RetrainingStatus()
    dataset = inp.dataset
    current = (
        dataset.status.version
        if dataset is not None
        and dataset.status.phase == "Ready"
        and dataset.status.observed_generation == dataset.metadata.generation
        else None
    )
    unseen = current is not None and current not in seen_versions(dep, inp, versions)
    firings = fired(dep, policy, drifting, live, dataset, unseen, now)
    decision = RetrainingDecision(status=status, requeue_after=RECHECK_SECONDS)
    if policy.triggers.schedule is not None:
        due = _schedule_due(dep, policy, now)
        start = _schedule_start(dep)
        if due is not None:
            status = status.model_copy(update={"schedule_time": due})
        elif start is None:
            status = status.model_copy(update={"schedule_time": now})
        anchor = due or start or now
        wait = (parse_cron(policy.triggers.schedule, anchor) - now).total_seconds()
        decision.requeue_after = min(max(wait, 1.0), SCHEDULE_HORIZON_SECONDS, RECHECK_SECONDS)
    decision.status = status
    in_flight = [r for r in inp.runs if r.phase not in FINISHED]
    if not firings:
        if in_flight:
            decision.condition = _running(in_flight[0], status)
        else:
            decision.condition = ("False", "NoTrigger", "No retraining trigger fired")
        return decision
    first = firings[0]
    held = _held_back(dep, policy, inp, first, in_flight, current, unseen, now)
    if held is not None:
        reason, message, until = held
        running = reason == "RunInFlight"
        decision.condition = (
            _running(in_flight[0], status) if running else ("False", reason, message)
        )
        if until is not None:
            decision.requeue_after = min(decision.requeue_after or until, until)
        _suppress(decision, status, first, reason, message, now)
        return decision
    assert inp.template is not None and current is not None
    number = max((r.number for r in inp.runs), default=0) + 1
    name = retraining_name(dep, number)
    record = RetrainingRecord(
        time=now,
        trigger=first.trigger,
        reason=first.reason,
        training_job=name,
        dataset_version=current,
    )
    decision.create.append(build_retraining_job(dep, inp.template, number, record, policy.gate))
    decision.status = status.model_copy(update={"last_run": record})
    decision.started = name
    message = (
        f"Started TrainingJob {name} ({first.trigger}: {first.reason}) on Dataset "
        f"{inp.template.spec.dataset_ref.name} version {current[7:19]}"
    )
    decision.condition = ("True", "Started", message)
    decision.events.append(Event("Normal", "Retraining", message))
    return decision


def _running(run: RetrainingRun, status: RetrainingStatus) -> tuple[ConditionStatus, str, str]:
    last = status.last_run
    why = f" ({last.trigger}: {last.reason})" if last and last.training_job == run.name else ""
    return "True", "RunInFlight", f"TrainingJob {run.name} is {run.phase or 'Pending'}{why}"


def _held_back(
    dep: Deployment,
    policy: Retraining,
    inp: RetrainingInput,
    first: Firing,
    in_flight: list[RetrainingRun],
    current: str | None,
    unseen: bool,
    now: datetime,
) -> tuple[str, str, float | None] | None:
    """Why the trigger starts nothing (reason, message, seconds until it may), or None."""
    if in_flight:
        return "RunInFlight", f"TrainingJob {in_flight[0].name} is still running", None
    if inp.template is None:
        return (
            "TemplateMissing",
            f"TrainingJob {policy.training_job_ref.name} (the retraining template) not found",
            None,
        )
    name = inp.template.spec.dataset_ref.name
    if current is None:
        phase = inp.dataset.status.phase if inp.dataset is not None else "missing"
        return "DatasetNotReady", f"{first.trigger}: Dataset {name} is {phase or 'Pending'}", None
    if not unseen:
        what = "drift persists" if first.trigger == "drift" else f"{first.trigger} fired"
        return (
            "WaitingForNewData",
            f"{what} ({first.reason}), waiting for new labelled data: Dataset {name} version "
            f"{current[7:19]} was already trained on",
            None,
        )
    last = dep.status.retraining.last_run if dep.status.retraining else None
    last_time = (
        last.time if last else dep.status.drift.last_retraining_time if dep.status.drift else None
    )
    if last_time is not None:
        allowed = last_time + timedelta(seconds=policy.min_interval_seconds)
        if now < allowed:
            return (
                "MinInterval",
                f"{first.trigger}: the last run started at {last_time.isoformat()}; the next "
                f"may start at {allowed.isoformat()} (minIntervalSeconds)",
                (allowed - now).total_seconds(),
            )
    return None


def _suppress(
    decision: RetrainingDecision,
    status: RetrainingStatus,
    first: Firing,
    reason: str,
    message: str,
    now: datetime,
) -> None:
    was = status.last_suppressed
    since_run = status.last_run is not None and (was is None or status.last_run.time > was.time)
    if (
        was is not None
        and was.trigger == first.trigger
        and was.suppressed == reason
        and not since_run
    ):
        return
    record = RetrainingRecord(
        time=now, trigger=first.trigger, reason=first.reason, suppressed=reason
    )
    decision.status = (decision.status or status).model_copy(update={"last_suppressed": record})
    if reason != "RunInFlight":
        decision.events.append(Event("Normal", "RetrainingSuppressed", message))
