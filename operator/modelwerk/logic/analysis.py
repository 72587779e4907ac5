"""Analysis runs: when to measure, what a round of measurements means, and the run's verdict.

A run first records a baseline sample of the analysed pods, then measures every
``intervalSeconds`` against the previous sample, so each round covers exactly one interval. A
round fails when a check fails or cannot be measured, is inconclusive when a check lacks data,
and passes otherwise; ``failureLimit`` and ``inconclusiveLimit`` bound how many of each a run
tolerates, ``count`` rounds end it successfully.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from modelwerk.api.v1alpha1.deployment import (
    Analysis,
    AnalysisRun,
    Measurement,
    MetricSample,
)
from modelwerk.logic.measure import measure

MEASUREMENTS_KEPT = 200
"""Recent measurements kept in a run's status (the tallies keep counting beyond)."""

RunPhase = Literal["Running", "Successful", "Failed", "Inconclusive"]


def new_run(name: str, now: datetime) -> AnalysisRun:
    return AnalysisRun(name=name, phase="Running", start_time=now)


def needs_sample(run: AnalysisRun | None, analysis: Analysis, now: datetime) -> bool:
    """Whether the next reconcile must bring a sample of the analysed pods."""
    if run is None or run.phase != "Running" or not analysis.checks:
        return False
    if run.sample is None:
        return True
    return now >= run.sample.time + timedelta(seconds=analysis.interval_seconds)


def next_measurement_in(run: AnalysisRun, analysis: Analysis, now: datetime) -> float:
    if run.sample is None:
        return 1.0
    due = run.sample.time + timedelta(seconds=analysis.interval_seconds)
    return max((due - now).total_seconds(), 1.0)


def advance(
    run: AnalysisRun,
    analysis: Analysis,
    count: int,
    sample: MetricSample | str | None,
    now: datetime,
) -> tuple[AnalysisRun, list[Measurement]]:
    """``run`` after taking what ``sample`` allows (a string is why no sample could be taken),
    with the measurements of this round."""
    if run.phase != "Running":
        return run, []
    if not analysis.checks:
        return _verdict(run.model_copy(update={"successful": count}), analysis, count), []
    if not needs_sample(run, analysis, now) or sample is None:
        return run, []
    if isinstance(sample, str):
        if run.sample is None:
            # No baseline yet: keep trying until the deadline rather than fail on a pod that
            # is still starting.
            return run.model_copy(update={"message": sample}), []
        round_ = [
            Measurement(metric=c.metric, phase="Error", time=now, message=sample)
            for c in analysis.checks
        ]
        run = run.model_copy(update={"sample": run.sample.model_copy(update={"time": now})})
    elif run.sample is None:
        return run.model_copy(update={"sample": sample, "message": None}), []
    else:
        round_ = [
            measure(c, run.sample, sample, min_requests=analysis.min_requests, now=now)
            for c in analysis.checks
        ]
        run = run.model_copy(update={"sample": sample})
    phases = {m.phase for m in round_}
    tally = (
        "failed"
        if phases & {"Failed", "Error"}
        else "inconclusive"
        if "Inconclusive" in phases
        else "successful"
    )
    run = run.model_copy(
        update={
            tally: getattr(run, tally) + 1,
            "measurements": [*run.measurements, *round_][-MEASUREMENTS_KEPT:],
        }
    )
    return _verdict(run, analysis, count), round_


def _verdict(run: AnalysisRun, analysis: Analysis, count: int) -> AnalysisRun:
    phase: RunPhase = "Running"
    message = run.message
    if run.failed > analysis.failure_limit:
        phase, message = "Failed", _failure_message(run)
    elif run.inconclusive > analysis.inconclusive_limit:
        phase = "Inconclusive"
        message = (
            f"{run.inconclusive} round(s) without enough data (limit {analysis.inconclusive_limit})"
        )
    elif run.successful + run.failed >= count:
        phase = "Successful"
        message = f"{run.successful} of {run.successful + run.failed} round(s) passed"
    return run.model_copy(update={"phase": phase, "message": message})


def _failure_message(run: AnalysisRun) -> str:
    bad = [m for m in run.measurements if m.phase in ("Failed", "Error")]
    if not bad:
        return f"{run.failed} round(s) failed"
    last = bad[-1]
    value = "" if last.value is None else f" = {last.value:.4g}"
    detail = f": {last.message}" if last.message else ""
    return f"{run.failed} round(s) failed; last: {last.metric}{value}{detail}"


def skipped(run: AnalysisRun, why: str) -> AnalysisRun:
    """``run`` ended by a person's command."""
    if run.phase != "Running" and run.phase != "Inconclusive":
        return run
    return run.model_copy(update={"phase": "Successful", "message": f"Skipped: {why}"})
