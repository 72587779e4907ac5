"""A trainer container's ``model.onnx``, graded through the model server's own ONNX backend.

What the file must be (README, "Bring your own trainer"):

- inputs: one input named ``X``, ``[n, features]`` of float or double, the feature columns in
  the order of the training file (every column but the target); or one ``[n, 1]`` input per
  feature column, named after it (text columns as strings);
- outputs: first the label (classification) or the value (regression); a classifier's second
  output, when there is one, the class probabilities as one ``[n, classes]`` tensor (no
  ZipMap);
- a classifier's classes: those its classifier node names (``classlabels_strings`` or
  ``classlabels_int64s``/``classlabels_ints``, which skl2onnx and onnxmltools write), else the
  sorted distinct labels of the training split (the order scikit-learn gives ``classes_``).
  They must be labels of the target.

Q: Why through the server's backend, not a session of its own?
A: What is graded is what will be served: the same session options, the same feeding of the
   request matrix (float64, or one tensor per column), the same reading of the outputs. A
   second implementation could pass the evaluation and then answer differently in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelwerk.runtime import compiled
from modelwerk.runtime.artifacts import Signature, Task, TensorSpec
from modelwerk.runtime.server.backends.onnx import OnnxBackend
from modelwerk.runtime.server.backends.verified import ModelLoadError
from modelwerk.runtime.trainer import agreement
from modelwerk.runtime.trainer.errors import TrainingFailure
from modelwerk.runtime.trainer.signature import datatype, plain

CLASSIFIER_OPS = ("TreeEnsembleClassifier", "LinearClassifier", "SVMClassifier", "ZipMap")
"""ONNX-ML operators that carry a classifier's labels."""


class OnnxModel:
    """The predict interface the holdout evaluation calls, answered by the server's backend."""

    def __init__(self, backend: OnnxBackend, signature: Signature) -> None:
        self.backend = backend
        self.signature = signature

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        predicted, _ = self.backend.predict(agreement.matrix(x, self.signature), False)
        return predicted


class OnnxClassifier(OnnxModel):
    """A classifier: labels, and probabilities when the model has them."""

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.signature.classes)


class OnnxProbabilisticClassifier(OnnxClassifier):
    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        _, probabilities = self.backend.predict(agreement.matrix(x, self.signature), True)
        assert probabilities is not None  # the backend has them (has_proba)
        return probabilities


@dataclass(frozen=True)
class Loaded:
    model: OnnxModel
    signature: Signature
    framework_version: str
    """The default-domain opset, as ``opset 18``."""


def load(raw: bytes, x: pd.DataFrame, y_train: pd.Series, task: Task) -> Loaded:
    """The model in ``raw`` (already hash-checked) for features ``x``, or ModelRejected."""
    try:
        session = compiled.session(raw)
    except compiled.CompiledModelError as error:
        raise _rejected(str(error)) from error
    graph = _parse(raw)
    inputs = [TensorSpec(name=str(c), datatype=datatype(x[c].dtype)) for c in x.columns]
    if task == "regression":
        signature = Signature(inputs=inputs, outputs=[TensorSpec(name="predict", datatype="FP64")])
    else:
        classes = _classes(graph, y_train)
        outputs = [TensorSpec(name="predict", datatype=datatype(np.asarray(classes).dtype))]
        if len(session.get_outputs()) > 1:
            outputs.append(
                TensorSpec(name="predict_proba", datatype="FP64", shape=[-1, len(classes)])
            )
        signature = Signature(inputs=inputs, outputs=outputs, classes=classes)
    try:
        backend = OnnxBackend(session, task, signature)
    except ModelLoadError as error:
        raise _rejected(str(error)) from error
    model: OnnxModel
    if task == "regression":
        model = OnnxModel(backend, signature)
    elif backend.has_proba:
        model = OnnxProbabilisticClassifier(backend, signature)
    else:
        model = OnnxClassifier(backend, signature)
    _check_widths(model, x, signature)
    opsets = graph.opset_import if graph is not None else []
    opset = next((o.version for o in opsets if o.domain in ("", "ai.onnx")), None)
    return Loaded(model, signature, f"opset {opset}" if opset is not None else "unknown")


def _parse(raw: bytes) -> Any:
    """The graph, to read its classes and opset; None in an install without ``onnx`` (the
    runtime image has it): the classes then come from the training labels."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        return onnx.load_from_string(raw)
    except Exception as error:  # protobuf raises its own DecodeError
        raise _rejected(f"not an ONNX model: {type(error).__name__}: {error}") from error


def _classes(graph: Any, y_train: pd.Series) -> list[Any]:
    known = [plain(v) for v in np.unique(y_train.to_numpy())]
    found = _graph_classes(graph) if graph is not None else None
    if found is None:
        return known
    strange = [c for c in found if c not in set(known)]
    if strange:
        raise _rejected(
            f"its classes {found[:10]} include {strange[:5]}, which are not labels of the "
            f"target (the training split holds {known[:10]})"
        )
    return found


def _graph_classes(graph: Any) -> list[Any] | None:
    from onnx import helper

    for node in graph.graph.node:
        if node.op_type not in CLASSIFIER_OPS:
            continue
        for attribute in node.attribute:
            if attribute.name == "classlabels_strings":
                return [v.decode() for v in helper.get_attribute_value(attribute)]
            if attribute.name in ("classlabels_int64s", "classlabels_ints"):
                return [int(v) for v in helper.get_attribute_value(attribute)]
    return None


def _check_widths(model: OnnxModel, x: pd.DataFrame, signature: Signature) -> None:
    """One row through the model: a width that does not fit is refused with its numbers."""
    try:
        predicted, probabilities = model.backend.predict(
            agreement.matrix(x.iloc[:1], signature), model.backend.has_proba
        )
    except Exception as error:  # ONNX Runtime raises its own types for wrong inputs
        raise _rejected(
            f"it cannot predict a row of the features {', '.join(map(str, x.columns[:20]))}: "
            f"{type(error).__name__}: {error}"
        ) from error
    if len(predicted) != 1:
        raise _rejected(f"it answers {len(predicted)} values for one row")
    classes = signature.classes or []
    if probabilities is not None and probabilities.shape != (1, len(classes)):
        raise _rejected(
            f"its probabilities have shape {list(probabilities.shape)} for one row, but the "
            f"classes are {classes[:10]} ({len(classes)})"
        )


def _rejected(why: str) -> TrainingFailure:
    return TrainingFailure("ModelRejected", f"model.onnx: {why}")
