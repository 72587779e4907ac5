"""The join of labels with captured predictions, incremental and bounded, without I/O.

Feed it capture tables and label tables in any order (:meth:`JoinState.add_predictions`,
:meth:`JoinState.add_labels`), move its clock (:meth:`JoinState.advance`) and read the
figures per model version (and experiment arm) over the window (:meth:`JoinState.figures`).
The aggregator (``modelwerk monitor``) feeds it what appears in the store; a restarted
aggregator feeds it the store's recent partitions again and arrives at the same figures.

Q: What is a match, and what is counted once?
A: A label row and a prediction row with the same request id and row number. Each prediction
   takes at most one label: a second label for it counts as a duplicate and changes nothing.
   A request id captured twice (a client reusing its ids) joins its earliest capture.

Q: Which labels count as unmatched?
A: Those whose prediction is not found ``grace_seconds`` after the label was seen. A label
   may be seen before its prediction's file (each writer flushes on its own schedule), so it
   waits that long first. Predictions stay joinable for ``horizon_seconds`` after they were
   made; a label for an older, unknown or never-captured request ends up unmatched. Never an
   error.

Q: Why hashes rather than the ids themselves?
A: Memory. The state holds every prediction of the horizon; a 64-bit hash of (request id, row)
   is 8 bytes where the id string is 60 or more. Two different rows share a hash with
   probability about n²/2⁶⁵ (10⁻⁶ for ten million rows in the horizon).

Q: Which time does the window use?
A: The label's: a figure over the last hour covers the labels posted in that hour, whenever
   their predictions were made (but within the horizon).

Q: And an experiment, which runs longer than any window?
A: Its test needs every observation since it began, so the outcomes of predictions captured
   with an experiment arm are also added up, never expiring with the window, per (version,
   arm) and minute of the *prediction*: :meth:`JoinState.experiment_buckets`, summed from an
   experiment's start by :func:`~modelwerk.runtime.capture.figures.totals_since`. A few
   numbers per minute and arm, kept for ``keep_seconds`` (the store's retention). What the
   state does not hold after an aggregator restart (outcomes whose labels came before the
   first round's look back) is not counted again: the figures restart from the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from modelwerk.runtime.capture import layout
from modelwerk.runtime.capture.figures import (
    BUCKET_SECONDS,
    SUMS,
    ArmBuckets,
    LabelCounts,
    VersionFigures,
)
from modelwerk.runtime.capture.records import class_text

_MIX = np.uint64(0x9E3779B97F4A7C15)


def row_keys(request_ids: Any, rows: Any) -> np.ndarray:
    """64-bit keys of (request id, row) pairs."""
    ids = pd.util.hash_array(np.asarray(request_ids, dtype=object))
    with np.errstate(over="ignore"):
        keys: np.ndarray = ids ^ ((np.asarray(rows, dtype=np.uint64) + np.uint64(1)) * _MIX)
    return keys


@dataclass
class _Chunk:
    keys: np.ndarray  # uint64, sorted
    group: np.ndarray  # int32 codes of (version, arm)
    code: np.ndarray  # int64 class codes; -1 for regression rows
    value: np.ndarray  # float64 predicted values; NaN for classes
    time: np.ndarray  # float64 seconds
    labelled: np.ndarray  # bool

    @property
    def newest(self) -> float:
        return float(self.time.max()) if len(self.time) else -math.inf


@dataclass
class _Labels:
    keys: np.ndarray
    code: np.ndarray  # class codes of the label; -1 when none
    value: np.ndarray  # the label as a number; NaN when none or not numeric
    has_label: np.ndarray  # bool
    reward: np.ndarray  # NaN when none
    time: np.ndarray  # label time
    seen: np.ndarray  # when the join first saw it

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, mask: np.ndarray) -> _Labels:
        return _Labels(*(getattr(self, f)[mask] for f in _LABEL_FIELDS))

    @staticmethod
    def concat(parts: list[_Labels]) -> _Labels:
        return _Labels(*(np.concatenate([getattr(p, f) for p in parts]) for f in _LABEL_FIELDS))


_LABEL_FIELDS = ("keys", "code", "value", "has_label", "reward", "time", "seen")


@dataclass
class _Outcomes:
    group: list[np.ndarray] = field(default_factory=list)
    time: list[np.ndarray] = field(default_factory=list)
    has_label: list[np.ndarray] = field(default_factory=list)
    correct: list[np.ndarray] = field(default_factory=list)
    error: list[np.ndarray] = field(default_factory=list)
    reward: list[np.ndarray] = field(default_factory=list)

    def add(self, **arrays: np.ndarray) -> None:
        for name, values in arrays.items():
            getattr(self, name).append(values)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            name: np.concatenate(parts) if parts else np.empty(0)
            for name, parts in vars(self).items()
        }

    def keep(self, mask_of: Any) -> None:
        data = self.arrays()
        if not len(data["time"]):
            return
        mask = mask_of(data["time"])
        for name, values in data.items():
            setattr(self, name, [values[mask]])


class JoinState:
    """Predictions of the last ``horizon_seconds``, labels waiting for them, and the matched
    outcomes of the last ``window_seconds``. At most ``max_rows`` predictions are held; beyond
    that the oldest are forgotten first (their labels will be unmatched)."""

    def __init__(
        self,
        *,
        window_seconds: float,
        horizon_seconds: float,
        grace_seconds: float,
        max_rows: int = 5_000_000,
        keep_seconds: float = 31 * 86400,
    ) -> None:
        self.window = window_seconds
        self.keep = keep_seconds
        self.horizon = horizon_seconds
        self.grace = grace_seconds
        self.max_rows = max_rows
        self._chunks: list[_Chunk] = []
        self._pending: _Labels | None = None
        self._outcomes = _Outcomes()
        self._unmatched: list[np.ndarray] = []
        self._duplicates: list[np.ndarray] = []
        self._classes: dict[str, int] = {}
        self._groups: dict[tuple[str, str | None], int] = {}
        self._tasks: dict[int, str] = {}
        self._armed: set[int] = set()
        """Group codes with an experiment arm."""
        self._buckets: dict[tuple[int, int], np.ndarray] = {}
        """(group, minute of the prediction) -> the sums named in ``SUMS``."""
        self.forgotten_rows = 0

    # ------------------------------------------------------------ input
    @property
    def rows(self) -> int:
        return sum(len(c.keys) for c in self._chunks)

    def add_predictions(self, table: pa.Table) -> None:
        """Capture rows (at least request_id, row, time, version, arm, prediction)."""
        if table.num_rows == 0:
            return
        keys = row_keys(_column(table, layout.REQUEST_ID), _column(table, layout.ROW))
        group = self._group_codes(table)
        kind = table.schema.field(layout.PREDICTION).type
        predictions = _column(table, layout.PREDICTION)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            code = self._class_codes(predictions)
            value = np.full(len(keys), np.nan)
        else:
            code = np.full(len(keys), -1, dtype=np.int64)
            value = np.asarray(predictions, dtype=np.float64)
        order = np.argsort(keys, kind="stable")
        chunk = _Chunk(
            keys=keys[order],
            group=group[order],
            code=code[order],
            value=value[order],
            time=_seconds(table)[order],
            labelled=np.zeros(len(keys), dtype=bool),
        )
        self._chunks.append(chunk)
        if self._pending is not None and len(self._pending):
            self._pending = self._match(self._pending, [chunk])
        self._bound_rows()

    def add_labels(self, table: pa.Table, now: float) -> None:
        """Label rows (request_id, row, time, label, reward), seen at ``now``."""
        if table.num_rows == 0:
            return
        n = table.num_rows
        keys = row_keys(_column(table, layout.REQUEST_ID), _column(table, layout.ROW))
        raw = _column(table, layout.LABEL) if layout.LABEL in table.column_names else [None] * n
        labels = np.asarray(raw, dtype=object)
        has_label = np.array([v is not None for v in labels.tolist()], dtype=bool)
        code = np.full(n, -1, dtype=np.int64)
        value = np.full(n, np.nan)
        if has_label.any():
            present = labels[has_label]
            code[has_label] = self._class_codes(class_text(present))
            value[has_label] = pd.to_numeric(pd.Series(present), errors="coerce").to_numpy(float)
        reward = (
            np.asarray(_column(table, layout.REWARD), dtype=np.float64)
            if layout.REWARD in table.column_names
            else np.full(n, np.nan)
        )
        new = _Labels(keys, code, value, has_label, reward, _seconds(table), np.full(n, now))
        # One label per row: the first wins, later ones (in this batch or already waiting)
        # are duplicates.
        first = ~pd.Series(keys).duplicated().to_numpy()
        if self._pending is not None and len(self._pending):
            first &= ~np.isin(keys, self._pending.keys)
        if (~first).any():
            self._duplicates.append(new.time[~first])
        waiting = self._match(new.take(first), self._chunks)
        self._pending = (
            waiting if self._pending is None else _Labels.concat([self._pending, waiting])
        )

    def advance(self, now: float) -> None:
        """Labels still unmatched after the grace period become unmatched; predictions older
        than the horizon and outcomes older than the window are forgotten."""
        if self._pending is not None and len(self._pending):
            expired = self._pending.seen < now - self.grace
            if expired.any():
                self._unmatched.append(self._pending.time[expired])
                self._pending = self._pending.take(~expired)
        oldest = now - self.horizon
        self._chunks = [c for c in self._chunks if c.newest >= oldest]
        start = now - self.window
        self._outcomes.keep(lambda t: t >= start)
        self._unmatched = _recent(self._unmatched, start)
        self._duplicates = _recent(self._duplicates, start)
        first = math.floor((now - self.keep) / BUCKET_SECONDS)
        self._buckets = {k: v for k, v in self._buckets.items() if k[1] >= first}

    # ------------------------------------------------------------ output
    def figures(self, now: float) -> tuple[list[VersionFigures], LabelCounts]:
        start = now - self.window
        data = self._outcomes.arrays()
        inside = data["time"] >= start
        group = data["group"][inside].astype(np.int64)
        has_label = data["has_label"][inside].astype(bool)
        correct = data["correct"][inside].astype(bool)
        error = data["error"][inside].astype(np.float64)
        reward = data["reward"][inside].astype(np.float64)
        names = {code: key for key, code in self._groups.items()}
        out = []
        for code in sorted(set(group.tolist())):
            mine = group == code
            labelled = mine & has_label
            rewarded = mine & ~np.isnan(reward)
            errors = error[labelled & ~np.isnan(error)]
            version, arm = names[code]
            out.append(
                VersionFigures(
                    version=version,
                    arm=arm,
                    task=self._tasks[code],
                    matched=int(labelled.sum()),
                    correct=int((correct & labelled).sum()),
                    abs_error=float(np.abs(errors).sum()),
                    squared_error=float((errors**2).sum()),
                    error_fourth=float((errors**4).sum()),
                    rewards=int(rewarded.sum()),
                    reward_sum=float(reward[rewarded].sum()),
                    reward_squares=float((reward[rewarded] ** 2).sum()),
                )
            )
        pending = self._pending
        counts = LabelCounts(
            matched=int(inside.sum()),
            unmatched=_count_since(self._unmatched, start),
            pending=int((pending.time >= start).sum()) if pending is not None else 0,
            duplicates=_count_since(self._duplicates, start),
        )
        return out, counts

    def experiment_buckets(self) -> list[ArmBuckets]:
        """The running sums of every (version, arm) of an experiment, by minute (a copy)."""
        names = {code: key for key, code in self._groups.items()}
        by_group: dict[int, dict[int, np.ndarray]] = {}
        for (code, minute), sums in self._buckets.items():
            by_group.setdefault(code, {})[minute] = sums.copy()
        return [
            ArmBuckets(names[code][0], names[code][1] or "", self._tasks[code], minutes)
            for code, minutes in sorted(by_group.items())
        ]

    # ------------------------------------------------------------ internals
    def _match(self, labels: _Labels, chunks: list[_Chunk]) -> _Labels:
        """Match ``labels`` against ``chunks``; what stays unmatched is returned."""
        left = np.ones(len(labels), dtype=bool)
        for chunk in chunks:
            if not left.any():
                break
            if not len(chunk.keys):
                continue
            pos = np.searchsorted(chunk.keys, labels.keys)
            pos_c = np.minimum(pos, len(chunk.keys) - 1)
            hit = left & (pos < len(chunk.keys)) & (chunk.keys[pos_c] == labels.keys)
            if not hit.any():
                continue
            at = pos_c[hit]
            again = chunk.labelled[at]
            if again.any():
                self._duplicates.append(labels.time[hit][again])
            fresh_idx = np.flatnonzero(hit)[~again]
            rows = at[~again]
            chunk.labelled[rows] = True
            self._outcome(chunk, rows, labels.take(fresh_idx))
            left[hit] = False
        return labels.take(left)

    def _outcome(self, chunk: _Chunk, rows: np.ndarray, labels: _Labels) -> None:
        group = chunk.group[rows]
        is_class = chunk.code[rows] >= 0
        correct = is_class & (chunk.code[rows] == labels.code)
        error = np.where(is_class, np.nan, chunk.value[rows] - labels.value)
        # A regression label that is not a number cannot be scored: unmatched, not wrong.
        usable = ~labels.has_label | is_class | ~np.isnan(labels.value)
        if (~usable).any():
            self._unmatched.append(labels.time[~usable])
        self._outcomes.add(
            group=group[usable],
            time=labels.time[usable],
            has_label=labels.has_label[usable],
            correct=correct[usable],
            error=error[usable],
            reward=labels.reward[usable],
        )
        armed = usable & np.isin(group, np.fromiter(self._armed, dtype=np.int64))
        if armed.any():
            self._tally(
                group[armed],
                chunk.time[rows][armed],
                labels.has_label[armed],
                correct[armed],
                error[armed],
                labels.reward[armed],
            )

    def _tally(
        self,
        group: np.ndarray,
        predicted: np.ndarray,
        has_label: np.ndarray,
        correct: np.ndarray,
        error: np.ndarray,
        reward: np.ndarray,
    ) -> None:
        """Add experiment outcomes to their (group, minute) sums, in the order of ``SUMS``."""
        scored = has_label & ~np.isnan(error)
        e = np.where(scored, np.abs(np.nan_to_num(error)), 0.0)
        rewarded = ~np.isnan(reward)
        r = np.where(rewarded, reward, 0.0)
        columns = [has_label, correct & has_label, e, e**2, e**4, rewarded, r, r**2]
        values = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
        minutes = np.floor(predicted / BUCKET_SECONDS).astype(np.int64)
        frame = pd.DataFrame(values, columns=list(SUMS))
        frame["group"], frame["minute"] = group.astype(np.int64), minutes
        for (code, minute), sums in frame.groupby(["group", "minute"]).sum().iterrows():
            key = (int(code), int(minute))
            add = sums.to_numpy(np.float64)
            self._buckets[key] = self._buckets[key] + add if key in self._buckets else add

    def _class_codes(self, texts: Any) -> np.ndarray:
        codes, uniques = pd.factorize(np.asarray(texts, dtype=object), use_na_sentinel=True)
        lookup = np.array(
            [self._classes.setdefault(str(u), len(self._classes)) for u in uniques] + [-1],
            dtype=np.int64,
        )
        chosen: np.ndarray = lookup[codes]  # the sentinel -1 picks the trailing -1
        return chosen

    def _group_codes(self, table: pa.Table) -> np.ndarray:
        kind = table.schema.field(layout.PREDICTION).type
        task = "regression" if pa.types.is_floating(kind) else "classification"
        n = table.num_rows
        versions = (
            _column(table, layout.VERSION) if layout.VERSION in table.column_names else [""] * n
        )
        arms = _column(table, layout.ARM) if layout.ARM in table.column_names else [None] * n
        frame = pd.DataFrame(
            {"v": np.asarray(versions, dtype=object), "a": np.asarray(arms, dtype=object)}
        )
        codes, uniques = pd.factorize(pd.MultiIndex.from_frame(frame))
        lookup = []
        for version, arm in uniques:
            key = (str(version) if version is not None else "", None if _missing(arm) else str(arm))
            code = self._groups.setdefault(key, len(self._groups))
            self._tasks.setdefault(code, task)
            if key[1] is not None:
                self._armed.add(code)
            lookup.append(code)
        groups: np.ndarray = np.asarray(lookup, dtype=np.int32)[codes]
        return groups

    def _bound_rows(self) -> None:
        total = self.rows
        while total > self.max_rows and len(self._chunks) > 1:
            oldest = min(range(len(self._chunks)), key=lambda i: self._chunks[i].newest)
            total -= len(self._chunks[oldest].keys)
            self.forgotten_rows += len(self._chunks[oldest].keys)
            del self._chunks[oldest]


def _column(table: pa.Table, name: str) -> np.ndarray:
    values: np.ndarray = table.column(name).to_numpy(zero_copy_only=False)
    return values


def _seconds(table: pa.Table) -> np.ndarray:
    values = table.column(layout.TIME).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    seconds: np.ndarray = values.to_numpy(zero_copy_only=False).astype(np.float64) / 1000.0
    return seconds


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _recent(parts: list[np.ndarray], start: float) -> list[np.ndarray]:
    if not parts:
        return parts
    times = np.concatenate(parts)
    return [times[times >= start]]


def _count_since(parts: list[np.ndarray], start: float) -> int:
    return int(sum(int((p >= start).sum()) for p in parts))
