"""The one seam that reads the wall clock; logic takes ``now`` as an argument instead."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current time in UTC, truncated to seconds as metav1.Time stores it."""
    return datetime.now(UTC).replace(microsecond=0)
