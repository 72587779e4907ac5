"""The rows a drift score waits for: undrifted windows of that size stay under the threshold.

Statistical tests with fixed seeds (they either always pass or always fail): live windows are
drawn from the very distribution the profile describes, scored by the server's own
:class:`DriftMonitor`, and counted against the threshold over 100 windows.
"""

from __future__ import annotations

import doctest
import logging
import math

import numpy as np
import pandas as pd
import pytest

from modelwerk.runtime.data.profiling import build_profile
from modelwerk.runtime.profile import NumericProfile, Profile
from modelwerk.runtime.server import drift_floor
from modelwerk.runtime.server.drift import EPSILON, DriftMonitor, numeric_psi
from modelwerk.runtime.server.drift_floor import ks_rows_needed, psi_rows_needed, psi_tail
from modelwerk.runtime.server.model import LoadedModel

from .helpers import Artifact

TRIALS = 100
COLUMNS = ["a", "b", "c", "d"]


def _normal_profile(rows: int, seed: int) -> Profile:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(COLUMNS))), columns=COLUMNS)
    return build_profile(frame, "normal", "v1", None)


@pytest.fixture(scope="module")
def large_profile() -> Profile:
    """A reference of 20000 rows: its own sampling noise is negligible."""
    return _normal_profile(20_000, seed=0)


def _monitor(profile: Profile, method: str, threshold: float | None, **kw: int) -> DriftMonitor:
    window = kw.get("window", 100_000)
    return DriftMonitor(
        profile, COLUMNS, window, kw.get("min_rows", 50), 0, method=method, threshold=threshold
    )


def _highest(
    profile: Profile, rows: np.ndarray, method: str, threshold: float | None
) -> float | None:
    """The score the operator compares for a fresh window of ``rows``: the highest feature
    score of ``method`` (floors are cached, so a monitor per window is cheap)."""
    monitor = _monitor(profile, method, threshold)
    monitor.observe(rows)
    scores = [v for (_, m), v in monitor.scores(force=True).scores.items() if m == method]
    return max(scores) if scores else None


@pytest.mark.parametrize(("method", "threshold"), [("psi", 0.2), ("psi", 0.1), ("ks", 0.1)])
def test_undrifted_windows_at_the_floor_stay_under_the_threshold(
    large_profile: Profile, method: str, threshold: float
) -> None:
    monitor = _monitor(large_profile, method, threshold, window=5000)
    floor = max(monitor.rows_needed[(c, method)] for c in COLUMNS)
    assert 100 < floor < 1000, floor
    rng = np.random.default_rng(1)
    alarms = 0
    # 1000 windows tell a false-alarm rate within the 1 % budget (at most 18 alarms with
    # probability 0.99) from one of 2 % or more; measured over many more windows the rate is
    # about 0.5 % for PSI (its tail estimate is an upper one) and 1 % for KS
    for _ in range(1000):
        score = _highest(large_profile, rng.normal(size=(int(floor), 4)), method, threshold)
        assert score is not None, "every feature reports at its floor"
        alarms += score > threshold
    assert alarms <= 18, f"{alarms} of 1000 undrifted windows of {floor} rows crossed"


def test_the_old_floor_of_50_rows_raised_false_alarms(large_profile: Profile) -> None:
    """What the server did before: PSI over 10 bins of 50 rows is noise of about 9/50."""
    monitor = _monitor(large_profile, "psi", None)
    assert monitor.rows_needed[("a", "psi")] == 50
    rng = np.random.default_rng(2)
    alarms = 0
    for _ in range(TRIALS):
        score = _highest(large_profile, rng.normal(size=(50, 4)), "psi", None)
        assert score is not None
        alarms += score > 0.2
    assert alarms >= 40, alarms


def test_the_floor_covers_a_small_reference_too() -> None:
    """A profile of 150 rows (as iris) is noisy itself: each trial draws a new reference from
    the population and a live window of the floor's size from the same population."""
    rng = np.random.default_rng(3)
    threshold, alarms = 0.3, 0
    floors = set()
    for _ in range(TRIALS):
        reference = rng.normal(size=150)
        quantiles = np.unique(np.quantile(reference, np.linspace(0, 1, 11)[1:-1]))
        counts = np.bincount(np.searchsorted(quantiles, reference), minlength=len(quantiles) + 1)
        fractions = counts / counts.sum()
        rows = psi_rows_needed(fractions.tolist(), 150, threshold, 0.01)
        floors.add(rows)
        live = rng.normal(size=int(rows))
        alarms += numeric_psi(live, quantiles, fractions) > threshold
    assert alarms <= 1, alarms
    assert max(floors) < 400
    # Without the reference's own noise the same threshold would be trusted far too early.
    assert psi_rows_needed([0.1] * 10, None, threshold, 0.01) < min(floors) / 1.5


def test_the_floor_grows_with_features_bins_and_a_lower_threshold() -> None:
    ten = [0.1] * 10
    five = [0.2] * 5
    assert psi_rows_needed(five, None, 0.2, 0.01) < psi_rows_needed(ten, None, 0.2, 0.01)
    assert psi_rows_needed(ten, None, 0.2, 0.01) < psi_rows_needed(ten, None, 0.2, 0.01 / 4)
    assert psi_rows_needed(ten, None, 0.2, 0.01) < psi_rows_needed(ten, None, 0.1, 0.01)
    assert psi_rows_needed(ten, 100_000, 0.2, 0.01) <= psi_rows_needed(ten, 1000, 0.2, 0.01)
    assert ks_rows_needed(1000, 0.2, 0.01) < ks_rows_needed(1000, 0.1, 0.01)
    assert ks_rows_needed(1000, 0.1, 0.01) < ks_rows_needed(1000, 0.1, 0.01 / 4)
    # A single bin scores 0 whatever comes: any row is enough.
    assert psi_rows_needed([1.0], None, 0.01, 0.01) == 1


def test_no_window_is_enough_when_the_reference_is_too_small() -> None:
    # 150 reference rows: their own noise alone puts PSI over 10 bins near 0.06 (0.16 at 1 %)
    assert psi_rows_needed([0.1] * 10, 150, 0.1, 0.01) == math.inf
    # a profile sample of 1000 values: the KS statistic's noise alone is about 0.05
    assert ks_rows_needed(1000, 0.05, 0.01) == math.inf


@pytest.mark.parametrize(
    ("fractions", "rows", "level"),
    [
        ([0.1] * 10, 128, 0.2),
        ([0.227, 0.093, 0.08, 0.12, 0.133, 0.12, 0.033, 0.1, 0.094], 150, 0.2),
        ([0.1] * 10, 50, 1.0),  # empty bins dominate here
        ([0.5, 0.3, 0.15, 0.05], 100, 0.25),
    ],
)
def test_the_psi_tail_is_an_upper_estimate(fractions: list[float], rows: int, level: float) -> None:
    """The convolved Poisson tail against the real statistic of multinomial windows."""
    e = np.asarray(fractions) / sum(fractions)
    counts = np.random.default_rng(4).multinomial(rows, e, size=50_000)
    a = np.clip(counts / rows, EPSILON, None)
    observed = float(np.mean(np.sum((a - e) * np.log(a / e), axis=1) > level))
    estimate = psi_tail(rows, e.tolist(), level)
    assert observed <= estimate * 1.1 + 2e-4
    assert estimate <= observed * 4 + 1e-3, "an upper estimate, but not a useless one"


def test_iris_undrifted_stays_quiet_and_a_shift_is_caught_right_at_the_floor(
    iris: Artifact, iris_model: LoadedModel
) -> None:
    """The e2e's scenario at the server: iris rows as sent live, and every feature +4 cm."""
    assert iris_model.profile is not None
    profile, columns = iris_model.profile, iris_model.columns
    monitor = DriftMonitor(profile, columns, 1000, 50, 0, method="psi", threshold=0.25)
    floors = {c: monitor.rows_needed[(c, "psi")] for c in columns}
    floor = int(max(floors.values()))
    assert 100 < floor <= 1000, floors
    rng = np.random.default_rng(5)
    values = iris.frame.to_numpy()
    quiet = 0
    for _ in range(TRIALS):
        rows = values[rng.integers(0, len(values), size=floor)]
        monitor = DriftMonitor(profile, columns, 1000, 50, 0, method="psi", threshold=0.25)
        monitor.observe(rows[:-1])
        early = monitor.scores(force=True).scores
        assert not [f for f, m in early if m == "psi" and floors[f] == floor], "one row short"
        monitor.observe(rows[-1:])
        scores = monitor.scores(force=True).scores
        assert {f for f, m in scores if m == "psi"} == set(columns)
        quiet += max(v for (_, m), v in scores.items() if m == "psi") <= 0.25
    assert quiet >= 99, quiet
    shifted = DriftMonitor(profile, columns, 1000, 50, 0, method="psi", threshold=0.25)
    shifted.observe(values[rng.integers(0, len(values), size=floor)] + 4.0)
    psi = {f: v for (f, m), v in shifted.scores(force=True).scores.items() if m == "psi"}
    assert set(psi) == set(columns) and min(psi.values()) > 1.0, psi


def test_a_window_too_small_for_the_threshold_is_logged(
    large_profile: Profile, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "modelwerk.serve"):
        monitor = _monitor(large_profile, "psi", 0.2, window=100)
    assert all(monitor.rows_needed[(c, "psi")] > 100 for c in COLUMNS)
    assert all(monitor.rows_needed[(c, "ks")] == 50 for c in COLUMNS), "the other method"
    text = caplog.text
    assert "Drift of a is not reported: PSI 0.2 needs" in text and "window holds 100" in text
    monitor.observe(np.zeros((100, 4)))
    assert {m for _, m in monitor.scores(force=True).scores} == {"ks"}


def test_a_profile_too_small_for_any_window_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    profile = _normal_profile(150, seed=6)
    assert isinstance(profile.features["a"], NumericProfile)
    with caplog.at_level(logging.WARNING, "modelwerk.serve"):
        monitor = _monitor(profile, "psi", 0.1, window=1000)
    assert monitor.rows_needed[("a", "psi")] == math.inf
    assert "no window tells PSI 0.1 from sampling noise" in caplog.text
    assert "of 150 rows" in caplog.text


def test_docstring_examples() -> None:
    assert doctest.testmod(drift_floor).failed == 0
