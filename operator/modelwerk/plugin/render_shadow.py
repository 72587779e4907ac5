"""The shadow parts of ``kubectl modelwerk status``: a canary's shadow step in one line, and
the comparison of the shadow in progress (or the last one) as a section.

Pure: the Deployment as the API server returns it in, text out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from modelwerk.plugin.text import NONE, age, cell, fields, items, mapping, table


def _bound(check: Mapping[str, Any]) -> str:
    metric = str(check.get("metric", "?"))
    if metric == "agreement":
        return f"agreement ≥ {check.get('min')}"
    quantile = f" p{float(check.get('quantile', 0.99)) * 100:g}" if metric != "errorRate" else ""
    return f"{metric}{quantile} ≤ {check.get('max')}"


def shadow_step_text(step: Mapping[str, Any]) -> str:
    """One shadow step.

    >>> shadow_step_text({"percent": 50, "checks": [{"metric": "agreement", "min": 0.95}]})
    'shadow 50% of requests: agreement ≥ 0.95'
    """
    checks = [_bound(c) for c in items(step.get("checks"))] or ["answers compared"]
    return f"shadow {step.get('percent', 100)}% of requests: {', '.join(checks)}"


def _number(value: object, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, int | float) else NONE


def render_shadow(obj: Mapping[str, Any], now: datetime) -> str:
    """The section, or empty text when the Deployment has had no shadow."""
    s = mapping(mapping(obj.get("status")).get("shadow"))
    if not s:
        return ""
    kind = f"canary step {s['step'] + 1}" if isinstance(s.get("step"), int) else "standalone"
    pairs = [
        (
            "Candidate",
            f"{cell(s.get('version'))} ({kind}), compared with {cell(s.get('stableVersion'))}",
        ),
        ("Phase", cell(s.get("phase"))),
        ("Message", cell(s.get("message"))),
    ]
    if s.get("startTime"):
        pairs.append(("Started", f"{age(s['startTime'], now)} ago"))
    pairs.append(
        (
            "Copies",
            f"{s.get('copies', 0):,.0f} answered, {s.get('failed', 0):,.0f} failed, "
            f"{s.get('dropped', 0):,.0f} dropped",
        )
    )
    if s.get("agreement") is not None:
        pairs.append(
            (
                "Agreement",
                f"{_number(s['agreement'])} of {s.get('comparedRows', 0):,.0f} rows "
                f"(95 % {_number(s.get('agreementLow'))} .. {_number(s.get('agreementHigh'))})",
            )
        )
    if s.get("latencyP99Seconds") is not None:
        pairs.append(("Shadow p99", f"{s['latencyP99Seconds'] * 1000:.1f} ms"))
    if s.get("absDifferenceP99") is not None:
        pairs.append(("|difference| p99", _number(s["absDifferenceP99"])))
    if s.get("mcnemarPValue") is not None:
        pairs.append(
            (
                "Labelled",
                f"only stable right {s.get('stableOnlyRight', 0):,.0f}, only shadow right "
                f"{s.get('shadowOnlyRight', 0):,.0f} (McNemar p = {_number(s['mcnemarPValue'])}"
                + (f", from {s['pairedFrom']})" if s.get("pairedFrom") else ")"),
            )
        )
    lines = ["Shadow:", fields(pairs, indent="  ")]
    checks = items(s.get("checks"))
    if checks:
        rows = [
            [
                cell(c.get("metric")),
                _number(c.get("value")),
                cell(c.get("verdict")),
                cell(c.get("message")),
            ]
            for c in checks
        ]
        lines.append(table(("CHECK", "VALUE", "VERDICT", "FIGURES"), rows, "  "))
    return "\n".join(lines)
