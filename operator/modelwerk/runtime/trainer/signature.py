"""The model's signature in Open Inference Protocol (V2) terms, and its compact wire form.

Inputs are the feature columns in the order the pipeline expects them; outputs are
``predict`` (and ``predict_proba`` with one column per class, when the model has it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from modelwerk.runtime.artifacts import Datatype, Signature, Task, TensorSpec


def datatype(dtype: Any) -> Datatype:
    """The V2 datatype carrying values of ``dtype``."""
    if ptypes.is_bool_dtype(dtype):
        return "BOOL"
    if ptypes.is_integer_dtype(dtype):
        return "INT64"
    if ptypes.is_float_dtype(dtype):
        return "FP32" if np.dtype(dtype) == np.float32 else "FP64"
    return "BYTES"


def plain(value: Any) -> Any:
    """A NumPy scalar as the Python scalar JSON can carry."""
    return value.item() if isinstance(value, np.generic) else value


def build(x: pd.DataFrame, model: Any, task: Task) -> Signature:
    inputs = [TensorSpec(name=str(c), datatype=datatype(x[c].dtype)) for c in x.columns]
    if task == "regression":
        return Signature(inputs=inputs, outputs=[TensorSpec(name="predict", datatype="FP64")])
    classes = [plain(c) for c in model.classes_]
    outputs = [TensorSpec(name="predict", datatype=datatype(np.asarray(model.classes_).dtype))]
    if hasattr(model, "predict_proba"):
        outputs.append(TensorSpec(name="predict_proba", datatype="FP64", shape=[-1, len(classes)]))
    return Signature(inputs=inputs, outputs=outputs, classes=classes)


def compact(signature: Signature) -> dict[str, Any]:
    """The termination-message form: ``{"inputs": [[name, datatype]], "outputs": [[name,
    datatype, shape]], "classes": [...]}``; the full form is in the model card."""
    out: dict[str, Any] = {
        "inputs": [[t.name, t.datatype] for t in signature.inputs],
        "outputs": [[t.name, t.datatype, t.shape] for t in signature.outputs],
    }
    if signature.classes is not None:
        out["classes"] = list(signature.classes)
    return out
