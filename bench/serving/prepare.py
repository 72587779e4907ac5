#!/usr/bin/env python3
"""Wrap the baseline's trained models as modelwerk artifacts (model card + dataset profile).

Reads $PERF_WORK/models/<model>/model.joblib (written by the MLServer baseline's
train_models.py, so both servers load the very same bytes) and writes
$PERF_WORK/modelwerk/<model>/model.joblib, model-card.json and profile.json as the trainer and
the validator would. Prints one JSON line per model: name, sha256, model URI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sklearn
from sklearn.datasets import load_breast_cancer, load_iris

from modelwerk.runtime.artifacts import (
    ArtifactRef,
    DatasetLineage,
    ModelCard,
    Signature,
    TensorSpec,
)
from modelwerk.runtime.profile import NumericProfile, Profile

WORK = Path(os.environ.get("PERF_WORK", str(Path(tempfile.gettempdir()) / "mlserver-baseline")))
DATASETS = {"iris-rf": load_iris, "bc-gb": load_breast_cancer}


def profile_of(x: np.ndarray, names: list[str], dataset: str) -> Profile:
    features = {}
    rng = np.random.default_rng(0)
    for j, name in enumerate(names):
        v = x[:, j]
        edges = np.unique(np.quantile(v, np.linspace(0.1, 0.9, 9)))
        counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=len(edges) + 1)
        features[name] = NumericProfile(
            count=len(v),
            missing=0,
            mean=float(v.mean()),
            std=float(v.std()),
            min=float(v.min()),
            max=float(v.max()),
            bin_edges=edges.tolist(),
            bin_fractions=(counts / counts.sum()).tolist(),
            sample=rng.choice(v, size=min(1000, len(v)), replace=False).tolist(),
        )
    return Profile(dataset=dataset, version="v1", rows=len(x), features=features)


def main() -> None:
    import joblib

    for model, load in DATASETS.items():
        data = load()
        names = [str(n) for n in data.feature_names]
        source = WORK / "models" / model / "model.joblib"
        raw = source.read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        out = WORK / "modelwerk" / model
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out / "model.joblib")
        (out / "profile.json").write_text(
            profile_of(np.asarray(data.data, dtype=float), names, model).model_dump_json(
                by_alias=True
            )
        )
        estimator = joblib.load(source)
        card = ModelCard(
            model=model,
            task="classification",
            estimator=type(estimator).__name__,
            artifact=ArtifactRef(
                uri=str(out / "model.joblib"),
                sha256=sha,
                size_bytes=len(raw),
                framework_version=sklearn.__version__,
            ),
            signature=Signature(
                inputs=[TensorSpec(name=n, datatype="FP64") for n in names],
                outputs=[TensorSpec(name="predict", datatype="INT64")],
                classes=np.asarray(estimator.classes_).tolist(),
            ),
            metrics={},
            dataset=DatasetLineage(name=model, version="v1", profile_uri=str(out / "profile.json")),
            created_at=datetime.now(UTC),
        )
        (out / "model-card.json").write_text(card.model_dump_json(by_alias=True))
        print(json.dumps({"model": model, "sha256": sha, "uri": str(out / "model.joblib")}))


if __name__ == "__main__":
    main()
