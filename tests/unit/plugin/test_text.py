"""Shared text helpers, and the worked examples in the plugin's docstrings."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from datetime import UTC, datetime, timedelta

import pytest

import modelwerk.plugin
from modelwerk.plugin.text import age, fields, parse_duration, parse_time, table, timestamp

PLUGIN_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(modelwerk.plugin.__path__, "modelwerk.plugin.")
    if info.name != "modelwerk.plugin.__main__"
)


@pytest.mark.parametrize("name", PLUGIN_MODULES)
def test_docstring_examples(name: str) -> None:
    assert doctest.testmod(importlib.import_module(name)).failed == 0


@pytest.mark.parametrize("bad", ["", "abc", "10x", "1m30", "-5", "s", "5 s"])
def test_bad_durations_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_api_timestamps_with_and_without_fractions() -> None:
    assert parse_time("2026-11-22T10:15:00Z") == datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
    assert parse_time("2026-11-22T10:15:00.5+00:00") == datetime(
        2026, 11, 22, 10, 15, 0, 500000, tzinfo=UTC
    )
    assert parse_time("yesterday") is None
    assert parse_time(None) is None
    now = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
    assert age((now - timedelta(minutes=5)).isoformat(), now) == "5m"
    assert age("garbage", now) == "-"
    assert timestamp("2026-11-22T11:15:00+01:00") == "2026-11-22 10:15:00"


def test_a_timestamp_from_the_future_is_zero_seconds_old() -> None:
    now = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
    assert age("2026-11-22T10:16:00Z", now) == "0s"  # clock skew between client and server


def test_table_aligns_columns_without_trailing_space() -> None:
    assert table(("A", "LONGER"), [["xyz", "1"], ["", "22"]]).splitlines() == [
        "A     LONGER",
        "xyz   1",
        "      22",
    ]


def test_fields_align_values() -> None:
    assert (
        fields([("Name", "iris"), ("Namespace", "")], indent="  ")
        == "  Name:      iris\n  Namespace:"
    )
