"""Bounded polling for tests: wait until something becomes true, or fail saying what."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T], *, timeout: float = 30, interval: float = 0.2, what: str = "condition"
) -> T:
    """Call ``check`` until it returns something truthy, and return that.

    Raises ``TimeoutError`` after ``timeout`` seconds.

    The last value seen (or the last exception ``check`` raised) is part of the error.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as e:  # e.g. 404 while an object does not exist yet
            last = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)
