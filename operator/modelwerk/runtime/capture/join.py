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
A: Captures of a keyed experiment carry a hash of the unit's key (``unit``). The state keeps,
   per (version, arm), the units whose hash falls below a threshold, with the first and the
   last time each was seen; the threshold starts at "all" and halves whenever more than ``max_units`` are
   kept, dropping the units above it in every arm at once. Each unit is thus kept with the
   same probability in every arm, independently of its arm (the hash is not the assignment's),
   so the kept counts split between the arms as the units do: a sample-ratio test on them is
   exact, on fewer units once the threshold has dropped.

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
    PairedFigures,
    VersionFigures,
)
from modelwerk.runtime.capture.records import class_text

_MIX = np.uint64(0x9E3779B97F4A7C15)
ALL_UNITS = (1 << 64) - 1
"""The unit threshold that keeps every unit (hashes are 64-bit)."""


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
    version: np.ndarray  # uint64: one bit per version (its code modulo 64)
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
    versions: np.ndarray  # uint64: the bits of the versions it scored (0: none yet)

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, mask: np.ndarray) -> _Labels:
        return _Labels(*(getattr(self, f)[mask] for f in _LABEL_FIELDS))

    @staticmethod
    def concat(parts: list[_Labels]) -> _Labels:
        return _Labels(*(np.concatenate([getattr(p, f) for p in parts]) for f in _LABEL_FIELDS))


_LABEL_FIELDS = ("keys", "code", "value", "has_label", "reward", "time", "seen", "versions")


@dataclass
class _Outcomes:
    key: list[np.ndarray] = field(default_factory=list)
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
        max_units: int = 1_000_000,
    ) -> None:
        self.window = window_seconds
        self.keep = keep_seconds
        self.horizon = horizon_seconds
        self.grace = grace_seconds
        self.max_rows = max_rows
        self._chunks: list[_Chunk] = []
        self._held: _Labels | None = None
        """First labels of the horizon: waiting for a first version, or for more versions."""
        self._outcomes = _Outcomes()
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
        self.max_units = max_units
        self.unit_threshold = ALL_UNITS
        """Units whose hash is at most this are kept (see the module docstring)."""
        self._units: dict[int, pd.DataFrame] = {}
        """Experiment group -> ``first`` and ``last`` time each kept unit was seen, indexed by
        the unit's hash."""
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
        chunk = _Chunk(
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
        new = _Labels(
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
        self._held = fresh if self._held is None else _Labels.concat([self._held, fresh])

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
        self._units = {g: u[u["last"] >= forget] for g, u in self._units.items()}

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
        versions_inside = {names[c][0] for c in np.unique(group[inside]).tolist()}
        if len(versions_inside) < 2:  # the usual case: nothing to pair, nothing to pivot
            return []
        frame = pd.DataFrame(
            {
                "key": data["key"][inside].astype(np.uint64),
                "version": np.array([names[c][0] for c in range(len(names))], dtype=object)[
                    group[inside]
                ],
                "correct": data["correct"][inside].astype(bool),
            }
        ).drop_duplicates(["key", "version"])
        table = frame.pivot(index="key", columns="version", values="correct")
        versions = sorted(table.columns)
        out = []
        for i, first in enumerate(versions):
            for second in versions[i + 1 :]:
                both = table[[first, second]].dropna()
                if both.empty:
                    continue
                x = both[first].astype(bool).to_numpy()
                y = both[second].astype(bool).to_numpy()
                out.append(
                    PairedFigures(
                        first=first,
                        second=second,
                        both_right=int((x & y).sum()),
                        first_only=int((x & ~y).sum()),
                        second_only=int((~x & y).sum()),
                        both_wrong=int((~x & ~y).sum()),
                    )
                )
        return out

    @property
    def unit_rate(self) -> float:
        """The share of units the distinct-unit counts keep."""
        return (self.unit_threshold + 1) / 2.0**64

    def units(self) -> dict[tuple[str, str], pd.DataFrame]:
        """Per (version, arm): the kept units' ``first`` and ``last`` times (frames the state
        never changes in place, so the caller may keep them)."""
        names = {code: key for key, code in self._groups.items()}
        return {(names[g][0], names[g][1] or ""): u for g, u in self._units.items()}

    # ------------------------------------------------------------ internals
    def _match(self, labels: _Labels, chunks: list[_Chunk]) -> None:
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
        """Keep the experiment units of these rows that fall below the unit threshold."""
        if layout.UNIT not in table.column_names or not self._armed:
            return
        units = np.asarray(_column(table, layout.UNIT), dtype=object)
        present = pd.notna(units) & np.isin(group, np.fromiter(self._armed, dtype=np.int64))
        if not present.any():
            return
        hashes = pd.util.hash_array(units[present])
        kept = hashes <= np.uint64(self.unit_threshold)
        frame = pd.DataFrame(
            {"g": group[present][kept], "h": hashes[kept], "t": times[present][kept]}
        )
        for g, part in frame.groupby("g"):
            seen = part.groupby("h")["t"].agg(first="min", last="max")
            old = self._units.get(int(g))
            merged = (
                seen
                if old is None
                else pd.concat([old, seen]).groupby(level=0).agg({"first": "min", "last": "max"})
            )
            self._units[int(g)] = merged
        while sum(len(u) for u in self._units.values()) > self.max_units:
            self.unit_threshold //= 2
            limit = np.uint64(self.unit_threshold)
            self._units = {g: u[u.index.to_numpy() <= limit] for g, u in self._units.items()}

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
