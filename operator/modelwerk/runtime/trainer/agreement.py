"""Comparing a compiled model with the original, row by row, against stated tolerances."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelwerk.runtime import compiled
from modelwerk.runtime.artifacts import Agreement, Signature, Task

PROBABILITY_TOLERANCE = 1e-5
ABS_TOLERANCE = 1e-5
REL_TOLERANCE = 1e-5
CHUNK_ROWS = 65_536
"""Rows per predict call while verifying: bounds the memory of a large snapshot."""


@dataclass(frozen=True)
class Rows:
    """Per-row comparison of the two models over the snapshot."""

    task: Task
    agree: np.ndarray
    """Classification: same label; regression: within tolerance."""
    prob_diff: np.ndarray | None
    abs_diff: np.ndarray | None
    rel_diff: np.ndarray | None

    def summary(self, mask: np.ndarray | None) -> Agreement:
        def pick(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values if mask is None else values[mask]

        agree = pick(self.agree)
        assert agree is not None
        n = len(agree)
        return Agreement(
            rows=n,
            label_agreement=float(agree.mean()) if n and self.task == "classification" else None,
            max_probability_diff=_max(pick(self.prob_diff)),
            max_abs_diff=_max(pick(self.abs_diff)),
            max_rel_diff=_max(pick(self.rel_diff)),
        )

    def problem(self, tolerance: dict[str, float]) -> str | None:
        n, bad = len(self.agree), int((~self.agree).sum())
        if self.task == "classification":
            if bad:
                return f"the label differs on {bad} of {n} rows"
            worst = _max(self.prob_diff)
            if worst is not None and not worst <= tolerance["probability"]:
                return (
                    f"a probability differs by {worst:.3g} > {tolerance['probability']:g} "
                    f"(rows compared: {n})"
                )
            return None
        if bad:
            return (
                f"{bad} of {n} values differ by more than {tolerance['abs']:g} + "
                f"{tolerance['rel']:g}·|value| (largest difference {_max(self.abs_diff):.3g})"
            )
        return None


def _max(values: np.ndarray | None) -> float | None:
    if values is None or not len(values):
        return None
    return float(np.max(values))


def matrix(frame: pd.DataFrame, signature: Signature) -> np.ndarray:
    """The rows as the server decodes them: float64 when every input is numeric, else object."""
    columns = [t.name for t in signature.inputs]
    numeric = all(t.datatype != "BYTES" for t in signature.inputs)
    return np.asarray(frame[columns].to_numpy(dtype=np.float64 if numeric else object))


def compare(
    pipeline: Any,
    runner: compiled.Runner,
    frame: pd.DataFrame,
    signature: Signature,
    task: Task,
) -> Rows:
    columns = [t.name for t in signature.inputs]
    fitted_on_frame = getattr(pipeline, "feature_names_in_", None) is not None
    agree, prob, absolute, relative = [], [], [], []
    for start in range(0, len(frame), CHUNK_ROWS):
        part = frame.iloc[start : start + CHUNK_ROWS][columns]
        original_input = part if fitted_on_frame else part.to_numpy(dtype=np.float64)
        expected = np.asarray(pipeline.predict(original_input))
        if expected.ndim > 1:
            expected = expected.reshape(len(part), -1)[:, 0]
        got, probabilities = runner.predict(matrix(part, signature), runner.probabilities)
        if task == "classification":
            same_kind = _kind(expected) == _kind(got)
            agree.append(np.asarray(expected == got, dtype=bool) & same_kind)
            if probabilities is not None:
                reference = np.asarray(pipeline.predict_proba(original_input), dtype=np.float64)
                diff = np.abs(probabilities - reference)
                prob.append(np.where(np.isnan(diff), np.inf, diff).max(axis=1))
        else:
            want = expected.astype(np.float64)
            value = got.astype(np.float64)
            diff = np.where(np.isnan(value) != np.isnan(want), np.inf, np.abs(value - want))
            diff = np.nan_to_num(diff, nan=0.0)
            agree.append(
                np.isclose(value, want, rtol=REL_TOLERANCE, atol=ABS_TOLERANCE, equal_nan=True)
            )
            absolute.append(diff)
            with np.errstate(divide="ignore", invalid="ignore"):
                relative.append(np.where(want != 0, diff / np.abs(want), 0.0))
    return Rows(
        task=task,
        agree=np.concatenate(agree) if agree else np.zeros(0, dtype=bool),
        prob_diff=np.concatenate(prob) if prob else None,
        abs_diff=np.concatenate(absolute) if absolute else None,
        rel_diff=np.concatenate(relative) if relative else None,
    )


def _kind(values: np.ndarray) -> str:
    """Labels as a client sees them: numbers, text or booleans (int64 vs int32 is the same)."""
    kind = values.dtype.kind
    return "text" if kind in "OUS" else "bool" if kind == "b" else "number"
