"""What the join holds: predictions (by 64-bit row key), labels, and matched outcomes.

Columnar numpy arrays, so that matching a file of labels against the horizon's predictions is a
few sorted searches rather than a loop over rows (see :mod:`.join`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

_MIX = np.uint64(0x9E3779B97F4A7C15)


def row_keys(request_ids: Any, rows: Any) -> np.ndarray:
    """64-bit keys of (request id, row) pairs."""
    ids = pd.util.hash_array(np.asarray(request_ids, dtype=object))
    with np.errstate(over="ignore"):
        keys: np.ndarray = ids ^ ((np.asarray(rows, dtype=np.uint64) + np.uint64(1)) * _MIX)
    return keys


@dataclass
class Chunk:
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
class Labels:
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

    def take(self, mask: np.ndarray) -> Labels:
        return Labels(*(getattr(self, f)[mask] for f in LABEL_FIELDS))

    @staticmethod
    def concat(parts: list[Labels]) -> Labels:
        return Labels(*(np.concatenate([getattr(p, f) for p in parts]) for f in LABEL_FIELDS))


LABEL_FIELDS = ("keys", "code", "value", "has_label", "reward", "time", "seen", "versions")


@dataclass
class Outcomes:
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
