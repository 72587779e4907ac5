"""What the join gives: figures per model version (and experiment arm), and what became of
the labels of the window."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VersionFigures:
    """Matched labels of one model version (and experiment arm) over the window."""

    version: str
    arm: str | None
    task: str
    matched: int = 0
    """Matched rows with a label."""
    correct: int = 0
    abs_error: float = 0.0
    squared_error: float = 0.0
    error_fourth: float = 0.0
    """Sum of the fourth powers of the errors: the variance of the squared error (RMSE's
    per-row observation) for an experiment's Welch-type comparison."""
    rewards: int = 0
    reward_sum: float = 0.0
    reward_squares: float = 0.0

    @property
    def accuracy(self) -> float | None:
        return (
            self.correct / self.matched if self.task == "classification" and self.matched else None
        )

    @property
    def mae(self) -> float | None:
        return self.abs_error / self.matched if self.task == "regression" and self.matched else None

    @property
    def rmse(self) -> float | None:
        if self.task != "regression" or not self.matched:
            return None
        return math.sqrt(self.squared_error / self.matched)

    @property
    def mean_reward(self) -> float | None:
        return self.reward_sum / self.rewards if self.rewards else None


@dataclass(frozen=True)
class LabelCounts:
    """Label rows whose label time lies in the window, by what became of them."""

    matched: int = 0
    unmatched: int = 0
    pending: int = 0
    """Not matched yet, still within the grace period."""
    duplicates: int = 0

    @property
    def received(self) -> int:
        return self.matched + self.unmatched + self.pending + self.duplicates


@dataclass(frozen=True)
class PairedFigures:
    """Labels of the window that scored two versions' captures of the same row (a shadow's
    paired outcome): which of the two was right. McNemar's test uses the two ``*_only``."""

    first: str
    second: str
    both_right: int = 0
    first_only: int = 0
    second_only: int = 0
    both_wrong: int = 0

    @property
    def pairs(self) -> int:
        return self.both_right + self.first_only + self.second_only + self.both_wrong


BUCKET_SECONDS = 60.0
"""An experiment's sums are kept per minute of the prediction."""
SUMS = (
    "matched",
    "correct",
    "abs_error",
    "squared_error",
    "error_fourth",
    "rewards",
    "reward_sum",
    "reward_squares",
)
"""The order of the numbers in one minute's sums (the fields of :class:`VersionFigures`)."""


@dataclass(frozen=True)
class ArmBuckets:
    """The running sums of one (version, experiment arm), by minute of the prediction."""

    version: str
    arm: str
    task: str
    minutes: dict[int, Any]
    """Minute (seconds since the epoch // 60) -> the sums in the order of ``SUMS``."""


def totals_since(buckets: list[ArmBuckets], since: float) -> list[VersionFigures]:
    """Each (version, arm)'s figures over the predictions made from ``since`` on.

    A minute that began before ``since`` is left out whole, so nothing from before an
    experiment's start is counted (at the cost of its first partial minute, on both arms).

    >>> b = ArmBuckets("v2", "b", "classification", {100: [3, 2, 0, 0, 0, 1, 5.0, 25.0],
    ...                                             101: [1, 1, 0, 0, 0, 0, 0.0, 0.0]})
    >>> [(f.matched, f.correct, f.rewards, f.reward_sum) for f in totals_since([b], 6000.0)]
    [(4, 3, 1, 5.0)]
    >>> [(f.matched, f.correct) for f in totals_since([b], 6001.0)]
    [(1, 1)]
    """
    first = math.ceil(since / BUCKET_SECONDS)
    out = []
    for arm in buckets:
        total = [0.0] * len(SUMS)
        for minute, sums in arm.minutes.items():
            if minute >= first:
                total = [t + float(s) for t, s in zip(total, sums, strict=True)]
        n, correct, abs_error, squared, fourth, rewards, reward_sum, reward_squares = total
        out.append(
            VersionFigures(
                version=arm.version,
                arm=arm.arm,
                task=arm.task,
                matched=round(n),
                correct=round(correct),
                abs_error=abs_error,
                squared_error=squared,
                error_fourth=fourth,
                rewards=round(rewards),
                reward_sum=reward_sum,
                reward_squares=reward_squares,
            )
        )
    return out
