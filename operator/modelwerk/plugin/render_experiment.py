"""The experiment section of ``kubectl modelwerk status``: the arms as a table, then each
metric's comparison, the sample-ratio check and the decision.

Pure: the Deployment as the API server returns it in, text out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from modelwerk.plugin.text import NONE, age, cell, fields, items, mapping, table


def _number(value: object, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NONE
    return f"{value:.{digits}g}"


def _count(value: object) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) else NONE


def _p(value: object) -> str:
    if not isinstance(value, int | float):
        return NONE
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def render_experiment(obj: Mapping[str, Any], now: datetime) -> str:
    """The section, or empty text when the Deployment has had no experiment.

    >>> status = {"experiment": {"versionA": "m-v1", "versionB": "m-v2", "salt": "s",
    ...     "decision": "Running", "reason": "no significant difference in accuracy yet",
    ...     "looks": 3, "arms": [
    ...         {"arm": "A", "version": "m-v1", "units": 510, "observations": 300, "estimate": 0.8},
    ...         {"arm": "B", "version": "m-v2", "units": 490, "observations": 290, "estimate": 0.83}],
    ...     "primary": {"name": "accuracy", "difference": 0.03, "ciLow": -0.04, "ciHigh": 0.1,
    ...                 "pValue": 0.6, "adjustedPValue": 0.6},
    ...     "srmPValue": 0.52}}
    >>> print(render_experiment({"status": status}, datetime.now()))  # doctest: +NORMALIZE_WHITESPACE
    Experiment:
      Decision:  Running
      Reason:    no significant difference in accuracy yet
      Looks:     3
      ARM  VERSION  UNITS  OBSERVATIONS  ESTIMATE
      A    m-v1     510    300           0.8
      B    m-v2     490    290           0.83
      METRIC    B - A  CONFIDENCE SEQUENCE  P (ALWAYS VALID)  P (ADJUSTED)
      accuracy  0.03   -0.04 .. 0.1         0.6000            0.6000
      Sample ratio:  p = 0.5200 (broken below 0.001)
    """
    status = mapping(mapping(obj.get("status")).get("experiment"))
    if not status:
        return ""
    pairs = [("Decision", cell(status.get("decision"))), ("Reason", cell(status.get("reason")))]
    if status.get("startTime"):
        pairs.append(("Started", f"{age(status['startTime'], now)} ago"))
    if status.get("looks"):
        last = (
            f", last {age(status['lastLookTime'], now)} ago" if status.get("lastLookTime") else ""
        )
        pairs.append(("Looks", f"{status['looks']}{last}"))
    if status.get("recommendedSamplePerArm"):
        pairs.append(
            ("Planned", f"{status['recommendedSamplePerArm']:,} units per arm (80 % power)")
        )
    lines = ["Experiment:", fields(pairs, indent="  ")]
    arms = items(status.get("arms"))
    if arms:
        rows = [
            [
                cell(a.get("arm")),
                cell(a.get("version")),
                _count(a.get("units")),
                _count(a.get("observations")),
                _number(a.get("estimate")),
            ]
            for a in arms
        ]
        lines.append(table(("ARM", "VERSION", "UNITS", "OBSERVATIONS", "ESTIMATE"), rows, "  "))
    metrics = [m for m in (status.get("primary"), *items(status.get("guardrails"))) if m]
    if metrics:
        rows = []
        for m in map(mapping, metrics):
            interval = (
                f"{_number(m.get('ciLow'))} .. {_number(m.get('ciHigh'))}"
                if m.get("ciLow") is not None
                else NONE
            )
            rows.append(
                [
                    cell(m.get("name")),
                    _number(m.get("difference")),
                    interval,
                    _p(m.get("pValue")),
                    _p(m.get("adjustedPValue")),
                ]
            )
        headers = ("METRIC", "B - A", "CONFIDENCE SEQUENCE", "P (ALWAYS VALID)", "P (ADJUSTED)")
        lines.append(table(headers, rows, "  "))
    if status.get("srmPValue") is not None:
        note = (
            "not checked: units counted as keyed requests"
            if status.get("unitsAreRequests")
            else "broken below 0.001"
        )
        rate = status.get("unitSampleRate")
        if isinstance(rate, int | float):
            note = f"distinct units, {rate:.0%} sampled, {note}"
        lines.append(fields([("Sample ratio", f"p = {_p(status['srmPValue'])} ({note})")], "  "))
    return "\n".join(lines)
