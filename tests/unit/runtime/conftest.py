"""Fixtures for the pod runtime tests: an isolated environment and small object builders."""

from __future__ import annotations

from pathlib import Path

import pytest

_ENV = (
    "MODELWERK_DATASET",
    "MODELWERK_TRAININGJOB",
    "MODELWERK_ARTIFACT_ROOT",
    "MODELWERK_DATASET_NAME",
    "MODELWERK_DATASET_VERSION",
    "MODELWERK_DATASET_SNAPSHOT_URI",
    "MODELWERK_DATASET_TARGET",
    "MODELWERK_DATASET_PROFILE_URI",
    "MODELWERK_PVC_ROOT",
    "MODELWERK_RUN",
    "MODELWERK_MLFLOW_TRACKING_URI",
    "MODELWERK_MLFLOW_EXPERIMENT",
    "MODELWERK_CHAMPION_VERSION",
    "MODELWERK_CHAMPION_URI",
    "MODELWERK_CHAMPION_SHA256",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No MODELWERK_* leaks in; the termination message goes to a file under tmp_path."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    log = tmp_path / "termination-log"
    monkeypatch.setenv("MODELWERK_TERMINATION_MESSAGE_PATH", str(log))
    return log


@pytest.fixture
def root(tmp_path: Path) -> str:
    """An artifact root as a plain local path."""
    return str(tmp_path / "artifacts")
