"""Settings of ``modelwerk monitor``: flags, or ``MODELWERK_MONITOR_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MODELWERK_MONITOR_"


class MonitorSettings(BaseSettings):
    """Field ``x_y`` is env ``MODELWERK_MONITOR_X_Y``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    root: str | None = None
    """The store's root URI; defaults to ``MODELWERK_ARTIFACT_ROOT``."""
    namespace: str = Field(min_length=1, max_length=253)
    """The Deployment's namespace."""
    deployment: str = Field(min_length=1, max_length=253)
    """The Deployment whose captures and labels are joined."""
    window_seconds: float = Field(default=3600, ge=60, le=30 * 86400)
    """Figures cover the labels received this long ago at most."""
    horizon_seconds: float = Field(default=3600, ge=60, le=7 * 86400)
    """A prediction stays joinable this long after it was made."""
    grace_seconds: float = Field(default=120, ge=1, le=86400)
    """A label waits this long for its prediction's file before it counts as unmatched."""
    interval_seconds: float = Field(default=10, ge=0.1, le=3600)
    """The store is read for new files this often."""
    retention_days: int = Field(default=30, ge=1, le=3650)
    """Captures and labels older than this many days are deleted."""
    max_rows: int = Field(default=5_000_000, ge=1000)
    """Predictions held for the join at most (8 bytes of key and about 30 more per row)."""
    max_units: int = Field(default=1_000_000, ge=1000)
    """Distinct experiment units kept at most; beyond, units are kept by a hash at one rate in
    every arm (the sample-ratio test stays exact, on fewer units)."""
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
