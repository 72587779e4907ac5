"""Load a model artifact safely: verify its sha256 first, unpickle second, warm up third.

``joblib.load`` unpickles, and unpickling runs code, so the bytes are hashed *before* they are
loaded and compared with a sha256 the operator passes in (taken from the ModelVersion, which
got it from the trainer). The expected hash is required: the model card sits next to the
artifact, so anyone able to swap the artifact could swap the card's hash too. The bytes are read
once, hashed and loaded from that same copy, so nothing can change between check and load.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass, field
from typing import Any

import joblib
import numpy as np
import pandas as pd

from modelwerk.runtime.artifacts import ModelCard, Task
from modelwerk.runtime.profile import CategoricalProfile, NumericProfile, Profile
from modelwerk.runtime.server.settings import ServerSettings
from modelwerk.runtime.storage import StorageError, exists, open_uri

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
_CHUNK = 1 << 20
_SPOOL_IN_MEMORY = 256 << 20  # bigger artifacts spill to a temporary file while hashed


class ModelLoadError(Exception):
    """The model cannot be served; the message says why (it ends up in the pod's log)."""


@dataclass
class LoadedModel:
    """A verified, loaded and warmed-up model with what the server needs to know about it."""

    name: str
    version: str
    sha256: str
    card: ModelCard
    estimator: Any
    profile: Profile | None = None
    columns: list[str] = field(init=False)
    datatypes: list[str] = field(init=False)
    numeric: bool = field(init=False)
    """All inputs numeric: requests decode to one float64 matrix (the fast path)."""
    classes: list[Any] | None = field(init=False)

    def __post_init__(self) -> None:
        inputs = self.card.signature.inputs
        self.columns = [t.name for t in inputs]
        self.datatypes = [t.datatype for t in inputs]
        self.numeric = all(d in NUMERIC_TYPES for d in self.datatypes)
        found = getattr(self.estimator, "classes_", None)
        if self.task == "classification" and found is not None:
            self.classes = np.asarray(found).tolist()
        elif self.task == "classification":
            self.classes = list(self.card.signature.classes or [])
        else:
            self.classes = None
        # Fitted on a DataFrame -> give it one (else sklearn warns about missing feature
        # names); fitted on an array -> give it the array (else it warns the other way round).
        names = getattr(self.estimator, "feature_names_in_", None)
        self._frame_columns: list[str] | None = None if names is None else list(names)
        if self._frame_columns is not None and set(self._frame_columns) != set(self.columns):
            raise ModelLoadError(
                f"the model was fitted on columns {self._frame_columns} but its signature lists "
                f"{self.columns}"
            )
        n_in = getattr(self.estimator, "n_features_in_", None)
        if n_in is not None and int(n_in) != len(self.columns):
            raise ModelLoadError(
                f"the model expects {n_in} features but its signature lists {len(self.columns)}"
            )
        self.has_proba = self.task == "classification" and hasattr(self.estimator, "predict_proba")

    @property
    def task(self) -> Task:
        return self.card.task

    def model_input(self, x: np.ndarray) -> Any:
        """The matrix (signature column order) as the estimator wants it."""
        if self._frame_columns is None:
            return x
        frame = pd.DataFrame(
            {
                c: _column(x[:, j], d)
                for j, (c, d) in enumerate(zip(self.columns, self.datatypes, strict=True))
            },
            copy=False,
        )
        return frame[self._frame_columns] if self._frame_columns != self.columns else frame

    def predict(self, x: np.ndarray, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        data = self.model_input(x)
        pred = np.asarray(self.estimator.predict(data))
        if pred.ndim > 1:  # some regressors return [n, 1]
            pred = pred.reshape(len(x), -1)[:, 0]
        probabilities = (
            np.asarray(self.estimator.predict_proba(data), dtype=np.float64) if proba else None
        )
        return pred, probabilities

    def warm_up(self) -> None:
        """One predict (and predict_proba) on a typical row, so the first request is not slow."""
        row = np.empty((1, len(self.columns)), dtype=np.float64 if self.numeric else object)
        for j, (column, datatype) in enumerate(zip(self.columns, self.datatypes, strict=True)):
            row[0, j] = _typical(self.profile, column, datatype)
        try:
            self.predict(row, proba=self.has_proba)
        except Exception as exc:
            raise ModelLoadError(f"warm-up predict failed: {type(exc).__name__}: {exc}") from exc


def _column(values: np.ndarray, datatype: str) -> np.ndarray:
    if datatype == "BYTES":
        return values.astype(object)
    numbers = values.astype(np.float64)
    if datatype.startswith(("INT", "UINT")) and not np.isnan(numbers).any():
        return numbers.astype(np.int64)
    if datatype == "BOOL" and not np.isnan(numbers).any():
        return numbers.astype(bool)
    return numbers


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


def verify_and_load(uri: str, expected_sha256: str) -> Any:
    """Hash the artifact's bytes and unpickle the very same bytes only when the hash matches."""
    if not exists(uri):
        raise ModelLoadError(f"model artifact not found: {uri}")
    digest = hashlib.sha256()
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as copy:
        with open_uri(uri) as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                copy.write(chunk)
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise ModelLoadError(
                f"refusing to load {uri}: its sha256 is {actual}, expected {expected_sha256} "
                "(the artifact was modified or is not the one registered)"
            )
        copy.seek(0)
        try:
            return joblib.load(copy)
        except Exception as exc:
            raise ModelLoadError(f"cannot unpickle {uri}: {type(exc).__name__}: {exc}") from exc


def load_model(settings: ServerSettings) -> LoadedModel:
    """Everything before the server may report ready: card, hash check, unpickle, warm-up."""
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
        estimator = verify_and_load(settings.model_uri, settings.sha256)
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
            estimator=estimator,
            profile=profile,
        )
        model.warm_up()
    except StorageError as exc:
        raise ModelLoadError(str(exc)) from exc
    except OSError as exc:
        raise ModelLoadError(f"cannot read the model: {exc}") from exc
    log.info(
        "loaded %s version %s (%s, sha256 %s, %d inputs)",
        model.name,
        model.version,
        card.estimator,
        model.sha256,
        len(model.columns),
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
        "drift": model.profile is not None,
    }
    if model.classes is not None:
        parameters["classes"] = model.classes
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "scikit-learn",
        "inputs": [t.model_dump() for t in model.card.signature.inputs],
        "outputs": outputs,
        "parameters": parameters,
    }
