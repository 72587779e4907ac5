"""The aggregator's loop: read what is new in the store, join it, publish the figures.

Q: Why a small process per Deployment, rather than the operator or a periodic Job?
A: The operator's image has no pyarrow or pandas (its memory and start-up stay small) and it
   must never block on a store; a Job would re-read the whole window on every run and start a
   pod each time. One long-running process reads each file once, keeps a bounded join state
   in memory, and answers the operator's scrape from it at once. What it holds is derived
   from the store alone: after a restart it reads the recent partitions again and arrives at
   the same figures, so it needs no volume of its own and no coordination.

Q: And an experiment that began before the restart?
A: Its totals need every outcome since its start. The first ``GET /live?since=<start>`` that
   asks about a time before what the aggregator has read makes the next round read the store
   again from that time (at most ``retention_days`` back), hour by hour with the clock of the
   rows, so the join state ends as if the aggregator had run all along: the experiment's
   sums, distinct units and the window's figures. Until that read is done the answer says
   ``"complete": false`` and the operator takes no look.

Q: How does it find new files without listing everything?
A: It lists only the hour partitions that can still hold new rows (captures of the horizon,
   labels of the window; a writer coming back after a store outage writes into the hour its
   rows belong to, which is still listed) and remembers which files it has read.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from modelwerk.runtime.capture import layout
from modelwerk.runtime.capture.figures import (
    ArmBuckets,
    LabelCounts,
    PairedFigures,
    VersionFigures,
    totals_since,
)
from modelwerk.runtime.capture.join import JoinState
from modelwerk.runtime.capture.reader import read_file
from modelwerk.runtime.capture.store import Store
from modelwerk.runtime.monitor import retention
from modelwerk.runtime.monitor.settings import MonitorSettings

log = logging.getLogger(__name__)

CAPTURE_COLUMNS = [
    layout.REQUEST_ID,
    layout.ROW,
    layout.TIME,
    layout.VERSION,
    layout.ARM,
    layout.UNIT,
    layout.PREDICTION,
]
LABEL_COLUMNS = [layout.REQUEST_ID, layout.ROW, layout.TIME, layout.LABEL, layout.REWARD]
RETENTION_EVERY = 3600.0


@dataclass
class Snapshot:
    """What the aggregator last found: the figures, and how reading the store went."""

    time: float
    window_seconds: float
    versions: list[VersionFigures] = field(default_factory=list)
    labels: LabelCounts = field(default_factory=LabelCounts)
    experiment: list[ArmBuckets] = field(default_factory=list)
    """The running sums of the experiment arms (not limited to the window)."""
    units: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    """Per (version, arm): the kept units' first and last times."""
    unit_lag_seconds: float = 0.0
    """Units first seen this recently are not counted yet (see ``to_json``)."""
    unit_rate: float = 1.0
    pairs: list[PairedFigures] = field(default_factory=list)
    covered_from: float | None = None
    """Everything captured and labelled from this time on has been read."""
    retention_seconds: float = math.inf
    """Older data is deleted: an experiment's totals are complete from then on at best."""
    ready: bool = False
    """The first full read of the store is done."""
    store_error: str | None = None
    """Why the last read of the store failed; None when it worked."""
    last_success: float | None = None
    join_rows: int = 0
    files_read: dict[str, int] = field(default_factory=lambda: {"captures": 0, "labels": 0})
    store_errors: int = 0
    deleted_partitions: int = 0
    scan_seconds: float = 0.0

    def to_json(self, since: float | None = None) -> dict[str, Any]:
        """The document ``GET /live`` answers (the operator's contract); with ``since``
        (``GET /live?since=<seconds since the epoch>``) also ``experiment``: the figures of
        each (version, experiment arm) over the predictions made from then on.

        An arm's ``units`` are the distinct units seen since ``since`` and first seen more than
        ``unit_lag_seconds`` (the grace a label waits for its prediction's file) ago: each
        writer flushes on its own schedule, so the newest units of an arm with more writers,
        or a later flush, would be missing from the count for a while; a count that stops short
        of the lag stops at the same time for both arms."""
        doc: dict[str, Any] = {
            "time": _iso(self.time),
            "windowSeconds": self.window_seconds,
            "ready": self.ready,
            "labels": {
                "received": self.labels.received,
                "matched": self.labels.matched,
                "unmatched": self.labels.unmatched,
                "pending": self.labels.pending,
                "duplicates": self.labels.duplicates,
            },
            "versions": [
                {
                    "version": f.version,
                    "arm": f.arm,
                    "task": f.task,
                    "matched": f.matched,
                    "correct": f.correct if f.task == "classification" else None,
                    "accuracy": f.accuracy,
                    "mae": f.mae,
                    "rmse": f.rmse,
                    "rewards": f.rewards,
                    "rewardMean": f.mean_reward,
                }
                for f in self.versions
            ],
            "store": {
                "ok": self.store_error is None,
                "error": self.store_error,
                "lastSuccess": _iso(self.last_success) if self.last_success else None,
            },
            "joinRows": self.join_rows,
            "pairs": [
                {
                    "first": p.first,
                    "second": p.second,
                    "bothRight": p.both_right,
                    "firstOnly": p.first_only,
                    "secondOnly": p.second_only,
                    "bothWrong": p.both_wrong,
                }
                for p in self.pairs
            ],
        }
        if since is not None:
            totals = {(f.version, f.arm or ""): f for f in totals_since(self.experiment, since)}
            for key in self.units:
                totals.setdefault(key, VersionFigures(version=key[0], arm=key[1], task=""))
            doc["experiment"] = {
                "since": _iso(since),
                "complete": self.covered_from is not None
                and self.covered_from <= max(since, self.time - self.retention_seconds),
                "unitRate": self.unit_rate,
                "arms": [
                    {
                        "version": f.version,
                        "arm": f.arm,
                        "task": f.task,
                        "units": _units_since(
                            self.units.get(key), since, self.time - self.unit_lag_seconds
                        ),
                        "matched": f.matched,
                        "correct": f.correct,
                        "absError": f.abs_error,
                        "squaredError": f.squared_error,
                        "errorFourth": f.error_fourth,
                        "rewards": f.rewards,
                        "rewardSum": f.reward_sum,
                        "rewardSquares": f.reward_squares,
                    }
                    for key, f in sorted(totals.items())
                ],
            }
        return doc


class Aggregator:
    def __init__(
        self,
        settings: MonitorSettings,
        store: Store,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.state = JoinState(
            window_seconds=settings.window_seconds,
            horizon_seconds=settings.horizon_seconds,
            grace_seconds=settings.grace_seconds,
            max_rows=settings.max_rows,
            keep_seconds=settings.retention_days * 86400.0,
            max_units=settings.max_units,
        )
        self._seen: dict[str, set[str]] = {}
        self._started: float | None = None
        self._covered_from: float | None = None
        self._read_back: float | None = None
        """An earlier time an experiment asked about: the next round reads from there."""
        self._last_retention = -RETENTION_EVERY
        self._lock = threading.Lock()
        self.snapshot = Snapshot(
            time=clock(),
            window_seconds=settings.window_seconds,
            retention_seconds=settings.retention_days * 86400.0,
            unit_lag_seconds=settings.grace_seconds,
        )

    # ------------------------------------------------------------ the loop
    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # a bug must not freeze the figures for good: log, go on
                log.exception("Aggregation round failed")
            stop.wait(self.settings.interval_seconds)

    def read_back(self, since: float) -> None:
        """Have the next round read the store from ``since`` when it has not (an experiment's
        start, asked about by ``GET /live?since=``); no further back than retention."""
        oldest = self.clock() - self.settings.retention_days * 86400.0
        since = max(since, oldest)
        with self._lock:
            if self._covered_from is not None and since >= self._covered_from:
                return
            if self._read_back is None or since < self._read_back:
                self._read_back = since

    def tick(self) -> Snapshot:
        """One round: new files in, expired state out, figures and retention."""
        now = self.clock()
        started = time.monotonic()
        s = self.settings
        error = None
        with self._lock:
            back, self._read_back = self._read_back, None
        try:
            if self._started is None or back is not None:
                # The first round (and a read back) reads everything the window's labels may
                # join with, or an experiment needs, from the oldest hour on.
                since = now - s.horizon_seconds - s.window_seconds
                self._catch_up(min(since, back) if back is not None else since, now)
            else:
                capture_dirs = self._capture_dirs(now - s.horizon_seconds, now)
                label_dirs = self._label_dirs(now - s.window_seconds, now)
                self._forget_except({*capture_dirs, *label_dirs})
                for rel in self._new_files(capture_dirs):
                    self._read(rel, "captures")
                for rel in self._new_files(label_dirs):
                    self._read(rel, "labels", now)
            self._started = self._started or now
            if now - self._last_retention >= RETENTION_EVERY:
                self._last_retention = now
                cutoff = datetime.fromtimestamp(now - s.retention_days * 86400, UTC)
                self.snapshot.deleted_partitions += retention.apply(
                    self.store, s.namespace, s.deployment, cutoff
                )
        except Exception as exc:  # the store: down, slow, refusing
            error = _describe(exc)
            log.warning("Could not read the store %s: %s", self.store.root, error)
            if back is not None:
                with self._lock:  # try again next round
                    self._read_back = min(back, self._read_back or back)
        self.state.advance(now)
        figures, counts = self.state.figures(now)
        with self._lock:
            snap = self.snapshot
            snap.time = now
            snap.versions, snap.labels = figures, counts
            snap.experiment = self.state.experiment_buckets()
            snap.units = self.state.units()
            snap.unit_rate = self.state.unit_rate
            snap.pairs = self.state.pairs(now)
            snap.covered_from = self._covered_from
            snap.store_error = error
            if error is None:
                snap.last_success = now
                snap.ready = True
            else:
                snap.store_errors += 1
            snap.join_rows = self.state.rows
            snap.scan_seconds = time.monotonic() - started
        return snap

    def _catch_up(self, since: float, now: float) -> None:
        """A fresh join state fed from ``since`` on, hour by hour in the rows' order, each
        hour's labels seen at its end, so it holds what a state running since then would."""
        s = self.settings
        self.state = JoinState(
            window_seconds=s.window_seconds,
            horizon_seconds=s.horizon_seconds,
            grace_seconds=s.grace_seconds,
            max_rows=s.max_rows,
            keep_seconds=s.retention_days * 86400.0,
            max_units=s.max_units,
        )
        self._seen = {}
        self._covered_from = None
        hours = list(layout.hours(since, now))
        for hour in hours:
            end = min(now, hour.timestamp() + 3600.0)
            capture_dirs = self._capture_dirs(hour.timestamp(), hour.timestamp())
            label_dirs = self._label_dirs(hour.timestamp(), hour.timestamp())
            for rel in self._new_files(capture_dirs):
                self._read(rel, "captures")
            for rel in self._new_files(label_dirs):
                self._read(rel, "labels", end)
            self.state.advance(end)
        # The hours are read whole: everything from the first one's start is in.
        self._covered_from = hours[0].timestamp() if hours else since
        log.info(
            "Read the store from %s: %d predictions held", _iso(self._covered_from), self.state.rows
        )

    # ------------------------------------------------------------ the store
    def _capture_dirs(self, since: float, now: float) -> list[str]:
        s = self.settings
        root = layout.deployment_prefix(layout.CAPTURES, s.namespace, s.deployment)
        dirs = []
        for version in self.store.dirs(root):
            dirs += [f"{root}/{version}/{layout.partition(h)}" for h in layout.hours(since, now)]
        return dirs

    def _label_dirs(self, since: float, now: float) -> list[str]:
        s = self.settings
        root = layout.labels_prefix(s.namespace, s.deployment)
        return [f"{root}/{layout.partition(h)}" for h in layout.hours(since, now)]

    def _new_files(self, dirs: list[str]) -> list[str]:
        out = []
        for directory in dirs:
            seen = self._seen.setdefault(directory, set())
            for name in sorted(self.store.files(directory)):
                if name.endswith(layout.SUFFIX) and name not in seen:
                    out.append(f"{directory}/{name}")
        return out

    def _forget_except(self, listed: set[str]) -> None:
        """Forget the files read in partitions no round lists any more (too old)."""
        for directory in [d for d in self._seen if d not in listed]:
            del self._seen[directory]

    def _read(self, rel: str, stream: str, now: float | None = None) -> None:
        directory, name = rel.rsplit("/", 1)
        columns = CAPTURE_COLUMNS if stream == "captures" else LABEL_COLUMNS
        try:
            table = read_file(self.store, rel, columns)
        except FileNotFoundError:
            return  # deleted by retention meanwhile: nothing to read
        except (OSError, ValueError, KeyError) as exc:
            if _transient(exc):
                raise
            # Not a capture file (or a damaged one): reading it again will not help.
            log.error("Skipped %s: %s", self.store.uri(rel), _describe(exc))
            self._seen[directory].add(name)
            return
        if stream == "captures":
            self.state.add_predictions(table)
        else:
            self.state.add_labels(table, now if now is not None else self.clock())
        self._seen[directory].add(name)
        self.snapshot.files_read[stream] += 1

    def current(self) -> Snapshot:
        with self._lock:
            return self.snapshot


def _units_since(seen: pd.DataFrame | None, since: float, until: float) -> int:
    """Units seen from ``since`` on, first seen before ``until``."""
    if seen is None:
        return 0
    return int(((seen["last"].to_numpy() >= since) & (seen["first"].to_numpy() < until)).sum())


def _transient(exc: BaseException) -> bool:
    """Errors of the store (retry next round) rather than of the file's content."""
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
