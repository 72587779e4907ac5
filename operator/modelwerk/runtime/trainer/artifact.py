"""Publishing a trained pipeline: ``models/<model>/<sha256>/{model.joblib,model.onnx,model-card.json}``.

The address is the sha256 of the joblib file (of ``model.onnx`` for a trainer container's
ONNX model, which is published alone), so the model is serialised into a staging
directory first, hashed, described by its card, then moved into place (see
:mod:`modelwerk.runtime.publish`). If the same bytes were published before, the existing
directory and its card are kept: the card describes the first run that produced the bytes.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from modelwerk.api.base import ObjectMeta
from modelwerk.runtime import publish, storage
from modelwerk.runtime.artifacts import (
    COMPILED_FILE,
    MODEL_CARD_FILE,
    MODEL_FILE,
    ArtifactRef,
    CompiledArtifact,
    DatasetLineage,
    Evaluation,
    ModelCard,
    TrainingLineage,
    TrialsRef,
)
from modelwerk.runtime.trainer.compile import Compilation
from modelwerk.runtime.trainer.train import Trained


@dataclass(frozen=True)
class OnnxArtifact:
    """An ONNX model published as the artifact itself."""

    model: bytes
    version: str
    """What the card records as its framework version (the graph's opset)."""


@dataclass(frozen=True)
class Published:
    card: ModelCard
    card_uri: str
    new: bool
    """False when identical bytes were already published (the existing card is returned)."""


def libraries() -> dict[str, str]:
    """Versions that matter when loading the artifact elsewhere."""
    import joblib
    import numpy
    import pandas
    import scipy
    import sklearn

    from modelwerk import __version__

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pandas": pandas.__version__,
        "joblib": joblib.__version__,
        "modelwerk": __version__,
    }


def write(
    trained: Trained,
    *,
    root: str,
    model: str,
    estimator: str,
    dataset: DatasetLineage,
    job: ObjectMeta,
    duration_seconds: float,
    compilation: Compilation | None = None,
    trials: TrialsRef | None = None,
    onnx: OnnxArtifact | None = None,
) -> Published:
    """Serialise, hash, describe and publish ``trained`` under the artifact ``root``; a verified
    ``compilation`` is published next to it as ``model.onnx``. With ``onnx`` (a trainer
    container's ONNX model) those bytes are the artifact, ``model.onnx``, and nothing is
    pickled."""
    import joblib
    import sklearn

    parent = storage.join(root, "models", publish.segment(model))
    staging = publish.staging_dir(parent)
    file = MODEL_FILE if onnx is None else COMPILED_FILE
    try:
        with storage.open_uri(storage.join(staging, file), "wb") as handle:
            hashing = _HashingWriter(handle)
            if onnx is None:
                joblib.dump(trained.model, hashing)
            else:
                hashing.write(onnx.model)
        digest, size = hashing.digest.hexdigest(), hashing.size
        final = storage.join(parent, digest)
        card_uri = storage.join(final, MODEL_CARD_FILE)
        if publish.is_complete(final, MODEL_CARD_FILE):
            publish.discard(staging)
            return Published(read_card(card_uri), card_uri, new=False)
        compiled = _stage_compiled(compilation, staging, final)
        card = ModelCard(
            model=model,
            task=trained.task,
            estimator=estimator,
            artifact=ArtifactRef(
                uri=storage.join(final, file),
                sha256=digest,
                size_bytes=size,
                format="joblib" if onnx is None else "onnx",
                framework="scikit-learn" if onnx is None else "onnx",
                framework_version=sklearn.__version__ if onnx is None else onnx.version,
            ),
            signature=trained.signature,
            metrics=trained.metrics,
            params=trained.params,
            best_params=trained.best_params,
            dataset=dataset,
            training_job=TrainingLineage(
                name=job.name, namespace=job.namespace or "default", uid=job.uid or None
            ),
            libraries=libraries(),
            created_at=datetime.now(UTC),
            evaluation=Evaluation(
                train_rows=trained.train_rows,
                test_rows=trained.test_rows,
                labels=trained.details.get("labels"),
                confusion_matrix=trained.details.get("confusionMatrix"),
                search=trained.search,
                warnings=trained.warnings,
            ),
            duration_seconds=round(duration_seconds, 3),
            compiled=compiled,
            fairness=trained.fairness,
            robustness=trained.robustness,
            trials=trials,
            champion=trained.champion.to_k8s() if trained.champion else None,
        )
        with storage.open_uri(storage.join(staging, MODEL_CARD_FILE), "w") as handle:
            handle.write(card.model_dump_json(by_alias=True, indent=2))
        if not publish.commit(staging, final, MODEL_CARD_FILE):
            return Published(read_card(card_uri), card_uri, new=False)
    except BaseException:
        publish.discard(staging)
        raise
    return Published(card, card_uri, new=True)


def _stage_compiled(
    compilation: Compilation | None, staging: str, final: str
) -> CompiledArtifact | None:
    """Write a verified compiled model into ``staging``; its card entry points at ``final``."""
    if compilation is None:
        return None
    if compilation.model is None:
        return compilation.artifact
    with storage.open_uri(storage.join(staging, COMPILED_FILE), "wb") as handle:
        handle.write(compilation.model)
    return compilation.artifact.model_copy(
        update={
            "uri": storage.join(final, COMPILED_FILE),
            "sha256": hashlib.sha256(compilation.model).hexdigest(),
            "size_bytes": len(compilation.model),
        }
    )


class _HashingWriter:
    """Hashes and counts bytes on their way to ``handle``: no second read of a large model.

    ``tell`` is what joblib asks to align NumPy arrays; the file is new, so its position is
    the number of bytes written.
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        self._handle.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._handle.flush()


def read_card(uri: str) -> ModelCard:
    with storage.open_uri(uri, "r") as handle:
        return ModelCard.model_validate_json(handle.read())
