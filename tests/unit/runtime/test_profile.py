"""The reference profile written next to every valid snapshot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from modelwerk.runtime import storage
from modelwerk.runtime.data import job, load, profiling
from modelwerk.runtime.profile import CategoricalProfile, NumericProfile, Profile

from .helpers import dataset


def test_profile_file_matches_the_schema(root: str) -> None:
    result = job.validate(dataset(builtin="iris"), root).result
    with storage.open_uri(result["profileUri"], "r") as handle:
        profile = Profile.model_validate_json(handle.read())
    assert profile.version == result["version"]
    assert (profile.dataset, profile.rows, profile.target) == ("ds", 150, "target")
    assert list(profile.features) == list(load.load_builtin("iris").columns)
    for feature in profile.features.values():
        assert isinstance(feature, NumericProfile)
        assert len(feature.bin_fractions) == len(feature.bin_edges) + 1 <= profiling.BINS
        assert math.isclose(sum(feature.bin_fractions), 1.0)
        assert feature.bin_edges == sorted(feature.bin_edges)
        assert len(feature.sample) == 150


def test_numeric_bins_are_deciles() -> None:
    feature = profiling.profile_column(pd.Series(np.arange(1, 101, dtype=float)))
    assert isinstance(feature, NumericProfile)
    assert len(feature.bin_edges) == 9
    assert feature.bin_fractions == [0.1] * 10
    assert (feature.min, feature.max, feature.mean) == (1.0, 100.0, 50.5)


def test_sample_is_bounded_and_reproducible() -> None:
    frame = load.load_builtin("digits")
    one = profiling.build_profile(frame, "d", "sha256:" + "0" * 64, "target")
    two = profiling.build_profile(frame, "d", "sha256:" + "0" * 64, "target")
    assert one == two
    pixel = one.features["pixel_3_3"]
    assert isinstance(pixel, NumericProfile)
    assert len(pixel.sample) == 1000


def test_categorical_and_degenerate_columns() -> None:
    frame = pd.DataFrame(
        {
            "color": ["red", "red", "blue", None],
            "flag": [True, False, True, True],
            "empty": [np.nan] * 4,
            "infinite": [1.0, np.inf, 2.0, 3.0],
        }
    )
    profile = profiling.build_profile(frame, "d", "sha256:" + "1" * 64, None)
    color = profile.features["color"]
    assert isinstance(color, CategoricalProfile)
    assert (color.count, color.missing) == (3, 1)
    assert color.frequencies == {"red": 2 / 3, "blue": 1 / 3}
    flag = profile.features["flag"]
    assert isinstance(flag, CategoricalProfile) and flag.frequencies == {
        "true": 0.75,
        "false": 0.25,
    }
    empty = profile.features["empty"]
    assert isinstance(empty, NumericProfile)
    assert (empty.count, empty.missing, empty.bin_fractions) == (0, 4, [1.0])
    infinite = profile.features["infinite"]
    assert isinstance(infinite, NumericProfile) and (infinite.count, infinite.missing) == (3, 1)


def test_many_categories_are_capped(tmp_path: Path) -> None:
    series = pd.Series([f"id-{i}" for i in range(profiling.MAX_CATEGORIES + 50)])
    feature = profiling.profile_column(series)
    assert isinstance(feature, CategoricalProfile)
    assert len(feature.frequencies) == profiling.MAX_CATEGORIES + 1
    assert math.isclose(sum(feature.frequencies.values()), 1.0)
    assert math.isclose(feature.frequencies[profiling.OTHER], 50 / len(series))
