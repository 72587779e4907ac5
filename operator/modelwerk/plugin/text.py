"""Small text helpers shared by the renderers: times, durations, numbers and aligned tables."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

NONE = "-"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """Coarser the longer it is, as kubectl prints ages.

    >>> [human_duration(s) for s in (0, 59, 119, 125, 601, 3 * 3600 + 60, 9 * 3600, 50 * 3600)]
    ['0s', '59s', '119s', '2m5s', '10m', '3h1m', '9h', '2d2h']
    """
    total = max(int(seconds), 0)
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if total < 120:
        return f"{total}s"
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def age(value: object, now: datetime) -> str:
    """How long ago an API timestamp was, or ``-``."""
    at = parse_time(value)
    return human_duration((now - at).total_seconds()) if at else NONE


def timestamp(value: object) -> str:
    """An API timestamp in UTC to the second, or ``-``."""
    at = parse_time(value)
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S}" if at else NONE


def seconds_text(seconds: float) -> str:
    """A configured duration, exact: ``90`` -> ``1m30s``.

    >>> [seconds_text(s) for s in (0, 45, 90, 3600, 5400, 86400)]
    ['0s', '45s', '1m30s', '1h', '1h30m', '24h']
    """
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"


def parse_duration(text: str) -> float:
    """Seconds from ``30``, ``30s``, ``2m``, ``1m30s``, ``500ms`` or ``1h``; ValueError otherwise.

    >>> [parse_duration(t) for t in ("30", "2.5", "30s", "1m30s", "500ms", "1h")]
    [30.0, 2.5, 30.0, 90.0, 0.5, 3600.0]
    """
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if value < 0:
            raise ValueError(f"negative duration {text!r}")
        return value
    if not text or _DURATION_PART.sub("", text):
        raise ValueError(f"invalid duration {text!r} (examples: 30s, 2m, 1m30s)")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[unit] for n, unit in _DURATION_PART.findall(text))


def percent(value: object) -> str:
    return f"{value}%" if isinstance(value, int | float) and not isinstance(value, bool) else NONE


def cell(value: object) -> str:
    """A scalar for a table cell: ``-`` when absent or empty."""
    if value is None or value == "":
        return NONE
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """Columns aligned as ``kubectl get`` aligns them: three spaces apart, no trailing space."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = []
    for row in (headers, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append((indent + "   ".join(cells)).rstrip())
    return "\n".join(lines)


def fields(pairs: Sequence[tuple[str, str]], indent: str = "") -> str:
    """``Label:  value`` lines with the values aligned."""
    width = max((len(label) for label, _ in pairs), default=0) + 2
    return "\n".join(f"{indent}{label + ':':<{width}}{value}".rstrip() for label, value in pairs)


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one (status fields may be missing)."""
    return value if isinstance(value, Mapping) else {}


def items(value: object) -> list[Mapping[str, Any]]:
    """The JSON objects in ``value`` if it is a list, else none."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]
