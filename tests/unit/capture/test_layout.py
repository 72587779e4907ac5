"""The production-data layout: safe path segments and Hive-style hour partitions."""

from __future__ import annotations

import posixpath
import urllib.parse
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelwerk.runtime.capture import layout

HOSTILE = [
    "..",
    ".",
    "../../../etc/passwd",
    "/absolute",
    "a/b",
    "date=2024-01-01",
    "hour=00",
    "_hidden",
    ".hidden",
    "nul\x00byte",
    "back\\slash",
    "%2E%2E",
    "ünïcödé",
    "space name",
    "C:\\windows",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_stays_one_visible_segment_of_its_prefix(name: str) -> None:
    segment = layout.component(name)
    assert "/" not in segment and "\\" not in segment and "\x00" not in segment
    assert segment not in (".", "..") and not segment.startswith((".", "_"))
    assert "=" not in segment
    prefix = layout.captures_prefix("ml", "iris", name)
    assert posixpath.normpath(prefix) == prefix
    assert prefix.startswith("captures/ml/iris/") and prefix.count("/") == 3
    assert urllib.parse.unquote(segment) == name


@given(st.text(min_size=1, max_size=16), st.text(min_size=1, max_size=16))
def test_different_names_never_share_a_segment(a: str, b: str) -> None:
    if a != b:
        assert layout.component(a) != layout.component(b)


def test_plain_kubernetes_names_are_kept_as_they_are() -> None:
    assert layout.component("iris-classifier-v12") == "iris-classifier-v12"
    assert layout.component("iris.v1_2") == "iris.v1_2"


def test_names_too_long_or_empty_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        layout.component("")
    with pytest.raises(ValueError, match="too long"):
        layout.component("/" * 100)


def test_partitions_are_utc_hours() -> None:
    t = datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC).timestamp()
    assert layout.partition(layout.hour_of(t)) == "date=2026-01-31/hour=23"
    assert layout.parse_partition("x/date=2026-01-31/hour=23/f.parquet") == layout.hour_of(t)
    assert layout.parse_partition("x/date=2026-13-01/hour=23") is None
    assert layout.parse_partition("x/date=2026-01-01/hour=24") is None
    spanned = [layout.partition(h) for h in layout.hours(t - 3600, t + 2)]
    assert spanned == [
        "date=2026-01-31/hour=22",
        "date=2026-01-31/hour=23",
        "date=2026-02-01/hour=00",
    ]


def test_file_names_carry_pod_pid_boot_token_and_sequence() -> None:
    assert layout.file_name("iris-blue-7d9-x2", 7, "0a1b2c3d", 12) == (
        "iris-blue-7d9-x2-7-0a1b2c3d-00000012.parquet"
    )
    assert layout.file_name("../evil", 1, "00", 0).startswith("%2E.%2Fevil-")
