"""Retraining a Deployment starts: what may trigger a run, the gate it passes, what happened.

A trigger alone starts nothing: a run starts only when the template's Dataset has a version
that no run of this Deployment's lineage, the served version or the template trained on. The
run must then beat the served version on the same holdout (the champion-challenger gate).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, field_validator

from modelwerk.api.base import ApiModel, LocalObjectReference
from modelwerk.api.v1alpha1.champion import ChampionMargin

Trigger = Literal["drift", "liveMetric", "newData", "schedule"]
TRIGGERS: tuple[Trigger, ...] = ("drift", "liveMetric", "schedule", "newData")
"""In the order a run records them when several fire at once: the most specific evidence
first."""


def parse_cron(expression: str, start: datetime) -> datetime:
    """The first time after ``start`` that ``expression`` (five cron fields, UTC) names;
    ``ValueError`` with cronsim's message when it is not cron.

    >>> parse_cron("0 3 * * 1", datetime(2026, 12, 3, 18, 0, tzinfo=UTC)).isoformat()
    '2026-12-07T03:00:00+00:00'
    """
    from cronsim import CronSim, CronSimError

    try:
        return next(CronSim(expression, start.astimezone(UTC)))
    except (CronSimError, StopIteration) as exc:
        raise ValueError(f"schedule {expression!r} is not a cron expression: {exc}") from exc


class LiveMetricTrigger(ApiModel):
    """Retrain when the served version's live figure, from the join of labels with captured
    predictions (needs monitoring.capture), crosses a bound."""

    metric: Literal["accuracy", "mae", "rmse"] = "accuracy"
    """accuracy (fires below the bound) or mae / rmse (fire above it). Defaults to
    accuracy."""
    bound: float = Field(ge=0)
    """The bound, for example 0.85 for accuracy."""
    min_labelled: int = Field(default=100, ge=1, le=10_000_000)
    """Labelled rows of the served version the window must hold before the figure counts.
    Defaults to 100."""


class RetrainingTriggers(ApiModel):
    """What may start a retraining run (any of them)."""

    drift: bool = True
    """Drift above monitoring.drift.threshold. Defaults to true."""
    live_metric: LiveMetricTrigger | None = None
    """The live accuracy or error of the served version crossing a bound."""
    new_data: bool = False
    """A new version of the template's Dataset (a refreshed source, a production window).
    Defaults to false."""
    schedule: str | None = Field(default=None, max_length=128)
    """Cron expression (five fields, UTC), for example "0 3 * * 1" for Mondays at 03:00."""

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            parse_cron(value, datetime(2000, 1, 1, tzinfo=UTC))
        return value


class RetrainingGate(ChampionMargin):
    """The champion-challenger gate of retraining runs: the served version is the champion."""

    enabled: bool = True
    """Reject a run whose model does not beat the served version. Defaults to true."""


class Retraining(ApiModel):
    """Start a new training run on new evidence, only when there is data it has not seen."""

    training_job_ref: LocalObjectReference
    """A TrainingJob used as the template for retraining runs."""
    min_interval_seconds: int = Field(default=3600, ge=60, le=31_536_000)
    """Fewest seconds between two retraining runs (at most a year). Defaults to 3600."""
    triggers: RetrainingTriggers = Field(default_factory=RetrainingTriggers)
    """What may start a run. Defaults to drift only."""
    gate: RetrainingGate = Field(default_factory=RetrainingGate)
    """The champion-challenger gate the runs pass (unless the template names a champion of
    its own)."""


class RetrainingRecord(ApiModel):
    """One trigger and what became of it."""

    time: datetime
    """When it happened."""
    trigger: Trigger
    """drift, liveMetric, newData or schedule."""
    reason: str = Field(max_length=1024)
    """Why it fired, in words."""
    training_job: str | None = None
    """The run it started."""
    dataset_version: str | None = None
    """The Dataset version that run trains on."""
    suppressed: str | None = None
    """Why no run started: RunInFlight, MinInterval, WaitingForNewData, DatasetNotReady or
    TemplateMissing."""


class RetrainingStatus(ApiModel):
    """Retraining as the operator last decided it."""

    last_run: RetrainingRecord | None = None
    """The last run a trigger started."""
    last_suppressed: RetrainingRecord | None = None
    """The last trigger held back (recorded when it starts being held back)."""
    schedule_time: datetime | None = None
    """The last time of the cron schedule that was considered (a schedule fires once per
    time it names)."""
