"""What an experiment's figures mean at one look: B wins, B loses, no winner, or broken.

Rules, in order (each documented in the README's "A/B experiments"):

1. **Sample-ratio mismatch** (``srm``): the units are not split as configured, p < 0.001. The
   experiment is broken; nothing else it says can be trusted.
2. **Guardrails**: a guardrail metric (error rate, latency) whose always-valid test shows B
   worse than A by more than the guardrail's bound. Tested against ``difference = bound`` on
   the worse side, so a difference below the bound never aborts, however certain.
3. **Primary metric**: significant and B better → B wins; significant and B worse → B loses.
4. **Maximum duration** reached without either → no winner.

A metric counts only once both arms have the minimum sample; the primary metric and the
guardrails are one family, their always-valid p-values adjusted together by Benjamini-Hochberg
(``multiple``). The p-values are running minima across looks (``sequential.running_p_value``),
carried from look to look by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from modelwerk.statistics.multiple import benjamini_hochberg
from modelwerk.statistics.sequential import ArmSummary, msprt, running_p_value
from modelwerk.statistics.srm import SrmResult, sample_ratio_mismatch, unit_split_test

Better = Literal["higher", "lower"]
Outcome = Literal[
    "Running", "BWins", "BLoses", "NoWinner", "GuardrailFailed", "SampleRatioMismatch"
]


@dataclass(frozen=True)
class MetricLook:
    """One metric's figures at this look."""

    name: str
    a: ArmSummary
    b: ArmSummary
    better: Better
    tau: float
    """Mixing standard deviation of the always-valid test (the effect it is tuned for)."""
    bound: float = 0.0
    """Guardrails: how much worse B may be before the experiment aborts (metric units)."""
    previous_p: float | None = None
    """The running p-value after the previous look."""


@dataclass(frozen=True)
class MetricResult:
    name: str
    difference: float | None
    """mean B - mean A (None before both arms have data)."""
    ci_low: float | None
    ci_high: float | None
    p_value: float
    """Running always-valid p-value (against difference = 0, or = bound for a guardrail)."""
    adjusted_p: float = 1.0
    """After Benjamini-Hochberg over the experiment's metrics."""
    enough: bool = False
    """Both arms have the minimum sample."""
    significant: bool = False
    b_better: bool | None = None
    """The side of the difference: B better than A (None when equal or unknown)."""


@dataclass(frozen=True)
class ExperimentLook:
    primary: MetricLook
    guardrails: Sequence[MetricLook]
    units_a: float
    units_b: float
    share_b: float
    """B's configured share of units."""
    alpha: float
    min_sample: float
    """Observations each arm needs before a metric may decide."""
    elapsed_seconds: float
    max_duration_seconds: float
    units_checked: bool = True
    """Whether ``units_a``/``units_b`` are units whose split rule 1 may enforce. Requests of
    sticky keys are not (one heavy user moves them): their SRM is reported, never decisive."""
    units_distinct: bool = False
    """The units are distinct units counted from the capture (an exact binomial test)."""


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str
    primary: MetricResult
    guardrails: list[MetricResult] = field(default_factory=list)
    srm: SrmResult | None = None


def _test(look: MetricLook, alpha: float, min_sample: float, *, guardrail: bool) -> MetricResult:
    worse = 1.0 if look.better == "lower" else -1.0
    theta0 = worse * look.bound if guardrail else 0.0
    test = msprt(look.a, look.b, tau=look.tau, alpha=alpha, theta0=theta0)
    enough = min(look.a.n, look.b.n) >= min_sample
    if test is None:
        p = look.previous_p if look.previous_p is not None else 1.0
        return MetricResult(look.name, None, None, None, p, enough=enough)
    # Before the minimum sample the plug-in variances are too rough to start the running
    # minimum: an early fluke would stay in it for good.
    p = running_p_value(look.previous_p, test.p_value) if enough else 1.0
    d = test.difference
    b_better = None if d == 0 else (d > 0) == (look.better == "higher")
    return MetricResult(
        look.name, d, test.ci_low, test.ci_high, p, enough=enough, b_better=b_better
    )


def evaluate(look: ExperimentLook) -> Verdict:
    """The verdict of one look (pure; see the module docstring for the rules)."""
    primary = _test(look.primary, look.alpha, look.min_sample, guardrail=False)
    guards = [_test(g, look.alpha, look.min_sample, guardrail=True) for g in look.guardrails]
    adjusted = benjamini_hochberg([primary.p_value, *(g.p_value for g in guards)])
    primary, *guards = [
        _mark(r, p, look.alpha) for r, p in zip([primary, *guards], adjusted, strict=True)
    ]
    srm = (
        unit_split_test(round(look.units_a), round(look.units_b), look.share_b)
        if look.units_distinct
        else sample_ratio_mismatch(look.units_a, look.units_b, look.share_b)
    )

    def verdict(outcome: Outcome, reason: str) -> Verdict:
        return Verdict(outcome, reason, primary, guards, srm)

    if srm is not None and srm.mismatch and look.units_checked:
        return verdict(
            "SampleRatioMismatch",
            f"units split {look.units_a:.0f}/{look.units_b:.0f} where {1 - look.share_b:.0%}/"
            f"{look.share_b:.0%} was configured ({srm.test} p = {srm.p_value:.2g} < 0.001): "
            "the assignment or the serving of one arm is broken",
        )
    for g, spec in zip(guards, look.guardrails, strict=True):
        if g.significant and _worse_by(g, spec) > spec.bound:
            return verdict(
                "GuardrailFailed",
                f"guardrail {g.name}: B is worse than A by {_worse_by(g, spec):.4g} "
                f"(confidence sequence {g.ci_low:.4g} to {g.ci_high:.4g}), beyond the bound "
                f"{spec.bound:g} (adjusted p = {g.adjusted_p:.2g})",
            )
    name = primary.name
    if primary.significant and primary.b_better is not None:
        ci = f"{primary.ci_low:.4g} to {primary.ci_high:.4g}"
        if primary.b_better:
            return verdict(
                "BWins",
                f"{name}: B is better, B - A = {primary.difference:+.4g} (confidence sequence {ci}, "
                f"always-valid p = {primary.adjusted_p:.2g} <= {look.alpha:g})",
            )
        return verdict(
            "BLoses",
            f"{name}: B is worse, B - A = {primary.difference:+.4g} (confidence sequence {ci}, "
            f"always-valid p = {primary.adjusted_p:.2g} <= {look.alpha:g})",
        )
    if look.elapsed_seconds >= look.max_duration_seconds:
        return verdict(
            "NoWinner",
            f"no significant difference in {name} within the maximum duration "
            f"({look.max_duration_seconds:g}s; always-valid p = {primary.adjusted_p:.2g})",
        )
    smallest = min(look.primary.a.n, look.primary.b.n)
    if smallest < look.min_sample:
        return verdict(
            "Running",
            f"collecting: {smallest:.0f} of {look.min_sample:.0f} observations of {name} "
            "in the smaller arm",
        )
    return verdict(
        "Running", f"no significant difference in {name} yet (p = {primary.adjusted_p:.2g})"
    )


def _worse_by(result: MetricResult, look: MetricLook) -> float:
    """How much worse B is than A (negative when better)."""
    d = result.difference or 0.0
    return d if look.better == "lower" else -d


def _mark(result: MetricResult, adjusted: float, alpha: float) -> MetricResult:
    return MetricResult(
        result.name,
        result.difference,
        result.ci_low,
        result.ci_high,
        result.p_value,
        adjusted,
        result.enough,
        result.enough and adjusted <= alpha,
        result.b_better,
    )
