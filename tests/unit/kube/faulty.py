"""A model step that fails the way a broken model does, to make real servers answer 5xx.

It lives in its own module so that the pickled pipeline refers to an importable function.
"""

from __future__ import annotations

from typing import Any

import numpy as np

HUGE = 1000.0


def fail_on_huge_inputs(x: Any) -> Any:
    """Passes rows through; a row with a value above ``HUGE`` makes predict raise."""
    if np.any(np.asarray(x, dtype=float) > HUGE):
        raise RuntimeError("simulated model fault")
    return x
