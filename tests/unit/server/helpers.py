"""Helpers for the server tests: artifacts as the trainer writes them, and request bodies."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn

from modelwerk.runtime.artifacts import (
    MODEL_CARD_FILE,
    MODEL_FILE,
    PROFILE_FILE,
    ArtifactRef,
    DatasetLineage,
    ModelCard,
    Signature,
    TensorSpec,
)
from modelwerk.runtime.profile import CategoricalProfile, NumericProfile, Profile
from modelwerk.runtime.server.settings import ServerSettings


def make_profile(frame: pd.DataFrame, name: str, target: str | None = None) -> Profile:
    """What the validator writes: decile bins + fractions + a sample (numeric), frequencies."""
    features: dict[str, Any] = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values):
            v = values.dropna().to_numpy(dtype=float)
            edges = np.unique(np.quantile(v, np.linspace(0.1, 0.9, 9)))
            counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=len(edges) + 1)
            features[column] = NumericProfile(
                count=len(values),
                missing=int(values.isna().sum()),
                mean=float(v.mean()),
                std=float(v.std()),
                min=float(v.min()),
                max=float(v.max()),
                bin_edges=edges.tolist(),
                bin_fractions=(counts / counts.sum()).tolist(),
                sample=np.random.default_rng(0)
                .choice(v, size=min(1000, len(v)), replace=False)
                .tolist(),
            )
        else:
            freq = values.dropna().astype(str).value_counts(normalize=True)
            features[column] = CategoricalProfile(
                count=len(values), missing=int(values.isna().sum()), frequencies=freq.to_dict()
            )
    return Profile(dataset=name, version="v1", rows=len(frame), target=target, features=features)


@dataclass
class Artifact:
    """A trained model written to a directory, plus what tests need to check predictions."""

    directory: Path
    name: str
    sha256: str
    estimator: Any
    frame: pd.DataFrame
    target: pd.Series

    @property
    def model_uri(self) -> str:
        return str(self.directory / MODEL_FILE)

    def settings(self, **overrides: Any) -> ServerSettings:
        values: dict[str, Any] = {
            "model_uri": self.model_uri,
            "sha256": self.sha256,
            "model_name": self.name,
            "version": "v1",
            "drift_interval_seconds": 0,
            "drift_window": 500,
        }
        values.update(overrides)
        return ServerSettings(**values)


def _datatype(series: pd.Series) -> str:
    if pd.api.types.is_float_dtype(series):
        return "FP64"
    if pd.api.types.is_integer_dtype(series):
        return "INT64"
    return "BYTES"


def write_artifact(
    root: Path,
    name: str,
    estimator: Any,
    frame: pd.DataFrame,
    target: pd.Series,
    task: str,
    staging: str = "candidate",
) -> Artifact:
    estimator.fit(frame, target)
    directory = root / "models" / name / staging
    directory.mkdir(parents=True)
    joblib.dump(estimator, directory / MODEL_FILE)
    raw = (directory / MODEL_FILE).read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    final = root / "models" / name / sha
    directory.rename(final)
    profile_dir = root / "datasets" / name / "v1"
    profile_dir.mkdir(parents=True, exist_ok=True)
    profile = make_profile(
        pd.concat([frame, target.rename("__target__")], axis=1), name, "__target__"
    )
    (profile_dir / PROFILE_FILE).write_text(profile.model_dump_json(by_alias=True))
    classes = np.asarray(estimator.classes_).tolist() if task == "classification" else None
    card = ModelCard(
        model=name,
        task=task,  # type: ignore[arg-type]
        estimator=type(estimator[-1]).__name__,
        artifact=ArtifactRef(
            uri=str(final / MODEL_FILE),
            sha256=sha,
            size_bytes=len(raw),
            framework_version=sklearn.__version__,
        ),
        signature=Signature(
            inputs=[TensorSpec(name=c, datatype=_datatype(frame[c])) for c in frame.columns],  # type: ignore[arg-type]
            outputs=[TensorSpec(name="predict", datatype="INT64" if classes else "FP64")]
            + (
                [TensorSpec(name="predict_proba", datatype="FP64", shape=[-1, len(classes)])]
                if classes
                else []
            ),
            classes=classes,
        ),
        metrics={"accuracy": 0.9} if classes else {"r2": 0.5},
        dataset=DatasetLineage(
            name=name, version="v1", profile_uri=str(profile_dir / PROFILE_FILE)
        ),
        created_at=datetime.now(UTC),
    )
    (final / MODEL_CARD_FILE).write_text(card.model_dump_json(by_alias=True))
    return Artifact(final, name, sha, estimator, frame, target)


def v2_named(frame: pd.DataFrame, **extra: Any) -> dict[str, Any]:
    inputs = [
        {"name": c, "shape": [len(frame)], "datatype": "FP64", "data": frame[c].tolist()}
        for c in frame.columns
    ]
    return {"inputs": inputs, **extra}


def v2_matrix(frame: pd.DataFrame, **extra: Any) -> dict[str, Any]:
    x = frame.to_numpy(dtype=float)
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(x.shape),
                "datatype": "FP64",
                "data": x.reshape(-1).tolist(),
            }
        ],
        **extra,
    }
