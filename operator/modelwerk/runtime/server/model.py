"""Load a model safely: verify its sha256 first, load second (a backend), warm up third.

``joblib.load`` unpickles, and unpickling runs code, so the bytes are hashed *before* they are
loaded and compared with a sha256 the operator passes in (taken from the ModelVersion, which
got it from the trainer). The expected hash is required: the model card sits next to the
artifact, so anyone able to swap the artifact could swap the card's hash too. The compiled
backend never unpickles at all (see :mod:`.backends`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelwerk.runtime.artifacts import ModelCard, Task
from modelwerk.runtime.profile import CategoricalProfile, NumericProfile, Profile
from modelwerk.runtime.server import compatibility
from modelwerk.runtime.server.backends import Backend, ModelLoadError, choose, load_backend
from modelwerk.runtime.server.settings import ServerSettings
from modelwerk.runtime.storage import STORE_ERRORS, StorageError, exists, open_uri

log = logging.getLogger(__name__)

NUMERIC_TYPES = frozenset(
    {
        "FP64",
        "FP32",
        "FP16",
        "INT64",
        "INT32",
        "INT16",
        "INT8",
        "UINT64",
        "UINT32",
        "UINT16",
        "UINT8",
        "BOOL",
    }
)

__all__ = ["NUMERIC_TYPES", "LoadedModel", "ModelLoadError", "describe", "load_model"]


@dataclass
class LoadedModel:
    """A verified, loaded and warmed-up model with what the server needs to know about it."""

    name: str
    version: str
    sha256: str
    card: ModelCard
    backend: Backend
    profile: Profile | None = None
    columns: list[str] = field(init=False)
    datatypes: list[str] = field(init=False)
    numeric: bool = field(init=False)
    """All inputs numeric: requests decode to one float64 matrix (the fast path)."""
    classes: list[Any] | None = field(init=False)
    has_proba: bool = field(init=False)

    def __post_init__(self) -> None:
        inputs = self.card.signature.inputs
        self.columns = [t.name for t in inputs]
        self.datatypes = [t.datatype for t in inputs]
        self.numeric = all(d in NUMERIC_TYPES for d in self.datatypes)
        self.classes = self.backend.classes
        self.has_proba = self.backend.has_proba

    @property
    def task(self) -> Task:
        return self.card.task

    def predict(self, x: np.ndarray, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return self.backend.predict(x, proba)

    def warm_up(self) -> None:
        """One predict (and predict_proba) on a typical row, so the first request is not slow."""
        row = np.empty((1, len(self.columns)), dtype=np.float64 if self.numeric else object)
        for j, (column, datatype) in enumerate(zip(self.columns, self.datatypes, strict=True)):
            row[0, j] = _typical(self.profile, column, datatype)
        try:
            self.predict(row, proba=self.has_proba)
        except Exception as exc:
            raise ModelLoadError(f"warm-up predict failed: {type(exc).__name__}: {exc}") from exc


def _typical(profile: Profile | None, column: str, datatype: str) -> Any:
    feature = profile.features.get(column) if profile else None
    if isinstance(feature, NumericProfile) and feature.mean is not None:
        return feature.mean
    if isinstance(feature, CategoricalProfile) and feature.frequencies:
        return max(feature.frequencies, key=lambda k: feature.frequencies[k])
    return "" if datatype == "BYTES" else 0.0


def _read_card(uri: str) -> ModelCard:
    if not exists(uri):
        raise ModelLoadError(f"model card not found: {uri}")
    with open_uri(uri) as handle:
        raw = handle.read()
    try:
        return ModelCard.model_validate_json(raw)
    except ValueError as exc:
        raise ModelLoadError(f"model card {uri} is invalid: {exc}") from exc


def _read_profile(uri: str) -> Profile:
    with open_uri(uri) as handle:
        raw = handle.read()
    try:
        return Profile.model_validate_json(raw)
    except ValueError as exc:
        raise ModelLoadError(f"profile {uri} is invalid: {exc}") from exc


def load_model(settings: ServerSettings) -> LoadedModel:
    """Everything before the server may report ready: card, scikit-learn version (joblib),
    hash check, load, warm-up. Raises :class:`compatibility.IncompatibleModel` when a pickle
    was written by another scikit-learn version."""
    try:
        if not settings.sha256:
            raise ModelLoadError(
                "no expected sha256 given (--sha256 / MODELWERK_SERVER_SHA256): the server does "
                "not unpickle an artifact it cannot verify"
            )
        card = _read_card(settings.resolved_card_uri)
        if card.artifact.sha256 != settings.sha256:
            raise ModelLoadError(
                f"the model card {settings.resolved_card_uri} describes artifact "
                f"{card.artifact.sha256}, not the expected {settings.sha256}"
            )
        if card.artifact.format != settings.artifact_format:
            raise ModelLoadError(
                f"the model card {settings.resolved_card_uri} describes an artifact of format "
                f"{card.artifact.format}, but the ModelVersion registers format "
                f"{settings.artifact_format}"
            )
        if choose(settings) == "joblib":
            # a pickle is only valid for the scikit-learn it was written with; the compiled
            # model was verified at registration and needs no scikit-learn at all
            import sklearn

            compatibility.check(
                card, sklearn.__version__, allow_mismatch=settings.allow_version_mismatch
            )
        backend = load_backend(settings, card)
        profile = None
        profile_uri = settings.profile_uri or card.dataset.profile_uri
        if settings.drift_enabled and profile_uri:
            if exists(profile_uri):
                profile = _read_profile(profile_uri)
            elif settings.profile_uri:
                raise ModelLoadError(f"profile not found: {profile_uri}")
            else:
                log.warning("profile %s not found: drift monitoring is off", profile_uri)
        model = LoadedModel(
            name=settings.model_name,
            version=settings.version or settings.sha256[:12],
            sha256=settings.sha256,
            card=card,
            backend=backend,
            profile=profile,
        )
        model.warm_up()
    except StorageError as exc:
        raise ModelLoadError(str(exc)) from exc
    except STORE_ERRORS as exc:  # a file that cannot be read, a store that cannot be reached
        raise ModelLoadError(f"cannot read the model: {exc}") from exc
    log.info(
        "loaded %s version %s (%s, sha256 %s, %d inputs, backend %s)",
        model.name,
        model.version,
        card.estimator,
        model.sha256,
        len(model.columns),
        backend.name,
    )
    return model


def describe(model: LoadedModel) -> dict[str, Any]:
    """V2 model metadata."""
    out_type = "BYTES" if model.classes and any(isinstance(c, str) for c in model.classes) else None
    outputs = [
        {"name": o.name, "datatype": out_type or o.datatype, "shape": o.shape}
        for o in model.card.signature.outputs
    ]
    if model.has_proba and not any(o["name"] == "probabilities" for o in outputs):
        outputs.append(
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(model.classes or [])]}
        )
    parameters: dict[str, Any] = {
        "task": model.task,
        "estimator": model.card.estimator,
        "sha256": model.sha256,
        "backend": model.backend.name,
        "drift": model.profile is not None,
    }
    if model.classes is not None:
        parameters["classes"] = model.classes
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "onnxruntime" if model.backend.name == "onnx" else "scikit-learn",
        "inputs": [t.model_dump() for t in model.card.signature.inputs],
        "outputs": outputs,
        "parameters": parameters,
    }
