"""``kubectl modelwerk list`` and ``history``: one row per Deployment, one row per rollout.

Pure: objects as the API server returns them in, text out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from modelwerk.plugin.text import (
    NONE,
    age,
    cell,
    human_duration,
    items,
    mapping,
    parse_time,
    percent,
    table,
    timestamp,
)


def render_list(objs: Sequence[Mapping[str, Any]], now: datetime, *, all_namespaces: bool) -> str:
    """A ``kubectl get``-like table; empty text when there is nothing to list."""
    if not objs:
        return ""
    headers = ["NAME", "MODEL", "VERSION", "CANARY", "STRATEGY", "WEIGHT", "PHASE", "AGE"]
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    rows = []
    for obj in sorted(objs, key=_sort_key):
        meta, status = mapping(obj.get("metadata")), mapping(obj.get("status"))
        row = [
            cell(meta.get("name")),
            cell(status.get("model")),
            cell(status.get("stableVersion")),
            cell(status.get("canaryVersion")),
            cell(status.get("strategy")),
            _weight(status),
            _phase(status),
            age(meta.get("creationTimestamp"), now),
        ]
        if all_namespaces:
            row.insert(0, cell(meta.get("namespace")))
        rows.append(row)
    return table(headers, rows) + "\n"


def render_history(obj: Mapping[str, Any]) -> str:
    """status.history, newest first as the operator keeps it; empty text when there is none."""
    records = items(mapping(obj.get("status")).get("history"))
    if not records:
        return ""
    rows = [
        [
            cell(record.get("version")),
            cell(record.get("outcome")),
            timestamp(record.get("startTime")),
            timestamp(record.get("finishTime")),
            _took(record),
            cell(record.get("message")),
        ]
        for record in records
    ]
    headers = ("VERSION", "OUTCOME", "STARTED (UTC)", "FINISHED (UTC)", "TOOK", "MESSAGE")
    return table(headers, rows) + "\n"


def _sort_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = mapping(obj.get("metadata"))
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _weight(status: Mapping[str, Any]) -> str:
    """Traffic on the new version: what is really there, and what the step asks when different."""
    asked, actual = status.get("canaryWeight"), status.get("actualWeight")
    if actual is None:
        return percent(asked)
    if asked is not None and asked != actual:
        return f"{percent(actual)} (asked {percent(asked)})"
    return percent(actual)


def _phase(status: Mapping[str, Any]) -> str:
    phase = cell(status.get("phase"))
    return f"{phase} (paused)" if status.get("paused") and phase != "Paused" else phase


def _took(record: Mapping[str, Any]) -> str:
    start, finish = parse_time(record.get("startTime")), parse_time(record.get("finishTime"))
    if start is None or finish is None:
        return NONE
    return human_duration((finish - start).total_seconds())
