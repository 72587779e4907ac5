"""The join of labels with captured predictions, incremental and bounded, without I/O.

Feed it capture tables and label tables in any order (:meth:`JoinState.add_predictions`,
:meth:`JoinState.add_labels`), move its clock (:meth:`JoinState.advance`) and read the
figures per model version (and experiment arm) over the window (:meth:`JoinState.figures`).
The aggregator (``modelwerk monitor``) feeds it what appears in the store; a restarted
aggregator feeds it the store's recent partitions again and arrives at the same figures.

Q: What is a match, and what is counted once?
A: A label row and a prediction row with the same request id and row number, once per model
   version: during a shadow (or anything else that captures one request in two versions) the
   label scores the capture of each version, and each version's figures count it once. A
   second label for a row counts as a duplicate and changes nothing. A request id captured
   twice in one version (a client reusing its ids) joins one of those captures.

Q: How does a label find a version whose capture comes after it matched another?
A: A label is held for ``horizon_seconds`` after it arrived, matched or not, and every new
   capture is matched against the held labels too. It counts as unmatched only when no version
   matched it within ``grace_seconds``.

Q: What do the versions' paired outcomes give?
A: A label that scored two versions says which of them was right on the same row: the
   paired counts (:meth:`JoinState.pairs`) are McNemar's table for a shadow, from every
   replica's captures rather than one process's memory.

Q: And distinct units?
A: Captures of a keyed experiment carry a hash of the unit's key (``unit``): the state counts
   each arm's distinct units with :class:`~modelwerk.runtime.capture.units.UnitCounter`.
"""

from __future__ import annotations

import math
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
    PairedFigures,
    VersionFigures,
)
from modelwerk.runtime.capture.held import Chunk, Labels, Outcomes, row_keys
from modelwerk.runtime.capture.pairs import paired
from modelwerk.runtime.capture.records import class_text
from modelwerk.runtime.capture.units import UnitCounter


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
        max_units: int = 1_000_000,
    ) -> None:
        self.window = window_seconds
        self.keep = keep_seconds
        self.horizon = horizon_seconds
        self.grace = grace_seconds
        self.max_rows = max_rows
        self._chunks: list[Chunk] = []
        self._held: Labels | None = None
        """First labels of the horizon: waiting for a first version, or for more versions."""
        self._outcomes = Outcomes()
        self._matched: list[np.ndarray] = []
        """Label times of labels that scored at least one version."""
        self._unmatched: list[np.ndarray] = []
        self._duplicates: list[np.ndarray] = []
        self._classes: dict[str, int] = {}
        self._groups: dict[tuple[str, str | None], int] = {}
        self._versions: dict[str, int] = {}
        self._tasks: dict[int, str] = {}
        self._armed: set[int] = set()
        """Group codes with an experiment arm."""
        self._buckets: dict[tuple[int, int], np.ndarray] = {}
        """(group, minute of the prediction) -> the sums named in ``SUMS``."""
        self.unit_counter = UnitCounter(max_units)
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
        times = _seconds(table)
        chunk = Chunk(
            keys=keys[order],
            group=group[order],
            version=self._version_bits(group)[order],
            code=code[order],
            value=value[order],
            time=times[order],
            labelled=np.zeros(len(keys), dtype=bool),
        )
        self._chunks.append(chunk)
        if self._held is not None and len(self._held):
            self._match(self._held, [chunk])
        self._add_units(table, group, times)
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
        new = Labels(
            keys, code, value, has_label, reward, _seconds(table), np.full(n, now),
            np.zeros(n, dtype=np.uint64),
        )  # fmt: skip
        # One label per row: the first wins, later ones (in this batch or already held) are
        # duplicates.
        first = ~pd.Series(keys).duplicated().to_numpy()
        if self._held is not None and len(self._held):
            first &= ~np.isin(keys, self._held.keys)
        if (~first).any():
            self._duplicates.append(new.time[~first])
        fresh = new.take(first)
        self._match(fresh, self._chunks)
        self._held = fresh if self._held is None else Labels.concat([self._held, fresh])

    def advance(self, now: float) -> None:
        """Labels still unmatched after the grace period become unmatched; predictions older
        than the horizon and outcomes older than the window are forgotten."""
        oldest = now - self.horizon
        held = self._held
        if held is not None and len(held):
            waiting = held.versions == 0
            expired = waiting & (held.seen < now - self.grace)
            if expired.any():
                self._unmatched.append(held.time[expired])
            # A label that scored a version waits for other versions' captures as long as a
            # prediction stays joinable.
            self._held = held.take(~expired & (waiting | (held.time >= oldest)))
        self._chunks = [c for c in self._chunks if c.newest >= oldest]
        start = now - self.window
        self._outcomes.keep(lambda t: t >= start)
        self._matched = _recent(self._matched, start)
        self._unmatched = _recent(self._unmatched, start)
        self._duplicates = _recent(self._duplicates, start)
        first = math.floor((now - self.keep) / BUCKET_SECONDS)
        self._buckets = {k: v for k, v in self._buckets.items() if k[1] >= first}
        forget = now - self.keep
        self.unit_counter.forget_before(forget)

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
        held = self._held
        counts = LabelCounts(
            matched=_count_since(self._matched, start),
            unmatched=_count_since(self._unmatched, start),
            pending=(
                int(((held.time >= start) & (held.versions == 0)).sum()) if held is not None else 0
            ),
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

    def pairs(self, now: float) -> list[PairedFigures]:
        """For each two classification versions: the window's labels that scored both, by
        which of them was right (McNemar's table). Versions in name order."""
        data = self._outcomes.arrays()
        if not len(data["time"]):
            return []
        names = {code: key for key, code in self._groups.items()}
        group = data["group"].astype(np.int64)
        lookup = np.array(
            [self._tasks.get(code) == "classification" for code in range(len(self._groups))]
        )
        classified = lookup[group]
        inside = (data["time"] >= now - self.window) & data["has_label"].astype(bool) & classified
        version_of = np.array([names[c][0] for c in range(len(names))], dtype=object)
        return paired(
            data["key"][inside], version_of[group[inside]], data["correct"][inside].astype(bool)
        )

    @property
    def unit_rate(self) -> float:
        """The share of units the distinct-unit counts keep."""
        return self.unit_counter.rate

    def units(self) -> dict[tuple[str, str], pd.DataFrame]:
        """Per (version, arm): the kept units' ``first`` and ``last`` times (frames the state
        never changes in place, so the caller may keep them)."""
        names = {code: key for key, code in self._groups.items()}
        return {
            (names[g][0], names[g][1] or ""): u for g, u in self.unit_counter.by_group().items()
        }

    # ------------------------------------------------------------ internals
    def _match(self, labels: Labels, chunks: list[Chunk]) -> None:
        """Match ``labels`` against ``chunks``: each label scores each version's capture of
        its row once (``labels.versions`` records which, in place)."""
        for chunk in chunks:
            if not len(chunk.keys) or not len(labels):
                continue
            pos = np.searchsorted(chunk.keys, labels.keys)
            pos_c = np.minimum(pos, len(chunk.keys) - 1)
            hit = (pos < len(chunk.keys)) & (chunk.keys[pos_c] == labels.keys)
            if not hit.any():
                continue
            idx = np.flatnonzero(hit)
            at = pos_c[idx]
            # The row already took a label: one that is no longer held (past the horizon).
            again = chunk.labelled[at]
            if again.any():
                self._duplicates.append(labels.time[idx[again]])
            idx, at = idx[~again], at[~again]
            # A version this label already scored (the request captured twice in it).
            fresh = (labels.versions[idx] & chunk.version[at]) == 0
            idx, at = idx[fresh], at[fresh]
            if not len(idx):
                continue
            first = labels.versions[idx] == 0
            self._matched.append(labels.time[idx[first]])
            labels.versions[idx] |= chunk.version[at]
            chunk.labelled[at] = True
            self._outcome(chunk, at, labels.take(idx))

    def _outcome(self, chunk: Chunk, rows: np.ndarray, labels: Labels) -> None:
        group = chunk.group[rows]
        is_class = chunk.code[rows] >= 0
        correct = is_class & (chunk.code[rows] == labels.code)
        error = np.where(is_class, np.nan, chunk.value[rows] - labels.value)
        # A regression label that is not a number cannot be scored: unmatched, not wrong.
        usable = ~labels.has_label | is_class | ~np.isnan(labels.value)
        if (~usable).any():
            self._unmatched.append(labels.time[~usable])
        self._outcomes.add(
            key=labels.keys[usable],
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

    def _version_bits(self, group: np.ndarray) -> np.ndarray:
        lookup = np.zeros(len(self._groups), dtype=np.uint64)
        for (version, _), code in self._groups.items():
            bit = self._versions.setdefault(version, len(self._versions)) % 64
            lookup[code] = np.uint64(1 << bit)
        out: np.ndarray = lookup[group]
        return out

    def _add_units(self, table: pa.Table, group: np.ndarray, times: np.ndarray) -> None:
        if layout.UNIT not in table.column_names or not self._armed:
            return
        units = np.asarray(_column(table, layout.UNIT), dtype=object)
        armed = np.isin(group, np.fromiter(self._armed, dtype=np.int64))
        if armed.any():
            self.unit_counter.add(units[armed], group[armed], times[armed])

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
