"""Retention: delete captures and labels older than ``retentionDays``, a partition at a time.

Whole ``date=`` directories go once the day is over the limit; on the boundary day, the
``hour=`` directories before the cutoff. Partitions are only ever deleted whole, so a reader
sees an hour complete or not at all, never half of it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from modelwerk.runtime.capture import layout
from modelwerk.runtime.capture.store import Store

log = logging.getLogger(__name__)


def expired_partitions(store: Store, prefix: str, cutoff: datetime) -> list[str]:
    """The ``date=…`` and ``date=…/hour=…`` directories under ``prefix`` wholly before
    ``cutoff``."""
    cutoff = layout.hour_of(cutoff)
    out = []
    for day_dir in store.dirs(prefix):
        day = _day(day_dir)
        if day is None:
            continue
        if day.date() < cutoff.date():
            out.append(f"{prefix}/{day_dir}")
        elif day.date() == cutoff.date():
            for hour_dir in store.dirs(f"{prefix}/{day_dir}"):
                hour = layout.parse_partition(f"{day_dir}/{hour_dir}")
                if hour is not None and hour < cutoff:
                    out.append(f"{prefix}/{day_dir}/{hour_dir}")
    return out


def apply(store: Store, namespace: str, deployment: str, cutoff: datetime) -> int:
    """Delete the Deployment's expired partitions; how many were deleted."""
    prefixes = [layout.labels_prefix(namespace, deployment)]
    captures = layout.deployment_prefix(layout.CAPTURES, namespace, deployment)
    prefixes += [f"{captures}/{version}" for version in store.dirs(captures)]
    deleted = 0
    for prefix in prefixes:
        for partition in expired_partitions(store, prefix, cutoff):
            store.remove_tree(partition)
            log.info("Deleted expired partition %s", store.uri(partition))
            deleted += 1
    return deleted


def _day(name: str) -> datetime | None:
    if not name.startswith("date="):
        return None
    try:
        return datetime.strptime(name.removeprefix("date="), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
