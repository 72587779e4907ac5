"""Compiling the fitted pipeline to ONNX at registration, and proving that it answers the same.

Runs in the training Job once the gates have passed, where the fitted pipeline and its data
are: the whole pipeline (feature steps and estimator) is converted, then the original and the
compiled model both predict every row of the dataset snapshot, and the compiled model is kept
only if it agrees. The figures go to the model card and the ModelVersion either way.

Q: How closely must the two agree, and why these bounds?
A: Labels on every row, exactly: a label is what a client acts on. Class probabilities within
   ``1e-5`` absolute: nobody decides on the sixth decimal of a probability, and float32
   arithmetic (24-bit mantissa, ~6e-8 relative per operation) accumulated over a few hundred
   trees stays an order of magnitude below it, so the bound separates rounding from a wrong
   graph. Regression values within ``1e-5 + 1e-5·|value|`` (``numpy.isclose`` with both
   tolerances), for the same reason at any scale of the target. With float64 compilation the
   measured differences are ~1e-15: the bounds only matter for float32 graphs.

Q: Why float64, and what is ``mixed``?
A: scikit-learn computes in float64. A float32 graph rounds every input and every scaled
   feature to 24 bits, so a row close to a split threshold can take the other branch and change
   its probability or label. The converter is asked for float64 first. Tree ensembles do not
   convert in float64 (skl2onnx 1.20 emits double outputs that ONNX Runtime's tree operators
   refuse, or, for forest classifiers, probabilities off by up to 0.15: verification caught
   it), so next comes ``mixed``: the feature steps in float64 and the estimator in float32,
   cast exactly where scikit-learn's trees cast their input to float32 themselves. Plain
   float32 is the last resort. Verification decides in every case; what it cannot prove is
   agreement on rows unlike any in the snapshot, which for a float32 estimator means a row
   within one float32 step of a split threshold. XGBoost and LightGBM compile the same way,
   with onnxmltools' converters and ML opset 3 (:mod:`~modelwerk.runtime.trainer.onnx_boosting`
   says why, and how faithful their float32 cast is).

Q: And when a pipeline cannot be converted, or disagrees?
A: The reason is recorded (``compiled.verified: false, reason: …``) and the joblib model is
   served as before. No ``model.onnx`` is written, so nothing unverified can ever be served.

Converters are looked up in :data:`CONVERTERS` by the pipeline's final estimator; another
estimator family adds itself with :func:`register`, as XGBoost and LightGBM do below.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from modelwerk.runtime import compiled
from modelwerk.runtime.artifacts import CompiledArtifact, Signature, Task
from modelwerk.runtime.trainer import agreement, onnx_boosting, onnx_graph
from modelwerk.runtime.trainer.agreement import (
    ABS_TOLERANCE,
    PROBABILITY_TOLERANCE,
    REL_TOLERANCE,
)

Precision = Literal["float64", "mixed", "float32"]
Kind = Literal["double", "int64", "string"]

TARGET_OPSET = {"": 18, "ai.onnx.ml": 5}
"""ONNX opset 18 and ML opset 5 (whose TreeEnsemble computes in float64), both served by every
onnxruntime the runtime extra allows."""
PRECISIONS: tuple[Precision, ...] = ("float64", "mixed", "float32")
"""Tried in this order; the first that converts, loads and agrees is kept. ``mixed``: the
feature steps in float64 and the estimator in float32, cast where scikit-learn's own trees
cast their input to float32 (so the same rows take the same branches)."""

KNOWN_UNSUPPORTED: dict[str, str] = {
    "HistGradientBoostingClassifier": "skl2onnx 1.20 cannot build its tree node attributes",
    "HistGradientBoostingRegressor": "skl2onnx 1.20 cannot build its tree node attributes",
    "LinearSVC": "skl2onnx 1.20 asks a LinearSVC inside a Pipeline for a zipmap option it lacks",
}
"""Allowlisted estimators that do not compile with the pinned converters (name -> why). Not a
skip list: they are attempted like any other and fall back to joblib with the converter's own
error as the reason. The tests compile every allowlisted estimator and hold this table to it,
so a converter release that fixes one shows up as a failing test to update."""


@dataclass(frozen=True)
class Input:
    name: str
    kind: Kind


@dataclass(frozen=True)
class Converter:
    """Converts pipelines whose final estimator it ``handles`` into an ONNX ``ModelProto``."""

    name: str
    handles: Callable[[Any], bool]
    convert: Callable[[Any, Sequence[Input], int | None, Precision], Any]
    """(pipeline, per-column inputs, width of a single input or None, precision) -> ModelProto"""
    version: Callable[[], str]
    libraries: Callable[[], dict[str, str]] | None = None
    """The converter libraries and their versions, when not just ``{name: version()}``."""


CONVERTERS: list[Converter] = []


def register(converter: Converter) -> None:
    """Add a converter; later registrations are tried first."""
    CONVERTERS.insert(0, converter)


class Unconvertible(Exception):
    """The pipeline cannot be compiled; the message is the recorded reason."""


@dataclass(frozen=True)
class Compilation:
    artifact: CompiledArtifact
    """Without ``uri``/``sha256``: those are set when the bytes are published."""
    model: bytes | None
    """The serialized ONNX model, only when verified."""


def compile_pipeline(
    pipeline: Any,
    frame: pd.DataFrame,
    signature: Signature,
    task: Task,
    holdout: Sequence[Any] = (),
) -> Compilation:
    """Convert ``pipeline`` and verify it on every row of ``frame`` (the feature columns of
    the snapshot; ``holdout`` are the index labels of its holdout rows)."""
    started = time.perf_counter()
    tolerance = (
        {"probability": PROBABILITY_TOLERANCE}
        if task == "classification"
        else {"abs": ABS_TOLERANCE, "rel": REL_TOLERANCE}
    )
    try:
        converter = _converter_for(pipeline)
    except Unconvertible as exc:
        return _refused(str(exc), tolerance, started)
    with warnings.catch_warnings():
        # converters and the estimators they read warn about deprecations of their own; that
        # is neither a failure of the compilation nor something the model card needs
        warnings.simplefilter("ignore")
        return _attempt(converter, pipeline, frame, signature, task, holdout, tolerance, started)


def _attempt(
    converter: Converter,
    pipeline: Any,
    frame: pd.DataFrame,
    signature: Signature,
    task: Task,
    holdout: Sequence[Any],
    tolerance: dict[str, float],
    started: float,
) -> Compilation:
    has_proba = any(o.name == "predict_proba" for o in signature.outputs)
    attempts: list[str] = []
    compared: tuple[Any, Precision, agreement.Rows] | None = None
    problem: str | None = "not compiled"
    for precision in PRECISIONS:
        try:
            model, runner = _build(converter, pipeline, signature, has_proba, precision)
        except ImportError as exc:
            return _refused(f"ConverterUnavailable: {exc}", tolerance, started)
        except Exception as exc:  # converters raise anything from KeyError to NotImplementedError
            attempts.append(
                f"{precision}: cannot convert: {type(exc).__name__}: {_first_line(exc)}"
            )
            continue
        try:
            rows = agreement.compare(pipeline, runner, frame, signature, task)
        except Exception as exc:  # a compiled model that cannot run on the data disagrees
            attempts.append(
                f"{precision}: fails on the data: {type(exc).__name__}: {_first_line(exc)}"
            )
            continue
        compared = (model, precision, rows)
        problem = rows.problem(tolerance)
        if problem is None:
            break
        attempts.append(f"{precision}: {problem}")
    if compared is None:
        return _refused("Unsupported: " + "; ".join(attempts), tolerance, started)
    model, precision, rows = compared
    in_holdout = frame.index.isin(list(holdout)) if len(holdout) else None
    artifact = CompiledArtifact(
        verified=problem is None,
        reason=None if problem is None else ("Disagrees: " + "; ".join(attempts))[:1000],
        converter=f"{converter.name} {converter.version()}",
        opsets={o.domain or "": int(o.version) for o in model.opset_import},
        precision=precision,
        libraries=_libraries(converter),
        tolerance=tolerance,
        snapshot=rows.summary(None),
        holdout=rows.summary(in_holdout) if in_holdout is not None else None,
        seconds=round(time.perf_counter() - started, 3),
    )
    return Compilation(artifact, model.SerializeToString() if problem is None else None)


# ----------------------------------------------------------------------------- conversion


def _final(pipeline: Any) -> Any:
    steps = getattr(pipeline, "steps", None)
    return steps[-1][1] if steps else pipeline


def _converter_for(pipeline: Any) -> Converter:
    final = _final(pipeline)
    for converter in CONVERTERS:
        if converter.handles(final):
            return converter
    raise Unconvertible(f"Unsupported: no converter for {type(final).__name__}")


def _inputs(pipeline: Any, signature: Signature) -> tuple[list[Input], int | None]:
    """Per-column inputs (named like the columns a ColumnTransformer selects by name), or the
    width of the single matrix input every other pipeline takes."""
    selects_by_name = any(
        hasattr(step, "transformers_") for _, step in getattr(pipeline, "steps", [])
    )
    if not selects_by_name or getattr(pipeline, "feature_names_in_", None) is None:
        if any(t.datatype == "BYTES" for t in signature.inputs):
            raise Unconvertible("Unsupported: text inputs without a ColumnTransformer")
        return [], len(signature.inputs)
    one_hot = _one_hot_columns(pipeline)
    inputs = []
    for tensor in signature.inputs:
        kind: Kind = "double"
        if tensor.datatype == "BYTES":
            kind = "string"
        elif tensor.name in one_hot and tensor.datatype in ("INT64", "INT32", "BOOL"):
            kind = "int64"  # categories are compared as integers, as the encoder learnt them
        inputs.append(Input(tensor.name, kind))
    return inputs, None


def _one_hot_columns(pipeline: Any) -> set[str]:
    found: set[str] = set()
    for _, step in getattr(pipeline, "steps", []):
        for _, transformer, columns in getattr(step, "transformers_", []):
            inner = getattr(transformer, "steps", [(None, transformer)])
            if any(type(t).__name__ == "OneHotEncoder" for _, t in inner):
                found.update(str(c) for c in columns)
    return found


def _build(
    converter: Converter,
    pipeline: Any,
    signature: Signature,
    has_proba: bool,
    precision: Precision,
) -> tuple[Any, compiled.Runner]:
    """The converted model in ``precision`` and a runner on it, as the server would load it."""
    inputs, width = _inputs(pipeline, signature)
    model = converter.convert(pipeline, inputs, width, precision)
    if inputs:
        onnx_graph.name_inputs(model, [i.name for i in inputs])
        if all(i.kind != "string" for i in inputs):
            model = onnx_graph.single_input(model, [i.name for i in inputs])
    else:
        onnx_graph.double_input(model)
    columns = [t.name for t in signature.inputs]
    session = compiled.session(model.SerializeToString())
    return model, compiled.Runner(session, columns, has_proba)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def _skl2onnx_convert(
    pipeline: Any,
    inputs: Sequence[Input],
    width: int | None,
    precision: Precision,
    opset: dict[str, int] = TARGET_OPSET,
) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    number = FloatTensorType if precision == "float32" else DoubleTensorType
    types = {"double": number, "int64": Int64TensorType, "string": StringTensorType}
    if precision == "mixed":
        pipeline = _cast_before_estimator(pipeline)
    if width is not None:
        initial = [(compiled.INPUT, number([None, width]))]
    else:
        initial = [(i.name, types[i.kind]([None, 1])) for i in inputs]
    final = _final(pipeline)
    if hasattr(final, "classes_"):
        try:  # probabilities as one [n, classes] tensor, not a list of dicts
            return convert_sklearn(
                pipeline,
                initial_types=initial,
                options={id(final): {"zipmap": False}},
                target_opset=dict(opset),
            )
        except NameError:  # a classifier without probabilities has no such option
            pass
    return convert_sklearn(pipeline, initial_types=initial, target_opset=dict(opset))


def _cast_before_estimator(pipeline: Any) -> Any:
    """The same fitted steps with a float32 cast in front of the estimator (conversion only)."""
    from skl2onnx.sklapi import CastTransformer
    from sklearn.pipeline import Pipeline

    steps = list(getattr(pipeline, "steps", None) or [("estimator", pipeline)])
    return Pipeline([*steps[:-1], ("float32", CastTransformer(dtype=np.float32)), steps[-1]])


def _skl2onnx_version() -> str:
    import skl2onnx

    return str(skl2onnx.__version__)


register(
    Converter(
        name="skl2onnx",
        handles=lambda est: type(est).__module__.startswith("sklearn."),
        convert=_skl2onnx_convert,
        version=_skl2onnx_version,
    )
)


def _boosting_convert(
    pipeline: Any, inputs: Sequence[Input], width: int | None, precision: Precision
) -> Any:
    onnx_boosting.register_converters()
    return _skl2onnx_convert(pipeline, inputs, width, precision, onnx_boosting.TARGET_OPSET)


register(
    Converter(
        name="skl2onnx",
        handles=onnx_boosting.handles,
        convert=_boosting_convert,
        version=onnx_boosting.version,
        libraries=onnx_boosting.libraries,
    )
)


def _libraries(converter: Converter) -> dict[str, str]:
    import onnx
    import onnxruntime

    return {
        **(converter.libraries() if converter.libraries else {converter.name: converter.version()}),
        "onnx": str(onnx.__version__),
        "onnxruntime": str(onnxruntime.__version__),
    }


def _refused(reason: str, tolerance: dict[str, float], started: float) -> Compilation:
    return Compilation(
        CompiledArtifact(
            verified=False,
            reason=reason,
            tolerance=tolerance,
            seconds=round(time.perf_counter() - started, 3),
        ),
        None,
    )
