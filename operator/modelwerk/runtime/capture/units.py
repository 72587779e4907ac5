"""Distinct experiment units per (version, arm), hash-sampled to a bounded size.

Captures of an experiment carry a hash of the unit's key (``unit``, see
``runtime.server.experiment.unit_of``). :class:`UnitCounter` keeps, per group (a (version, arm)
code of the join), the units whose 64-bit hash falls below a threshold, with the first and the
last time each was seen.

Q: Why a threshold on the hash, and why is the count still fair?
A: Memory: an experiment may have millions of users. The threshold starts at "all" and halves
   whenever more than ``max_units`` are kept, dropping the units above it in every arm at once.
   Each unit is thus kept with the same probability in every arm, independently of its arm (the
   hash here is pandas' SipHash of the unit text, unrelated to the assignment's SHA-256 bucket),
   so the kept counts split between the arms as the units do and a sample-ratio test on them is
   exact, on fewer units once the threshold has dropped (``rate`` says how many).

Q: Why first *and* last?
A: Units seen since an experiment's start are those last seen after it; counting only units
   first seen a while ago (the grace a label waits for its prediction's file) leaves out the
   newest units of both arms alike, where a writer that flushes later would otherwise make its
   arm look short.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ALL_UNITS = (1 << 64) - 1
"""The threshold that keeps every unit (hashes are 64-bit)."""


class UnitCounter:
    def __init__(self, max_units: int) -> None:
        self.max_units = max_units
        self.threshold = ALL_UNITS
        """Units whose hash is at most this are kept."""
        self._groups: dict[int, pd.DataFrame] = {}

    @property
    def rate(self) -> float:
        """The share of units kept."""
        return (self.threshold + 1) / 2.0**64

    def add(self, units: np.ndarray, group: np.ndarray, times: np.ndarray) -> None:
        """Units (text, one per row) seen at ``times`` in ``group``; rows without a unit are
        skipped."""
        present = pd.notna(units)
        if not present.any():
            return
        hashes = pd.util.hash_array(np.asarray(units[present], dtype=object))
        kept = hashes <= np.uint64(self.threshold)
        frame = pd.DataFrame(
            {"g": group[present][kept], "h": hashes[kept], "t": times[present][kept]}
        )
        for g, part in frame.groupby("g"):
            seen = part.groupby("h")["t"].agg(first="min", last="max")
            old = self._groups.get(int(g))
            self._groups[int(g)] = (
                seen
                if old is None
                else pd.concat([old, seen]).groupby(level=0).agg({"first": "min", "last": "max"})
            )
        while sum(len(u) for u in self._groups.values()) > self.max_units:
            self.threshold //= 2
            limit = np.uint64(self.threshold)
            self._groups = {g: u[u.index.to_numpy() <= limit] for g, u in self._groups.items()}

    def forget_before(self, time: float) -> None:
        """Drop the units not seen since ``time``."""
        self._groups = {g: u[u["last"] >= time] for g, u in self._groups.items()}

    def by_group(self) -> dict[int, pd.DataFrame]:
        """Group -> the kept units' ``first`` and ``last`` times, indexed by hash (frames
        that are replaced, never changed in place, so a caller may keep them)."""
        return dict(self._groups)
