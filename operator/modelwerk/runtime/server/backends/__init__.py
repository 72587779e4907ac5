"""What computes the predictions: the pickled pipeline (joblib) or its compiled form (onnx).

Every backend answers ``predict(x, probabilities)`` on the matrix the codec decoded (signature
column order, float64 when every input is numeric): requests are validated, merged by the
batcher, captured and monitored the same way whichever backend runs them.

``--backend auto`` (the default) serves the compiled model when the operator passed one, that
is when the ModelVersion records a verified compilation (``spec.compiled``); ``onnx`` insists on
it (the server refuses to start without it); ``joblib`` always serves the original. An artifact
that is ONNX itself (``--artifact-format onnx``: a trainer container wrote ``model.onnx``) has
no original to unpickle: the onnx backend serves it, and ``joblib`` is refused.

Q: What does serving the compiled model gain, besides speed?
A: ``joblib.load`` unpickles, and unpickling runs code: whoever can place a pickle where the
   server loads it can run anything in the serving pod. The sha256 check already refuses bytes
   other than those registered, but a pickle that was malicious when it was registered (a
   compromised training image or dependency) would still run. A compiled-only load never
   unpickles anything: the joblib file is not even opened, and ONNX is a protobuf of operators
   from a fixed, versioned set that ONNX Runtime parses and checks, not a program it executes.
   The pod also no longer imports scikit-learn to serve.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from modelwerk.runtime.artifacts import ModelCard
from modelwerk.runtime.server.backends.verified import ModelLoadError
from modelwerk.runtime.server.settings import ServerSettings

__all__ = ["Backend", "ModelLoadError", "choose", "load_backend"]


class Backend(Protocol):
    """A loaded model that predicts; ``classes`` is the label order of the probabilities."""

    name: str
    classes: list[Any] | None
    has_proba: bool

    def predict(self, x: np.ndarray, proba: bool) -> tuple[np.ndarray, np.ndarray | None]: ...


def choose(settings: ServerSettings) -> str:
    """``onnx`` or ``joblib`` for these settings (``auto``: onnx when a compiled model is given
    or the artifact is ONNX); :class:`ModelLoadError` for joblib asked of an ONNX artifact."""
    if settings.artifact_format == "onnx":
        if settings.backend == "joblib":
            raise ModelLoadError(
                f"{settings.model_uri} is an ONNX model (artifact format onnx) with no "
                "scikit-learn pipeline to unpickle: serve it with --backend onnx or auto"
            )
        return "onnx"
    if settings.backend == "auto":
        return "onnx" if settings.compiled_sha256 else "joblib"
    return settings.backend


def load_backend(settings: ServerSettings, card: ModelCard) -> Backend:
    """The verified, loaded backend ``settings`` ask for; :class:`ModelLoadError` says why not."""
    if choose(settings) == "onnx":
        from modelwerk.runtime.server.backends.onnx import load_onnx

        return load_onnx(settings, card)
    from modelwerk.runtime.server.backends.joblib import load_joblib

    assert settings.sha256 is not None  # load_model refuses to start without it
    return load_joblib(settings.model_uri, settings.sha256, card)
