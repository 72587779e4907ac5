"""Per-feature drift of live inputs against the training profile, over a sliding window.

The batch thread appends every predicted row to a ring buffer of the last ``window`` rows
(one numpy slice assignment per batch, not per request). Scores are computed from a snapshot
of the buffer only when asked (at scrape time, at most every ``interval`` seconds), never on
the request path:

* numeric features: PSI over the profile's quantile bins, and the two-sample
  Kolmogorov-Smirnov statistic against the profile's sample;
* categorical features: PSI over the profile's value frequencies (values never seen in
  training share one extra bin).

A feature's score is only reported once the window holds enough of its values: given the
operator's threshold for the configured method, enough that an undrifted window crosses it
with probability at most the false-alarm budget (:mod:`.drift_floor` derives the count per
feature from its bins and reference size); without a threshold (a server run by hand),
``min_rows``. Until then the feature has no score at all, which reads as "not enough data",
never as 0.

The state lives in one process: with several workers each keeps its own window.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from modelwerk.runtime.profile import CategoricalProfile, NumericProfile, Profile

log = logging.getLogger("modelwerk.serve")

EPSILON = 1e-4
"""Floor for bin fractions, so an empty bin adds a large but finite term to PSI."""
_UNSEEN = "\x00unseen"


def psi(actual: np.ndarray, expected: np.ndarray) -> float:
    """Population stability index of two distributions over the same bins."""
    a = np.clip(actual, EPSILON, None)
    e = np.clip(expected, EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_psi(values: np.ndarray, edges: np.ndarray, fractions: np.ndarray) -> float:
    # searchsorted(side="left") puts v in bin i when edges[i-1] < v <= edges[i], as the profile does
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(fractions))
    return psi(counts / counts.sum(), fractions)


def ks_statistic(values: np.ndarray, reference_sorted: np.ndarray) -> float:
    """The two-sample KS statistic: the largest distance between the empirical CDFs."""
    live = np.sort(values)
    points = np.concatenate([live, reference_sorted])
    cdf_live = np.searchsorted(live, points, side="right") / live.size
    cdf_ref = np.searchsorted(reference_sorted, points, side="right") / reference_sorted.size
    return float(np.max(np.abs(cdf_live - cdf_ref)))


def categorical_psi(values: list[str], frequencies: dict[str, float]) -> float:
    counts = Counter(v if v in frequencies else _UNSEEN for v in values)
    keys = [*frequencies, _UNSEEN]
    total = sum(counts.values())
    actual = np.array([counts.get(k, 0) / total for k in keys])
    expected = np.array([frequencies.get(k, 0.0) for k in keys])
    return psi(actual, expected)


@dataclass(frozen=True)
class DriftScores:
    rows: int
    """Rows in the window when computed."""
    scores: dict[tuple[str, str], float]
    """(feature, method) -> score, for the features whose values in the window reached their
    rows needed (:attr:`DriftMonitor.rows_needed`); empty before any did."""


Key = tuple[str, str]


class DriftMonitor:
    """Ring buffer of recent inputs plus the reference profile; thread-safe.

    ``method`` and ``threshold`` are the operator's: with a threshold, the scores of ``method``
    wait for the rows :mod:`.drift_floor` computes (at least ``min_rows``, possibly more than
    the window holds: then that feature is never reported, and a warning says so); the other
    method's scores, and every score without a threshold, wait for ``min_rows`` (capped at the
    window).
    """

    def __init__(
        self,
        profile: Profile,
        columns: list[str],
        window: int,
        min_rows: int,
        interval_s: float,
        method: str = "psi",
        threshold: float | None = None,
        false_alarm: float = 0.01,
    ) -> None:
        self.window = window
        self.min_rows = min(min_rows, window)
        self.interval_s = interval_s
        self.method = method
        self._numeric: list[tuple[int, str, np.ndarray, np.ndarray, np.ndarray | None]] = []
        self._categorical: list[tuple[int, str, dict[str, float]]] = []
        references: dict[str, int | None] = {}
        for j, column in enumerate(columns):
            feature = profile.features.get(column)
            if isinstance(feature, NumericProfile) and feature.bin_fractions:
                sample = (
                    np.sort(np.asarray(feature.sample, dtype=np.float64))
                    if feature.sample
                    else None
                )
                self._numeric.append(
                    (
                        j,
                        column,
                        np.asarray(feature.bin_edges, dtype=np.float64),
                        np.asarray(feature.bin_fractions, dtype=np.float64),
                        sample,
                    )
                )
                references[column] = feature.count or None
            elif isinstance(feature, CategoricalProfile) and feature.frequencies:
                self._categorical.append((j, column, dict(feature.frequencies)))
                references[column] = feature.count or None
        self.rows_needed: dict[Key, float] = {key: float(self.min_rows) for key in self.features}
        """(feature, method) -> values of the feature the window must hold before that score
        is reported; ``math.inf`` when no window is enough."""
        if threshold is not None:
            self._apply_floor(method, threshold, false_alarm, references)
        self._num_idx = [n[0] for n in self._numeric]
        self._cat_idx = [c[0] for c in self._categorical]
        self._num_buf = np.full((window, len(self._numeric)), np.nan)
        self._cat_buf = np.empty((window, len(self._categorical)), dtype=object)
        self._pos = 0
        self._rows = 0
        self._seen = 0  # rows ever observed; tells whether a recompute could change anything
        self._lock = threading.Lock()
        self._last: DriftScores = DriftScores(0, {})
        self._last_at = -math.inf
        self._last_seen = -1

    def _apply_floor(
        self,
        method: str,
        threshold: float,
        false_alarm: float,
        references: dict[str, int | None],
    ) -> None:
        # Imported here: drift_floor needs this module's EPSILON, and scipy only loads when
        # there is a threshold to derive floors for.
        from modelwerk.runtime.server.drift_floor import ks_rows_needed, psi_rows_needed

        mine = [key for key in self.features if key[1] == method]
        if not mine:
            return
        alpha = false_alarm / len(mine)  # the highest of len(mine) scores is compared
        fractions: dict[str, list[float]] = {
            column: [float(f) for f in frac] for _, column, _, frac, _ in self._numeric
        }
        fractions.update({column: list(freq.values()) for _, column, freq in self._categorical})
        samples = {column: s.size for _, column, _, _, s in self._numeric if s is not None}
        for key in mine:
            column = key[0]
            if method == "psi":
                floor = psi_rows_needed(fractions[column], references[column], threshold, alpha)
            else:
                floor = ks_rows_needed(samples[column], threshold, alpha)
            self.rows_needed[key] = max(float(self.min_rows), floor)
        never = {k: v for k, v in self.rows_needed.items() if v > self.window}
        for (column, m), rows in sorted(never.items()):
            if math.isinf(rows):
                log.warning(
                    "Drift of %s is not reported: no window tells %s %g from sampling noise "
                    "against a training profile of %s rows; raise the threshold",
                    column, m.upper(), threshold, references.get(column),
                )  # fmt: skip
            else:
                log.warning(
                    "Drift of %s is not reported: %s %g needs %d rows, the window holds %d; "
                    "raise the window or the threshold",
                    column, m.upper(), threshold, rows, self.window,
                )  # fmt: skip

    @property
    def features(self) -> list[Key]:
        """(feature, method) pairs that get a score."""
        pairs = []
        for _, column, _, _, sample in self._numeric:
            pairs.append((column, "psi"))
            if sample is not None:
                pairs.append((column, "ks"))
        pairs += [(column, "psi") for _, column, _ in self._categorical]
        return pairs

    @property
    def rows(self) -> int:
        return self._rows

    def observe(self, x: np.ndarray) -> None:
        """Append rows ``[n, n_columns]`` (signature order) to the window."""
        if x.shape[0] > self.window:
            x = x[-self.window :]
        n = x.shape[0]
        num = x[:, self._num_idx].astype(np.float64) if self._num_idx else None
        cat = x[:, self._cat_idx] if self._cat_idx else None
        with self._lock:
            first = min(n, self.window - self._pos)
            for start, stop, src in (
                (self._pos, self._pos + first, slice(0, first)),
                (0, n - first, slice(first, n)),
            ):
                if stop > start:
                    if num is not None:
                        self._num_buf[start:stop] = num[src]
                    if cat is not None:
                        self._cat_buf[start:stop] = cat[src]
            self._pos = (self._pos + n) % self.window
            self._rows = min(self.window, self._rows + n)
            self._seen += n

    def scores(self, force: bool = False) -> DriftScores:
        """The latest scores, recomputed if older than the interval and new rows came in."""
        now = time.monotonic()
        if not force and (now - self._last_at < self.interval_s or self._seen == self._last_seen):
            return self._last
        with self._lock:
            rows, seen = self._rows, self._seen
            num = self._num_buf[:rows].copy()
            cat = self._cat_buf[:rows].copy()
        needed = self.rows_needed
        result: dict[Key, float] = {}
        for k, (_, column, edges, fractions, sample) in enumerate(self._numeric):
            values = num[:, k]
            values = values[~np.isnan(values)]
            if values.size == 0:
                continue
            if values.size >= needed[(column, "psi")]:
                result[(column, "psi")] = numeric_psi(values, edges, fractions)
            if sample is not None and sample.size and values.size >= needed[(column, "ks")]:
                result[(column, "ks")] = ks_statistic(values, sample)
        for k, (_, column, frequencies) in enumerate(self._categorical):
            present = [str(v) for v in cat[:, k] if v is not None]
            if present and len(present) >= needed[(column, "psi")]:
                result[(column, "psi")] = categorical_psi(present, frequencies)
        self._last = DriftScores(rows, result)
        self._last_at = now
        self._last_seen = seen
        return self._last
