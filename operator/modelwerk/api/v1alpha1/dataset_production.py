"""Datasets made from production: the source that names a Deployment's captured, labelled rows,
and the provenance and version history a Dataset records."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator

from modelwerk.api.base import ApiModel, LocalObjectReference, ObjectName, with_cel

DEFAULT_WINDOW_HOURS = 24
DEFAULT_PRODUCTION_REFRESH_SECONDS = 3600
"""How often a production Dataset without spec.refreshIntervalSeconds is materialised again."""


class ProductionWindow(ApiModel):
    """Which captured predictions count, by the time they were made: the last ``hours`` (the
    default, 24) or the range ``start``..``end``; ``lastRows`` then keeps the newest labelled
    rows of it."""

    hours: int | None = Field(default=None, ge=1, le=87_600)
    """The hours up to the time the Dataset is materialised. Defaults to 24 when start is
    not set."""
    start: datetime | None = None
    """Start of a fixed range (inclusive)."""
    end: datetime | None = None
    """End of a fixed range (exclusive); defaults to the time of materialisation."""
    last_rows: int | None = Field(default=None, ge=1, le=10_000_000)
    """Keep only the newest this many labelled rows of the window."""

    model_config = with_cel(
        {
            "rule": "!(has(self.hours) && has(self.start))",
            "message": "set window.hours or window.start, not both",
        },
        {"rule": "!has(self.end) || has(self.start)", "message": "window.end needs window.start"},
    )

    @model_validator(mode="after")
    def _one_range(self) -> ProductionWindow:
        if self.hours is not None and self.start is not None:
            raise ValueError("set window.hours or window.start, not both")
        if self.end is not None and self.start is None:
            raise ValueError("window.end needs window.start")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("window.start must be before window.end")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(
                    f"window.{name} needs a time zone (for example 2026-01-02T03:00:00Z)"
                )
        return self


class ProductionSource(ApiModel):
    """Captured predictions of a Deployment joined with their labels: only rows that have a
    label and whose inputs were captured (spec.monitoring.capture.inputSampleRate is the share
    of requests whose inputs are kept). The model inputs become the columns, the label the
    target column (spec.target)."""

    deployment: ObjectName
    """The modelwerk Deployment (same namespace) whose captures and labels are read from the
    artifact store."""
    window: ProductionWindow = Field(default_factory=ProductionWindow)
    """Which predictions count. Defaults to the last 24 hours."""
    model_version: str | None = Field(default=None, min_length=1, max_length=253)
    """Only the predictions of this ModelVersion (default: every version's)."""
    min_labelled_rows: int = Field(default=50, ge=1, le=10_000_000)
    """Fewer labelled rows than this publish nothing: the Dataset reports InsufficientLabels
    and keeps its current version. Defaults to 50."""
    base: LocalObjectReference | None = None
    """A Dataset (same namespace) whose current version comes first: the original training
    data plus the recent labelled production rows, columns in the base's order and types."""


class BaseProvenance(ApiModel):
    """The base Dataset part of a version."""

    dataset: str
    """The base Dataset."""
    version: str
    """Its version that was used."""
    rows: int = Field(ge=0)
    """Rows taken from it."""


class ProductionProvenance(ApiModel):
    """The production part of a version."""

    deployment: str
    """The Deployment whose captures were read."""
    start: datetime
    """Start of the window read."""
    end: datetime
    """End of the window read."""
    rows: int = Field(ge=0)
    """Labelled rows taken (after lastRows)."""
    labelled_rows: int = Field(default=0, ge=0)
    """Labelled rows with captured inputs in the window (before lastRows)."""
    model_versions: list[str] = Field(default_factory=list, max_length=32)
    """The model versions whose predictions the rows are."""


class Provenance(ApiModel):
    """Where the rows of a version came from."""

    base: BaseProvenance | None = None
    """The base Dataset's rows, first."""
    production: ProductionProvenance | None = None
    """The production rows, after the base's."""


class DatasetHistoryEntry(ApiModel):
    """A published version of a Dataset. Its snapshot is immutable and stays in the store."""

    version: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    """Content hash of the snapshot."""
    rows: int | None = None
    """Rows of the snapshot."""
    columns: int | None = None
    """Columns of the snapshot."""
    snapshot_uri: str | None = None
    """The snapshot."""
    profile_uri: str | None = None
    """Its profile."""
    published_time: datetime | None = None
    """When it was first validated."""
    provenance: Provenance | None = None
    """Where its rows came from (production sources)."""
