"""Fitting results into the 4 KiB termination message and writing it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelwerk.runtime import termination


def test_small_results_are_unchanged() -> None:
    result = {"ok": True, "items": [1, 2, 3]}
    assert termination.fit(result, lists=["items"]) == result


def test_lists_lose_their_tail_and_are_marked() -> None:
    result: dict[str, Any] = {
        "ok": True,
        "items": [{"n": i, "pad": "x" * 40} for i in range(500)],
    }
    fitted = termination.fit(result, lists=["items"])
    assert len(termination.dumps(fitted).encode()) <= 4096
    assert fitted["itemsTruncated"] is True
    assert fitted["items"] == result["items"][: len(fitted["items"])]
    assert len(result["items"]) == 500  # the input is not modified


def test_nested_lists_and_droppable_keys() -> None:
    result = {
        "ok": True,
        "sig": {"inputs": [["f" * 30, "FP64"]] * 300},
        "extra": ["y" * 100] * 50,
    }
    fitted = termination.fit(result, lists=["sig.inputs"], droppable=["extra"])
    assert len(termination.dumps(fitted).encode()) <= 4096
    assert "extra" in fitted or fitted["sig"]["inputsTruncated"]
    assert fitted["sig"]["inputsTruncated"] is True


def test_long_strings_are_cut() -> None:
    fitted = termination.fit({"error": "e" * 10_000})
    assert len(fitted["error"]) == 1024


def test_non_finite_numbers_become_null() -> None:
    assert termination.dumps({"a": float("nan"), "b": [float("inf")]}) == '{"a":null,"b":[null]}'


def test_write_goes_to_the_configured_path(isolated_env: Path) -> None:
    text = termination.write({"ok": True})
    assert isolated_env.read_text() == text == '{"ok":true}'


def test_unwritable_path_is_skipped(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "log"
    assert json.loads(termination.write({"ok": True}, path=str(target))) == {"ok": True}
    assert not target.exists()


def test_default_path_is_only_used_when_it_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(termination.PATH_ENV)
    monkeypatch.setattr(termination, "DEFAULT_PATH", "/nonexistent/termination-log")
    assert termination.write({"ok": True}) == '{"ok":true}'
