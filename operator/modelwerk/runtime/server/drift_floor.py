"""How many rows a drift window needs before its score can be compared with a threshold.

A window of ``n`` rows drawn from the *training* distribution still scores above zero: the
live histogram (or empirical CDF) differs from the reference by sampling noise alone. A score
that is compared with a threshold before the window is large enough raises false alarms, and a
false alarm can start a retraining run. The server therefore reports a feature's score only
once its window holds the rows computed here: the fewest rows for which an undrifted window
crosses the threshold with probability at most ``alpha / features``.

Q: Where does ``alpha / features`` come from?
A: The operator compares the *highest* feature score with the threshold, so the false-alarm
budget ``alpha`` (per window of a server process) is shared by the features scored with that
method (Bonferroni). Each feature gets its own floor because its bins (and its reference size)
are its own.

Q: Why not the textbook ``n >= chi2.ppf(1 - a, k - 1) / threshold``?
A: ``n · PSI`` tends to a chi-square with ``k - 1`` degrees of freedom, like Pearson's
statistic, and that closed form is what the README tabulates. At the window sizes that matter
the tail of PSI is much heavier, though: a nearly empty bin adds ``e·ln(e/a)`` instead of
``(a - e)²/e``, and an empty one is floored at :data:`~.drift.EPSILON` and adds ``e·ln(e/1e-4)``
(0.69 for a bin holding a tenth of the data). With ten equal bins the chi-square form puts the
0.25 % quantile of PSI at 0.20 for 128 rows where it is 0.22, and for uneven bins (iris petal
width has one of 3 %) the real tail probability is fifty times the chi-square one. So the
floor is computed from the distribution of PSI itself: each bin's count is Poisson with mean
``n·e`` (independent bins; this leaves out the one constraint of a multinomial, which makes the
estimate slightly high, i.e. the floor slightly conservative), each count is mapped to its PSI
term exactly as :func:`~.drift.psi` computes it, and the terms' distributions are convolved on
a grid of :data:`CELLS` cells below the level (every term is >= 0, so mass that passes the level
never comes back and can be dropped; bins of equal fraction are convolved by squaring).

Q: And the reference profile's own sampling noise?
A: The profile is a sample too (``count`` rows; KS uses its ``sample``). Two independent
samples of ``n`` and ``N`` rows differ by noise of variance ``1/n + 1/N``: PSI behaves like the
one-sample statistic of ``n·N/(n + N)`` rows, so the live tail is evaluated at the level
``threshold · N/(n + N)``, and KS uses Kolmogorov's distribution at the effective size
``n·N/(n + N)`` (what ``scipy.stats.ks_2samp`` does asymptotically). A profile of ``N`` rows
therefore caps what any window can resolve: iris' 150 rows cannot tell PSI 0.1 from noise.
When no window up to :data:`MAX_ROWS` is enough the floor is ``math.inf``. KS on discrete data
(ties) is conservative, so its floor errs on the safe side.

Examples (``alpha`` 0.01, one feature, reference without noise):

>>> psi_rows_needed([0.1] * 10, None, 0.2, 0.01)
128
>>> ks_rows_needed(1000, 0.1, 0.01)
356
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from scipy.stats import kstwo, poisson

from modelwerk.runtime.server.drift import EPSILON

MAX_ROWS = 100_000
"""The largest drift window; a floor above it is ``math.inf`` (no window is enough)."""
CELLS = 512
"""Grid cells below the level in the PSI convolution (terms are rounded to the nearest cell)."""
_TAIL_SD = 12.0
"""Poisson counts further than this many standard deviations from the mean are treated as
crossing the level (their mass is below 1e-30)."""


def psi_tail(rows: int, fractions: Sequence[float], level: float) -> float:
    """P(PSI > level) for ``rows`` rows drawn from ``fractions`` (an upper estimate)."""
    values, repeats = np.unique([f for f in fractions if f > 0], return_counts=True)
    if repeats.sum() < 2:
        return 0.0  # a single bin always scores 0
    step = level / CELLS
    below = np.zeros(CELLS)  # the distribution of the running sum, cut at the level
    below[0] = 1.0
    for frac, times in zip(values.tolist(), repeats.tolist(), strict=True):
        below = _cut(below, _power(_term(rows, frac, step), times))
    return max(0.0, 1.0 - float(below.sum()))


def _term(rows: int, frac: float, step: float) -> np.ndarray:
    """The distribution of one bin's PSI term on the grid, cut at the level."""
    mean = rows * frac
    spread = _TAIL_SD * math.sqrt(mean) + 20
    x = np.arange(max(0, math.floor(mean - spread)), math.ceil(mean + spread) + 1)
    actual = np.maximum(x / rows, EPSILON)
    expected = max(frac, EPSILON)
    terms = (actual - expected) * np.log(actual / expected)
    cells = np.rint(terms / step).astype(np.int64)
    keep = cells < CELLS
    return np.bincount(cells[keep], weights=poisson.pmf(x[keep], mean), minlength=CELLS)


def _cut(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The convolution of two distributions of non-negative terms, below the level. Mass at or
    above the level never comes back (terms are >= 0), so cutting first loses nothing below it,
    and cut convolutions can be taken in any order."""
    return np.convolve(a, b)[:CELLS]


def _power(dist: np.ndarray, times: int) -> np.ndarray:
    """``times`` bins with the same fraction, by repeated squaring (many equal categories)."""
    result: np.ndarray | None = None
    while times:
        if times & 1:
            result = dist if result is None else _cut(result, dist)
        times >>= 1
        if times:
            dist = _cut(dist, dist)
    assert result is not None
    return result


def psi_rows_needed(
    fractions: Sequence[float], reference_rows: int | None, threshold: float, alpha: float
) -> float:
    """The fewest rows whose PSI against ``fractions`` (from ``reference_rows`` rows; None: no
    reference noise) stays at or below ``threshold`` with probability >= ``1 - alpha``."""
    return _psi_rows_needed(tuple(float(f) for f in fractions), reference_rows, threshold, alpha)


@lru_cache(maxsize=256)
def _psi_rows_needed(
    fractions: tuple[float, ...], reference_rows: int | None, threshold: float, alpha: float
) -> float:
    def ok(n: int) -> bool:
        level = threshold
        if reference_rows is not None:
            level *= reference_rows / (n + reference_rows)
        return psi_tail(n, fractions, level) <= alpha

    return _smallest(ok)


def ks_rows_needed(reference_size: int, threshold: float, alpha: float) -> float:
    """The fewest rows whose two-sample KS statistic against a reference sample of
    ``reference_size`` values stays at or below ``threshold`` with probability >= ``1 - alpha``."""
    return _ks_rows_needed(reference_size, threshold, alpha)


@lru_cache(maxsize=256)
def _ks_rows_needed(reference_size: int, threshold: float, alpha: float) -> float:
    if reference_size < 1:
        return math.inf

    def ok(n: int) -> bool:
        # floor(n_eff) rather than round: fewer rows, a wider distribution, a safe floor
        effective = max(1, math.floor(n * reference_size / (n + reference_size)))
        return float(kstwo.sf(threshold, effective)) <= alpha

    return _smallest(ok)


def _smallest(ok: Callable[[int], bool]) -> float:
    """The smallest n in [1, MAX_ROWS] with ``ok(n)``, by bisection (``ok`` grows with n up to
    the wobble of discrete counts); ``math.inf`` when even MAX_ROWS is not enough."""
    if not ok(MAX_ROWS):
        return math.inf
    low, high = 0, 1  # invariant: not ok(low) (0 rows prove nothing), ok(high) once found
    while not ok(high):
        low, high = high, min(high * 2, MAX_ROWS)
    while high - low > 1:
        middle = (low + high) // 2
        if ok(middle):
            high = middle
        else:
            low = middle
    return high
