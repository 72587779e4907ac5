"""The A/B experiment strategy of a Deployment and what its status reports.

Kept apart from ``deployment`` (already the largest API module): the strategy's spec
(``Experiment``) and its status (``ExperimentStatus``) are sub-models the Deployment refers to.
The statistics behind the status are ``modelwerk.statistics``; the state machine is
``logic.experiment``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from modelwerk.api.base import ApiModel, with_cel

PrimaryMetric = Literal["accuracy", "mae", "rmse", "reward"]
ExperimentDecision = Literal[
    "Starting",
    "Running",
    "BWins",
    "BLoses",
    "NoWinner",
    "GuardrailFailed",
    "SampleRatioMismatch",
    "Promoted",
    "Aborted",
]
HEADER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"


class ExperimentKey(ApiModel):
    """Where a request's unit key (a user, a session, an account) is; exactly one of header or
    parameter."""

    header: str | None = Field(default=None, pattern=HEADER_NAME)
    """An HTTP header, for example x-user-id."""
    parameter: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    """A field of the V2 request's parameters, for example user_id."""

    model_config = with_cel(
        {
            "rule": "(has(self.header) ? 1 : 0) + (has(self.parameter) ? 1 : 0) == 1",
            "message": "set exactly one of header, parameter",
        }
    )

    @model_validator(mode="after")
    def _one(self) -> ExperimentKey:
        if (self.header is None) == (self.parameter is None):
            raise ValueError("set exactly one of header, parameter")
        return self

    def setting(self) -> str:
        """The model server's form: ``header:<name>`` or ``parameter:<name>``."""
        return f"header:{self.header}" if self.header else f"parameter:{self.parameter}"


class ExperimentMetric(ApiModel):
    """The primary metric: what decides the winner."""

    name: PrimaryMetric = "accuracy"
    """accuracy (share of correct labelled rows, higher is better), mae or rmse (absolute or
    squared error per labelled row, lower is better), or reward (a number clients post with
    the request id, higher is better). Defaults to accuracy."""
    reward_type: Literal["binary", "continuous"] | None = None
    """For reward: binary (conversions, 0 or 1) or continuous (revenue). Required for reward."""
    minimum_detectable_effect: float | None = Field(default=None, gt=0)
    """The smallest difference between the arms worth detecting, in the metric's per-row units
    (accuracy points as a fraction, absolute error, squared error, reward); the always-valid test
    is tuned to detect it soonest. Defaults to 0.05 for binary metrics and to a tenth of arm A's
    standard deviation for continuous ones. The README's table gives the units per arm it
    takes."""

    model_config = with_cel(
        {
            "rule": "self.name != 'reward' || has(self.rewardType)",
            "message": "a reward metric needs rewardType (binary or continuous)",
        }
    )

    @model_validator(mode="after")
    def _reward_type(self) -> ExperimentMetric:
        if self.name == "reward" and self.reward_type is None:
            raise ValueError("a reward metric needs rewardType (binary or continuous)")
        return self

    @property
    def binary(self) -> bool:
        return self.name == "accuracy" or self.reward_type == "binary"

    @property
    def higher_is_better(self) -> bool:
        return self.name in ("accuracy", "reward")


class Guardrail(ApiModel):
    """A metric B must not be worse at: the experiment aborts (A stays) as soon as B is shown
    worse by more than ``maxIncrease``."""

    metric: Literal["errorRate", "latency"]
    """errorRate (share of 5xx answers) or latency (mean serving time in seconds)."""
    max_increase: float = Field(default=0.0, ge=0)
    """How much worse B may be, in the metric's units (a fraction for errorRate, seconds for
    latency). Defaults to 0: any significant increase aborts."""


class Experiment(ApiModel):
    """Serve the new version (B) beside the stable one (A) to a share of the units, sticky by
    a request key, and let an always-valid test decide."""

    traffic_percent: int = Field(default=50, ge=1, le=99)
    """Percentage of units assigned to B. Defaults to 50."""
    key: ExperimentKey | None = None
    """Where the unit key is; without it every request is its own unit, assigned at random."""
    salt: str | None = Field(default=None, min_length=1, max_length=253)
    """Hashed with every key. Defaults to the Deployment's uid and the two versions, so each
    experiment reshuffles the units."""
    metric: ExperimentMetric = Field(default_factory=ExperimentMetric)
    """The primary metric. Defaults to accuracy."""
    guardrails: list[Guardrail] = Field(default_factory=list, max_length=4)
    """Metrics B must not be worse at."""
    alpha: float = Field(default=0.05, ge=0.001, le=0.2)
    """False-positive rate of the whole experiment (the primary metric and the guardrails,
    Benjamini-Hochberg). Defaults to 0.05."""
    min_sample_per_arm: int = Field(default=150, ge=10, le=10_000_000)
    """Observations each arm needs before a metric may decide. Defaults to 150."""
    max_duration_seconds: int = Field(default=604_800, ge=60, le=31_536_000)
    """Without a significant result by then there is no winner. Defaults to a week."""
    interval_seconds: int = Field(default=30, ge=5, le=3600)
    """Time between looks at the figures. Defaults to 30."""
    on_win: Literal["promote", "wait"] = "promote"
    """When B wins: promote it at once, or wait for a manual promote. Defaults to promote."""
    on_no_winner: Literal["keepA", "promote"] = "keepA"
    """When the maximum duration passes without a winner: keep A (abort) or promote B anyway
    (B is as good and, say, cheaper). Defaults to keepA. A B that loses is never promoted."""
    forward_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """How long a pod waits for the other arm's answer before serving the request itself.
    Defaults to 10."""

    @property
    def share_b(self) -> float:
        return self.traffic_percent / 100.0


class ArmStatus(ApiModel):
    """One arm's figures."""

    arm: Literal["A", "B"]
    """A serves the stable version, B the new one."""
    version: str
    """The ModelVersion the arm serves."""
    units: float = 0
    """Units assigned to the arm (requests, for a keyed experiment whose figures come from the
    serving pods; see unitsAreRequests)."""
    observations: float = 0
    """Rows of the primary metric (labelled rows, rewards)."""
    estimate: float | None = None
    """The primary metric's value on this arm."""
    requests: float = 0
    """Inference requests the arm served."""
    errors: float = 0
    """Of which answered with a 5xx."""
    mean_latency_seconds: float | None = None
    """Mean serving time."""


class MetricResult(ApiModel):
    """The always-valid comparison of one metric, B minus A."""

    name: str
    """The metric."""
    difference: float | None = None
    """B minus A."""
    ci_low: float | None = None
    """Lower end of the confidence sequence of the difference (1 - alpha)."""
    ci_high: float | None = None
    """Upper end."""
    p_value: float = 1.0
    """Always-valid p-value (running minimum; against difference = maxIncrease for a
    guardrail)."""
    adjusted_p_value: float = 1.0
    """After Benjamini-Hochberg over the primary metric and the guardrails."""


class ExperimentStatus(ApiModel):
    """The experiment in progress or last finished."""

    version_a: str
    """The stable version (arm A)."""
    version_b: str
    """The new version (arm B)."""
    salt: str
    """The salt the pods hash keys with."""
    decision: ExperimentDecision = "Starting"
    """Starting (pods coming up), Running, BWins, BLoses, NoWinner, GuardrailFailed,
    SampleRatioMismatch, then Promoted or Aborted."""
    reason: str | None = None
    """Why, in figures."""
    start_time: datetime | None = None
    """When both arms were serving and the experiment began counting."""
    last_look_time: datetime | None = None
    """When the figures were last read."""
    decided_time: datetime | None = None
    """When the decision was reached."""
    looks: int = Field(default=0, ge=0)
    """Times the figures were read and tested."""
    arms: list[ArmStatus] = Field(default_factory=list, max_length=2)
    """Per arm: units, observations, estimate."""
    primary: MetricResult | None = None
    """The primary metric's comparison."""
    guardrails: list[MetricResult] = Field(default_factory=list, max_length=4)
    """The guardrails' comparisons."""
    srm_p_value: float | None = None
    """Sample-ratio-mismatch p-value of the units (below 0.001: broken)."""
    units_are_requests: bool | None = None
    """True when units were counted as keyed requests (no distinct-unit counts available), in
    which case a sample-ratio mismatch is reported but does not stop the experiment. False
    when distinct units were counted from the capture (an exact binomial test, enforced)."""
    unit_sample_rate: float | None = Field(default=None, gt=0, le=1)
    """With distinct units from the capture: the share of units counted (1 until the experiment
    has more units than the aggregator keeps; the same share in both arms)."""
    recommended_sample_per_arm: int | None = None
    """Units per arm at which the test has 80 % power for the minimum detectable effect, from
    arm A's current figures."""
