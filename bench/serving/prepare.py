#!/usr/bin/env python3
"""Wrap the baseline's trained models as modelwerk artifacts (model card + dataset profile).

Reads $PERF_WORK/models/<model>/model.joblib (written by the MLServer baseline's
train_models.py, so both servers load the very same bytes) and writes
$PERF_WORK/modelwerk/<model>/model.joblib, model.onnx, model-card.json and profile.json as the
trainer and the validator would: the compiled model is made and verified by the trainer's own
``compile_pipeline`` on the whole dataset. Prints one JSON line per model: name, sha256s,
model URI, the verification.
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
import pandas as pd
import sklearn
from sklearn.datasets import load_breast_cancer, load_iris

from modelwerk.runtime.artifacts import (
    COMPILED_FILE,
    ArtifactRef,
    DatasetLineage,
    ModelCard,
    Signature,
    TensorSpec,
)
from modelwerk.runtime.profile import NumericProfile, Profile
from modelwerk.runtime.trainer.compile import compile_pipeline

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
        classes = np.asarray(estimator.classes_).tolist()
        signature = Signature(
            inputs=[TensorSpec(name=n, datatype="FP64") for n in names],
            outputs=[
                TensorSpec(name="predict", datatype="INT64"),
                TensorSpec(name="predict_proba", datatype="FP64", shape=[-1, len(classes)]),
            ],
            classes=classes,
        )
        frame = pd.DataFrame(np.asarray(data.data, dtype=float), columns=names)
        compilation = compile_pipeline(estimator, frame, signature, "classification")
        if compilation.model is None:
            raise SystemExit(f"{model}: not compiled: {compilation.artifact.reason}")
        (out / COMPILED_FILE).write_bytes(compilation.model)
        compiled = compilation.artifact.model_copy(
            update={
                "uri": str(out / COMPILED_FILE),
                "sha256": hashlib.sha256(compilation.model).hexdigest(),
                "size_bytes": len(compilation.model),
            }
        )
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
            signature=signature,
            metrics={},
            dataset=DatasetLineage(name=model, version="v1", profile_uri=str(out / "profile.json")),
            created_at=datetime.now(UTC),
            compiled=compiled,
        )
        (out / "model-card.json").write_text(card.model_dump_json(by_alias=True))
        summary = {
            "model": model,
            "sha256": sha,
            "uri": str(out / "model.joblib"),
            "compiled": compiled.model_dump(by_alias=True, exclude_none=True, mode="json"),
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
