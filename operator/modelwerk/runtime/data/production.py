"""A production source: a Deployment's captured predictions joined with their labels, as rows
of a Dataset, optionally after the rows of a base Dataset.

Q: Which rows?
A: Predictions made in the window whose inputs were captured and that have a label (the
   first label of each row, :func:`~modelwerk.runtime.capture.reader.read_labelled`). An
   unlabelled row has no target, so it cannot be trained or scored on.

Q: Why sort?
A: The version is the hash of the content, row order included. Files are listed in whatever
   order the store gives and written by many processes; ordered by (prediction time, request
   id, row), the same labelled rows always make the same frame, so a materialisation that
   finds no new labels publishes the version that is already current.

Q: What are the window's bounds when the Dataset says "the last 24 hours"?
A: The operator fixes "now" when it creates the Job (``MODELWERK_PRODUCTION``), so a Job
   that runs late or twice reads the same range.

Q: How are base and production columns aligned?
A: By the base: its columns in its order and types. Production inputs the base lacks are
   dropped; base columns production lacks are an error, as is a value that does not convert
   (a label "cat" for an integer target).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.api.v1alpha1.dataset_production import DEFAULT_WINDOW_HOURS, ProductionSource
from modelwerk.runtime.capture import layout
from modelwerk.runtime.capture.reader import read_labelled
from modelwerk.runtime.capture.store import Store
from modelwerk.runtime.data import snapshot
from modelwerk.runtime.data.load import Unreadable

CONTEXT_ENV = "MODELWERK_PRODUCTION"
MAX_VERSIONS_LISTED = 32

_JOINED_COLUMNS = frozenset(
    {
        layout.REQUEST_ID,
        layout.ROW,
        layout.TIME,
        layout.MODEL,
        layout.VERSION,
        layout.TRACK,
        layout.POD,
        layout.ARM,
        layout.UNIT,
        layout.PREDICTION,
        layout.LABEL,
        layout.REWARD,
        "label_time",
        "label_pod",
    }
)
"""Columns of a joined row that are not model inputs."""


@dataclass(frozen=True)
class Base:
    name: str
    version: str
    snapshot_uri: str


@dataclass(frozen=True)
class Context:
    """What the operator fixed when it created the Job."""

    now: datetime
    base: Base | None = None

    @staticmethod
    def from_env() -> Context:
        text = os.environ.get(CONTEXT_ENV)
        if not text:
            return Context(now=datetime.now(UTC))
        try:
            data = json.loads(text)
            now = datetime.fromisoformat(data["now"])
            base = data.get("base")
            return Context(
                now=now if now.tzinfo else now.replace(tzinfo=UTC),
                base=Base(base["name"], base["version"], base["snapshotUri"]) if base else None,
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{CONTEXT_ENV} is not valid: {error}") from error


class InsufficientLabels(Exception):
    """Fewer labelled rows than the source requires: nothing is published."""

    def __init__(self, rows: int, required: int, provenance: dict[str, Any]) -> None:
        super().__init__(
            f"{rows} labelled production row{'s' if rows != 1 else ''} with captured inputs "
            f"in the window, {required} required"
        )
        self.rows, self.required, self.provenance = rows, required, provenance


def window(source: ProductionSource, now: datetime) -> tuple[datetime, datetime]:
    """The [start, end) range of prediction times the source names at ``now``."""
    w = source.window
    end = w.end or now
    start = w.start or end - timedelta(hours=w.hours or DEFAULT_WINDOW_HOURS)
    return start.astimezone(UTC), end.astimezone(UTC)


def load(dataset: Dataset, root: str, context: Context) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows of a production Dataset and their provenance (camelCase, as in status).

    Raises :class:`InsufficientLabels` or :class:`~modelwerk.runtime.data.load.Unreadable`.
    """
    source = dataset.spec.source.production
    target = dataset.spec.target
    assert source is not None and target is not None  # DatasetSpec guarantees both
    start, end = window(source, context.now)
    namespace = dataset.metadata.namespace or "default"
    try:
        joined = read_labelled(
            Store(root), namespace, source.deployment, start, end, version=source.model_version
        )
    except Exception as error:  # the store's own errors: network, permissions, corrupt files
        raise Unreadable(
            f"cannot read the production data of Deployment {source.deployment}: "
            f"{type(error).__name__}: {error}"
        ) from error
    labelled = len(joined)
    if labelled:
        joined = joined.sort_values(
            [layout.TIME, layout.REQUEST_ID, layout.ROW], kind="stable"
        ).reset_index(drop=True)
        if source.window.last_rows is not None:
            joined = joined.tail(source.window.last_rows).reset_index(drop=True)
    versions = sorted({str(v) for v in joined[layout.VERSION].dropna()}) if labelled else []
    provenance: dict[str, Any] = {
        "production": {
            "deployment": source.deployment,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "rows": len(joined),
            "labelledRows": labelled,
            "modelVersions": versions[:MAX_VERSIONS_LISTED],
        }
    }
    if len(joined) < source.min_labelled_rows:
        raise InsufficientLabels(len(joined), source.min_labelled_rows, provenance)
    inputs = [c for c in joined.columns if c not in _JOINED_COLUMNS]
    recent = joined[inputs].copy()
    recent[target] = joined[layout.LABEL].to_numpy()
    if context.base is None:
        recent[target] = _typed_labels(recent[target])
        return recent.reset_index(drop=True), provenance
    base = _read_base(context.base)
    provenance["base"] = {
        "dataset": context.base.name,
        "version": context.base.version,
        "rows": len(base),
    }
    return pd.concat([base, _aligned(recent, base, target)], ignore_index=True), provenance


def _read_base(base: Base) -> pd.DataFrame:
    try:
        frame = snapshot.read(base.snapshot_uri)
    except Exception as error:
        raise Unreadable(
            f"cannot read base Dataset {base.name} version {base.version[:19]} at "
            f"{base.snapshot_uri}: {type(error).__name__}: {error}"
        ) from error
    if snapshot.version_of(frame) != base.version:
        raise Unreadable(
            f"the snapshot of base Dataset {base.name} at {base.snapshot_uri} is not version "
            f"{base.version[:19]}: it was changed in the store"
        )
    return frame


def _aligned(recent: pd.DataFrame, base: pd.DataFrame, target: str) -> pd.DataFrame:
    """``recent`` with the base's columns, in its order and types."""
    if target not in base.columns:
        raise Unreadable(f"the base Dataset has no target column {target!r}")
    missing = [c for c in base.columns if c not in recent.columns]
    if missing:
        raise Unreadable(
            "the production inputs lack columns of the base Dataset: " + ", ".join(missing[:20])
        )
    out = pd.DataFrame(index=recent.index)
    for column in base.columns:
        out[column] = _as_dtype(recent[column], base[column].dtype, column)
    return out


def _as_dtype(values: pd.Series, dtype: Any, column: str) -> pd.Series:
    try:
        return values.astype(dtype)
    except (ValueError, TypeError):
        pass
    try:
        numeric = pd.to_numeric(values)
        if pd.api.types.is_integer_dtype(dtype) and not (numeric.dropna() % 1 == 0).all():
            raise ValueError("not whole numbers")
        return numeric.astype(dtype)
    except (ValueError, TypeError) as error:
        shown = ", ".join(repr(v) for v in values.drop_duplicates().head(3))
        raise Unreadable(
            f"production values of column {column!r} ({shown}…) do not convert to the base "
            f"Dataset's type {dtype}: {error}"
        ) from error


def _typed_labels(labels: pd.Series) -> pd.Series:
    """Labels as the numbers they spell when every one does (classes are captured as text)."""
    if not pd.api.types.is_object_dtype(labels) and not pd.api.types.is_string_dtype(labels):
        return labels
    try:
        numeric = pd.to_numeric(labels)
    except (ValueError, TypeError):
        return labels.astype(object)
    if (numeric.dropna() % 1 == 0).all() and not labels.str.contains(r"[.eE]", regex=True).any():
        return numeric.astype("int64")
    return numeric.astype("float64")
