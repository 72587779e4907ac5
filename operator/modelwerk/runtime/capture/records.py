"""What the server hands to the writers, and how it becomes Arrow tables.

A :class:`PredictionBatch` is one predict call's worth of rows, kept as the arrays the server
already has (no copy, no per-row Python objects): building it costs the request path next to
nothing. The encoders turn many of them into one table on the writer's thread, vectorised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from modelwerk.runtime.capture import layout

NUMERIC = frozenset(
    {"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16"}
    | {"UINT8", "BOOL"}
)


def input_type(datatype: str) -> pa.DataType:
    """Captured inputs: numbers as float64 (how the server holds them), text as strings."""
    return pa.float64() if datatype in NUMERIC else pa.string()


def class_text(values: np.ndarray) -> np.ndarray:
    """Classes (predicted or labelled) as the text they are stored and compared as: integers
    and integral floats without a decimal point, so the label ``1`` (or ``1.0``) matches the
    predicted class ``1``.

    >>> class_text(np.array([0, 2])).tolist(), class_text(np.array([1.0, 0.5])).tolist()
    (['0', '2'], ['1', '0.5'])
    >>> class_text(np.array(["setosa", 3], dtype=object)).tolist()
    ['setosa', '3']
    """
    if values.dtype.kind in "iu":
        return values.astype(str).astype(object)
    if values.dtype.kind == "f":
        integral = np.isfinite(values) & (values == np.round(values))
        out = values.astype(str).astype(object)
        out[integral] = values[integral].astype(np.int64).astype(str)
        return out
    return np.array([_one_class(v) for v in values.tolist()], dtype=object)


def _one_class(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(slots=True)
class PredictionBatch:
    """The rows of one predict call: ``counts[i]`` rows belong to ``request_ids[i]``."""

    time: float
    request_ids: list[str]
    counts: list[int]
    prediction: np.ndarray
    probabilities: np.ndarray | None
    """``[rows, classes]``, or None when not computed."""
    x: np.ndarray | None
    """The inputs of every row (signature order), or None when no request was sampled."""
    sampled: list[bool]
    """Per request: whether its inputs are kept."""
    arms: list[str | None] | None = None
    units: list[str | None] | None = None

    @property
    def rows(self) -> int:
        return len(self.prediction)


@dataclass(slots=True)
class LabelBatch:
    """Labels (and rewards) of one feedback request."""

    time: float
    request_ids: list[str]
    row: list[int]
    labels: list[Any]
    """Per row: class text (classification), float (regression) or None (reward only)."""
    rewards: list[float | None]

    @property
    def rows(self) -> int:
        return len(self.request_ids)


class PredictionEncoder:
    """Turns :class:`PredictionBatch` es of one served model into capture tables."""

    def __init__(
        self,
        *,
        model: str,
        version: str,
        track: str | None,
        pod: str,
        task: str,
        columns: list[str],
        datatypes: list[str],
        classes: list[Any] | None,
    ) -> None:
        self.constants = {
            layout.MODEL: model,
            layout.VERSION: version,
            layout.TRACK: track,
            layout.POD: pod,
        }
        self.task = task
        self.columns = columns
        self.input_types = [input_type(d) for d in datatypes]
        self.schema = layout.capture_schema(task, list(zip(columns, self.input_types, strict=True)))
        self._classes = (
            pa.array(class_text(np.asarray(classes, dtype=object)).tolist(), pa.string())
            if classes
            else None
        )

    def __call__(self, batches: Sequence[PredictionBatch]) -> pa.Table:
        n = sum(b.rows for b in batches)
        ids = np.concatenate(
            [np.repeat(np.array(b.request_ids, dtype=object), b.counts) for b in batches]
        )
        rows = np.concatenate([_row_numbers(b.counts) for b in batches]).astype(np.int32)
        millis = np.concatenate(
            [np.full(b.rows, int(b.time * 1000), dtype=np.int64) for b in batches]
        )
        columns: dict[str, pa.Array] = {
            layout.REQUEST_ID: pa.array(ids, pa.string()),
            layout.ROW: pa.array(rows, pa.int32()),
            layout.TIME: pa.array(millis, pa.int64()).cast(layout.TIME_TYPE),
        }
        for name, value in self.constants.items():
            columns[name] = pa.repeat(pa.scalar(value, pa.string()), n)
        columns[layout.ARM] = _per_request(batches, "arms", n)
        columns[layout.UNIT] = _per_request(batches, "units", n)
        columns[layout.PREDICTION] = self._predictions(batches)
        columns[layout.PROBABILITIES] = pa.concat_arrays([self._probabilities(b) for b in batches])
        columns[layout.INPUTS] = pa.concat_arrays([self._inputs(b) for b in batches])
        return pa.Table.from_arrays([columns[f.name] for f in self.schema], schema=self.schema)

    def _predictions(self, batches: Sequence[PredictionBatch]) -> pa.Array:
        values = np.concatenate([np.asarray(b.prediction) for b in batches])
        if self.task == "regression":
            return pa.array(values.astype(np.float64), pa.float64())
        return pa.array(class_text(values), pa.string())

    def _probabilities(self, batch: PredictionBatch) -> pa.Array:
        kind = self.schema.field(layout.PROBABILITIES).type
        proba, classes = batch.probabilities, self._classes
        if proba is None or classes is None or proba.shape[1] != len(classes):
            return pa.nulls(batch.rows, kind)
        k = len(classes)
        offsets = pa.array(np.arange(0, batch.rows * k + 1, k, dtype=np.int32))
        keys = classes.take(pa.array(np.tile(np.arange(k), batch.rows)))
        items = pa.array(np.ascontiguousarray(proba, dtype=np.float64).ravel())
        return pa.MapArray.from_arrays(offsets, keys, items, type=kind)

    def _inputs(self, batch: PredictionBatch) -> pa.Array:
        kind = self.schema.field(layout.INPUTS).type
        if batch.x is None or not any(batch.sampled):
            return pa.nulls(batch.rows, kind)
        keep = np.repeat(np.array(batch.sampled, dtype=bool), batch.counts)
        children = [
            pa.array(batch.x[:, j], t, from_pandas=True) for j, t in enumerate(self.input_types)
        ]
        return pa.StructArray.from_arrays(
            children, fields=list(kind), mask=pa.array(~keep, pa.bool_())
        )


def encode_labels(task: str, pod: str, batches: Sequence[LabelBatch]) -> pa.Table:
    schema = layout.label_schema(task)
    n = sum(b.rows for b in batches)
    millis = np.concatenate([np.full(b.rows, int(b.time * 1000), dtype=np.int64) for b in batches])
    label_type = schema.field(layout.LABEL).type
    arrays = [
        pa.array([r for b in batches for r in b.request_ids], pa.string()),
        pa.array([r for b in batches for r in b.row], pa.int32()),
        pa.array(millis, pa.int64()).cast(layout.TIME_TYPE),
        pa.array([v for b in batches for v in b.labels], label_type),
        pa.array([v for b in batches for v in b.rewards], pa.float64()),
        pa.repeat(pa.scalar(pod, pa.string()), n),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _row_numbers(counts: list[int]) -> np.ndarray:
    """0..count-1 for each request, concatenated.

    >>> _row_numbers([2, 1, 3]).tolist()
    [0, 1, 0, 0, 1, 2]
    """
    total = sum(counts)
    starts = np.repeat(np.cumsum([0, *counts[:-1]]), counts)
    numbers: np.ndarray = np.arange(total) - starts
    return numbers


def _per_request(batches: Sequence[PredictionBatch], field: str, n: int) -> pa.Array:
    if all(getattr(b, field) is None for b in batches):
        return pa.nulls(n, pa.string())
    values: list[str | None] = []
    for b in batches:
        given = getattr(b, field) or [None] * len(b.counts)
        for value, count in zip(given, b.counts, strict=True):
            values.extend([value] * count)
    return pa.array(values, pa.string())
