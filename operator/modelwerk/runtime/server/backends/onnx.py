"""The compiled backend: the verified ``model.onnx`` run by ONNX Runtime; nothing is unpickled.

Loading checks, in order: the model card (plain JSON) records a *verified* compilation with
the sha256 the operator passed; the bytes of ``model.onnx`` hash to it; ONNX Runtime accepts
them; their inputs and outputs fit the signature. Only then is a session served.

An ONNX artifact (a trainer container's ``model.onnx``, ``artifact_format: onnx``) is the
model itself: its bytes hash to the artifact's sha256 the operator passed, and the same
session checks follow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelwerk.runtime import compiled
from modelwerk.runtime.artifacts import ModelCard, Signature, Task
from modelwerk.runtime.server.backends.verified import ModelLoadError, verified_copy
from modelwerk.runtime.server.settings import ServerSettings


class OnnxBackend:
    name = "onnx"

    def __init__(self, session: Any, task: Task, signature: Signature) -> None:
        classification = task == "classification"
        self.classes: list[Any] | None = list(signature.classes or []) if classification else None
        self.has_proba = classification and any(
            o.name == "predict_proba" for o in signature.outputs
        )
        columns = [t.name for t in signature.inputs]
        try:
            self._runner = compiled.Runner(session, columns, self.has_proba)
        except compiled.CompiledModelError as exc:
            raise ModelLoadError(str(exc)) from exc

    def predict(self, x: np.ndarray, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return self._runner.predict(x, proba)


def load_onnx(settings: ServerSettings, card: ModelCard) -> OnnxBackend:
    if settings.artifact_format == "onnx":
        # the artifact is the model (a trainer container's model.onnx), checked by its own
        # sha256 from the ModelVersion; there is no compilation to look up
        assert settings.sha256 is not None  # load_model refuses to start without it
        return _session_of(settings.model_uri, settings.sha256, "model artifact", settings, card)
    expected = settings.compiled_sha256
    if expected is None:
        raise ModelLoadError(
            "the onnx backend needs the compiled model's sha256 (--compiled-sha256, from the "
            "ModelVersion's spec.compiled): this ModelVersion has no verified compiled model; "
            "serve it with --backend joblib"
        )
    described = card.compiled
    if described is None or not described.verified or described.sha256 != expected:
        found = (
            "none" if described is None else f"{described.sha256} (verified: {described.verified})"
        )
        raise ModelLoadError(
            f"the model card {settings.resolved_card_uri} does not describe a verified compiled "
            f"model {expected}: it records {found}"
        )
    uri = settings.compiled_uri or described.uri
    if not uri:
        raise ModelLoadError("no location for the compiled model (--compiled-uri)")
    return _session_of(uri, expected, "compiled model", settings, card)


def _session_of(
    uri: str, expected: str, what: str, settings: ServerSettings, card: ModelCard
) -> OnnxBackend:
    with verified_copy(uri, expected, what) as copy:
        payload = copy.read()
    try:
        session = compiled.session(payload, settings.intra_op_threads)
    except compiled.CompiledModelError as exc:
        raise ModelLoadError(f"{uri}: {exc}") from exc
    return OnnxBackend(session, card.task, card.signature)
