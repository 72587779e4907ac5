"""The compiled (ONNX) form of a model: how it is fed, how it is run, how its answers are read.

Shared by the trainer, which verifies a compilation through this code, and by the server's
ONNX backend, which serves through it: the path that was verified is the path that is served.

Inputs. The server decodes every request into one ``[n, features]`` matrix in signature column
order: float64 when every input is numeric, object otherwise. A compiled model whose inputs
are all numeric takes that float64 matrix as its one input ``X`` as it is (no copy, no
per-column work on the request path); integer columns are cast inside the graph. A model
with text inputs takes one ``[n, 1]`` tensor per column, named after the column.

Outputs. The first output is the label (classification) or the value (regression); for a
classifier the second is the class probabilities ``[n, classes]``.

Q: Why one intra-op thread by default?
A: A worker's predict calls run one after another in its batching thread, and a served batch
   is small: fanning it out over a thread pool costs more in wake-ups than it saves, and the
   pool would compete with the event loop (and other workers) for the same cores. Scale with
   ``--workers`` and replicas instead; raise the threads for few, very large batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INPUT = "X"
"""The one input of a compiled model whose inputs are all numeric."""

_NUMPY_OF = {
    "tensor(double)": np.float64,
    "tensor(float)": np.float32,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


class CompiledModelError(Exception):
    """The compiled model cannot be loaded or does not have the expected inputs/outputs."""


def session(model: bytes, threads: int = 1) -> Any:
    """An ONNX Runtime session on the CPU for the serialized ``model``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unused initializers are not news to users
    if threads == 1:
        # no pool to keep warm: a spinning worker would only burn a core between requests
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for invalid graphs
        raise CompiledModelError(
            f"ONNX Runtime cannot load the model: {type(exc).__name__}: {exc}"
        ) from exc


class Runner:
    """Feeds a decoded request matrix to a session and returns ``(labels or values, probabilities)``.

    ``columns`` are the signature's input columns, in order; ``probabilities`` says whether the
    model has a probabilities output the server may return.
    """

    def __init__(self, sess: Any, columns: list[str], probabilities: bool) -> None:
        self._session = sess
        inputs = sess.get_inputs()
        outputs = sess.get_outputs()
        self.single = len(inputs) == 1 and inputs[0].name == INPUT
        # float64 for what modelwerk compiles (no copy); a trainer container's model.onnx
        # may take float32, the usual input of exported models
        self._single_type = _NUMPY_OF.get(inputs[0].type, np.float64) if self.single else None
        if self.single:
            width = inputs[0].shape[-1] if inputs[0].shape else None
            if isinstance(width, int) and width != len(columns):
                raise CompiledModelError(
                    f"the compiled model takes {width} features, the signature lists {len(columns)}"
                )
        else:
            names = [i.name for i in inputs]
            if sorted(names) != sorted(columns):
                raise CompiledModelError(
                    f"the compiled model's inputs {names} are not the signature's columns {columns}"
                )
            position = {c: j for j, c in enumerate(columns)}
            self._columns = [(position[i.name], i.name, i.type) for i in inputs]
        if not outputs or (probabilities and len(outputs) < 2):
            raise CompiledModelError(
                f"the compiled model has outputs {[o.name for o in outputs]}; expected the "
                "prediction" + (" and the probabilities" if probabilities else "")
            )
        if probabilities and not str(outputs[1].type).startswith("tensor("):
            raise CompiledModelError(
                f"the model's second output {outputs[1].name} is a {outputs[1].type}, not a "
                "tensor of probabilities [n, classes] (export classifiers without ZipMap)"
            )
        self.probabilities = probabilities
        self._first = [outputs[0].name]
        self._both = [outputs[0].name, outputs[1].name] if probabilities else self._first

    def feeds(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.single:
            return {INPUT: np.ascontiguousarray(x, dtype=self._single_type)}
        out: dict[str, np.ndarray] = {}
        for j, name, kind in self._columns:
            column = x[:, j]
            if kind == "tensor(string)":
                out[name] = np.array([_text(v) for v in column], dtype=object).reshape(-1, 1)
            else:
                out[name] = column.astype(_NUMPY_OF.get(kind, np.float64)).reshape(-1, 1)
        return out

    def predict(self, x: np.ndarray, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        results = self._session.run(
            self._both if proba and self.probabilities else self._first, self.feeds(x)
        )
        pred = np.asarray(results[0])
        if pred.ndim > 1:  # regressors answer [n, 1]
            pred = pred.reshape(len(x), -1)[:, 0]
        if pred.dtype.kind == "f":
            pred = pred.astype(np.float64, copy=False)
        probabilities = (
            np.asarray(results[1], dtype=np.float64) if proba and self.probabilities else None
        )
        return pred, probabilities


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)
