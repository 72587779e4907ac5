"""Shadow traffic: a candidate version gets copies of live requests, and its answers are compared
with the stable ones, as a canary step (before any traffic shifts) or standing on its own.

Kept apart from ``deployment``: the step, the standalone spec and the status are sub-models the
Deployment refers to. The comparison happens in the stable pods (``runtime.server.shadow``); the
verdicts are ``logic.shadow``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from modelwerk.api.base import ApiModel, ObjectName, with_cel

ShadowMetric = Literal["agreement", "latency", "errorRate", "absDifference"]


class ShadowCheck(ApiModel):
    """One bound on the comparison."""

    metric: ShadowMetric
    """agreement (share of rows on which the candidate predicts the stable version's class;
    passes once its 95 % Wilson interval is above min, fails once it is below), latency (the
    candidate's answer time in seconds at quantile), errorRate (share of copies that failed or
    timed out) or absDifference (absolute difference of regression predictions at quantile)."""
    min: float | None = None
    """Lower bound (agreement)."""
    max: float | None = None
    """Upper bound (latency, errorRate, absDifference)."""
    quantile: float = Field(default=0.99, gt=0, lt=1)
    """Quantile of latency and absDifference. Defaults to 0.99."""

    model_config = with_cel(
        {
            "rule": "self.metric == 'agreement' ? has(self.min) : has(self.max)",
            "message": "agreement needs min; latency, errorRate and absDifference need max",
        }
    )

    @model_validator(mode="after")
    def _bounded(self) -> ShadowCheck:
        if (self.metric == "agreement") != (self.min is not None) or (
            self.metric != "agreement" and self.max is None
        ):
            raise ValueError("agreement needs min; latency, errorRate and absDifference need max")
        return self


class ShadowStep(ApiModel):
    """Mirror a share of the live requests to the new version, which serves no user, and go on
    only when its answers pass the checks."""

    percent: int = Field(default=100, ge=1, le=100)
    """Share of the inference requests copied. Defaults to 100."""
    replicas: int = Field(default=1, ge=1, le=100)
    """Pods of the new version during the step. Defaults to 1."""
    checks: list[ShadowCheck] = Field(default_factory=list, max_length=8)
    """What the comparison must show; without checks the step only needs minRows compared."""
    min_rows: int = Field(default=200, ge=1, le=10_000_000)
    """Compared rows before any verdict. Defaults to 200."""
    interval_seconds: int = Field(default=10, ge=1, le=3600)
    """Time between readings of the comparison. Defaults to 10."""
    max_duration_seconds: int = Field(default=900, ge=10, le=86_400)
    """Undecided checks by then make the step inconclusive (the rollout pauses; resume mirrors
    again, promote goes on). Defaults to 900."""


class Shadow(ApiModel):
    """Mirror a candidate version indefinitely, without rolling it out: the comparison is in
    status.shadow and the operator's metrics. Runs while no rollout needs the idle color."""

    model_version: ObjectName
    """The candidate ModelVersion."""
    percent: int = Field(default=10, ge=1, le=100)
    """Share of the inference requests copied. Defaults to 10."""
    replicas: int = Field(default=1, ge=1, le=100)
    """Pods of the candidate. Defaults to 1."""
    checks: list[ShadowCheck] = Field(default_factory=list, max_length=8)
    """Bounds to report on (nothing is stopped: the verdicts are for people and alerts)."""
    interval_seconds: int = Field(default=30, ge=1, le=3600)
    """Time between readings of the comparison. Defaults to 30."""


class ShadowCheckResult(ApiModel):
    """One check's verdict."""

    metric: ShadowMetric
    """The check's metric."""
    value: float | None = None
    """The measured value."""
    verdict: Literal["Passed", "Failed", "Undecided"]
    """Passed, Failed, or Undecided (not enough evidence yet)."""
    message: str | None = None
    """The figures behind the verdict."""


class ShadowStatus(ApiModel):
    """The shadow in progress, or the last one."""

    version: str
    """The candidate ModelVersion."""
    stable_version: str
    """The version whose answers it is compared with."""
    step: int | None = Field(default=None, ge=0)
    """The canary step it belongs to (absent for a standalone shadow)."""
    phase: Literal["Starting", "Running", "Passed", "Failed", "Inconclusive", "Stopped"] = (
        "Starting"
    )
    """Starting (pods coming up), Running, then Passed, Failed or Inconclusive (a step), or
    Stopped (a standalone shadow that ended)."""
    message: str | None = None
    """Why, in figures."""
    start_time: datetime | None = None
    """When both sides were up and mirroring began."""
    last_look_time: datetime | None = None
    """When the comparison was last read."""
    copies: float = 0
    """Copies the candidate answered."""
    failed: float = 0
    """Copies that failed or timed out."""
    dropped: float = 0
    """Copies dropped because the queue was full."""
    compared_rows: float = 0
    """Rows whose predictions were compared."""
    agreement: float | None = None
    """Share of compared rows with the same class (classifiers)."""
    agreement_low: float | None = None
    """Lower end of its 95 % Wilson interval."""
    agreement_high: float | None = None
    """Upper end."""
    latency_p99_seconds: float | None = None
    """The candidate's 99th percentile answer time."""
    abs_difference_p99: float | None = None
    """99th percentile of the absolute difference (regressors)."""
    stable_only_right: float = 0
    """Labelled rows only the stable version got right."""
    shadow_only_right: float = 0
    """Labelled rows only the candidate got right."""
    mcnemar_p_value: float | None = None
    """McNemar's exact test of the two counts above."""
    paired_from: Literal["capture", "process"] | None = None
    """Where the paired counts come from: ``capture``, the aggregator's join of every
    replica's captures of both versions with the labels (over its window), or ``process``, the
    stable pods' own counts of the labels that reached the process that copied the request."""
    checks: list[ShadowCheckResult] = Field(default_factory=list, max_length=8)
    """The checks' verdicts."""
