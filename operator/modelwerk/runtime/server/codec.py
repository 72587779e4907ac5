"""Decode inference requests into one matrix per request, and encode the responses.

Every accepted request becomes an ``[n, n_features]`` matrix in signature column order:
float64 when every input is numeric (the fast path), object otherwise. That uniform shape is
what lets the batcher merge requests with a single ``np.concatenate``.

Accepted forms (all validated against the model's signature; errors are :class:`RequestError`):

* V2 named tensors, one per feature column: ``{"name": col, "shape": [n], "datatype": "FP64",
  "data": [...]}`` (shape ``[n, 1]`` is accepted too);
* V2 one 2-D tensor ``[n, n_features]`` in signature order, under any name that is not a column
  (conventionally ``input-0``);
* V2 rows (a modelwerk extension): ``{"rows": [{col: value, ...}, ...]}`` instead of ``inputs``;
* V1 ``{"instances": [[...], ...]}`` (signature order) or ``{"instances": [{col: value}, ...]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelwerk.runtime.server.model import NUMERIC_TYPES, LoadedModel

V2_DATATYPES = frozenset(NUMERIC_TYPES | {"BYTES"})
_FLOAT_TYPES = frozenset({"FP64", "FP32", "FP16"})
OUTPUTS = ("predict", "probabilities")
MAX_ID_LENGTH = 256


class RequestError(Exception):
    """A request the server refuses; ``status`` is the HTTP code, the message is for the caller."""

    def __init__(self, message: str, status: int = 400, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow
        """For 405: the method that is allowed."""


@dataclass(slots=True)
class Decoded:
    x: np.ndarray
    request_id: str | None
    probabilities: bool


def request_id_of(body: dict[str, Any]) -> str | None:
    rid = body.get("id")
    if rid is None:
        return None
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        raise RequestError("'id' must be a string")
    rid = str(rid)
    if not rid or len(rid) > MAX_ID_LENGTH:
        raise RequestError(f"'id' must have 1 to {MAX_ID_LENGTH} characters")
    return rid


def _fail_kind(where: str, datatype: str, found: str) -> RequestError:
    return RequestError(f"{where}: datatype {datatype} needs numbers, but the data holds {found}")


def _objects_to_float(values: np.ndarray, datatype: str, where: str) -> np.ndarray:
    """The slow path: nulls (missing values) and mixed ints/floats/bools, element by element."""
    out = np.empty(values.size, dtype=np.float64)
    for i, v in enumerate(values.reshape(-1)):
        if v is None:
            if datatype not in _FLOAT_TYPES:
                raise RequestError(f"{where}: null is only allowed in FP tensors (missing value)")
            out[i] = np.nan
        elif isinstance(v, bool):
            if datatype != "BOOL":
                raise _fail_kind(where, datatype, "booleans")
            out[i] = float(v)
        elif isinstance(v, int | float):
            out[i] = float(v)
        else:
            raise _fail_kind(where, datatype, f"{type(v).__name__} values such as {v!r}"[:200])
    return out


def numbers(data: Any, datatype: str, where: str) -> np.ndarray:
    """Flat float64 values of a numeric tensor; strings and other non-numbers are refused."""
    if not isinstance(data, list):
        raise RequestError(f"{where}: 'data' must be a list")
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):
        raise RequestError(
            f"{where}: 'data' is not a regular (rectangular) list of numbers"
        ) from None
    kind = arr.dtype.kind
    if kind == "O":
        return _objects_to_float(arr, datatype, where)
    if kind == "b":
        if datatype != "BOOL":
            raise _fail_kind(where, datatype, "booleans")
    elif kind in "iu":
        pass
    elif kind == "f":
        if datatype not in _FLOAT_TYPES and datatype != "BOOL" and not np.all(np.mod(arr, 1) == 0):
            raise RequestError(
                f"{where}: datatype {datatype} needs integers, got fractional numbers"
            )
    else:
        raise _fail_kind(where, datatype, "strings" if kind in "US" else f"{arr.dtype} values")
    return arr.astype(np.float64, copy=False).reshape(-1)


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in data:
        if isinstance(v, list):
            out.extend(_flatten(v))
        else:
            out.append(v)
    return out


def strings(data: Any, where: str) -> np.ndarray:
    """Flat object array of a BYTES tensor: strings, or null for a missing value."""
    if not isinstance(data, list):
        raise RequestError(f"{where}: 'data' must be a list")
    flat = _flatten(data)
    for v in flat:
        if v is not None and not isinstance(v, str):
            raise RequestError(f"{where}: datatype BYTES needs strings, got {v!r}"[:200])
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out


def _values(data: Any, datatype: str, where: str) -> np.ndarray:
    return strings(data, where) if datatype == "BYTES" else numbers(data, datatype, where)


def _shape(tensor: dict[str, Any], where: str) -> list[int]:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise RequestError(f"{where}: 'shape' must be a non-empty list of non-negative integers")
    return shape


def _check_compatible(model: LoadedModel, j: int, datatype: str, where: str) -> None:
    expected = model.datatypes[j]
    if (expected == "BYTES") != (datatype == "BYTES"):
        raise RequestError(
            f"{where}: datatype {datatype} does not fit the model's {expected} input"
        )


def _empty(n: int) -> None:
    if n == 0:
        raise RequestError("empty batch: the request holds no rows")


def _matrix_from_columns(model: LoadedModel, columns: list[np.ndarray], n: int) -> np.ndarray:
    x = np.empty((n, len(model.columns)), dtype=np.float64 if model.numeric else object)
    for j, values in enumerate(columns):
        x[:, j] = values
    return x


def _named(model: LoadedModel, inputs: list[Any]) -> np.ndarray:
    index = {c: j for j, c in enumerate(model.columns)}
    found: list[np.ndarray | None] = [None] * len(model.columns)
    n: int | None = None
    for i, tensor in enumerate(inputs):
        name, datatype, shape = _header(tensor, i)
        where = f"input {name!r}"
        j = index.get(name)
        if j is None:
            raise RequestError(f"unknown input {name!r}; the model takes {model.columns}")
        if found[j] is not None:
            raise RequestError(f"input {name!r} appears twice")
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise RequestError(f"{where}: shape must be [n] or [n, 1], got {shape}")
        _check_compatible(model, j, datatype, where)
        values = _values(tensor.get("data"), datatype, where)
        if values.size != shape[0]:
            raise RequestError(f"{where}: shape {shape} needs {shape[0]} values, got {values.size}")
        if n is None:
            n = shape[0]
        elif shape[0] != n:
            raise RequestError(f"inputs have different lengths ({n} and {shape[0]} for {name!r})")
        found[j] = values
    missing = [c for c, v in zip(model.columns, found, strict=True) if v is None]
    if missing:
        raise RequestError(f"missing inputs {missing}; the model takes {model.columns}")
    assert n is not None
    _empty(n)
    return _matrix_from_columns(model, found, n)  # type: ignore[arg-type]


def _header(tensor: Any, i: int) -> tuple[str, str, list[int]]:
    if not isinstance(tensor, dict):
        raise RequestError(f"inputs[{i}] must be an object with name, shape, datatype and data")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise RequestError(f"inputs[{i}] needs a 'name'")
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in V2_DATATYPES:  # a list is unhashable
        raise RequestError(
            f"input {name!r}: unsupported datatype {datatype!r}; use one of {sorted(V2_DATATYPES)}"
        )
    if "data" not in tensor:
        raise RequestError(f"input {name!r} has no 'data'")
    return name, datatype, _shape(tensor, f"input {name!r}")


def _tensor_2d(model: LoadedModel, tensor: dict[str, Any]) -> np.ndarray:
    name, datatype, shape = _header(tensor, 0)
    where = f"input {name!r}"
    width = len(model.columns)
    if shape[1] != width:
        raise RequestError(
            f"{where}: a 2-D input must have shape [n, {width}] "
            f"(columns {model.columns}), got {shape}"
        )
    if not model.numeric:
        raise RequestError(
            f"{where}: the model has non-numeric inputs; send one named tensor per column, or rows"
        )
    if datatype == "BYTES":
        raise RequestError(f"{where}: datatype BYTES does not fit the model's numeric inputs")
    values = numbers(tensor.get("data"), datatype, where)
    if values.size != shape[0] * width:
        raise RequestError(
            f"{where}: shape {shape} needs {shape[0] * width} values, got {values.size}"
        )
    _empty(shape[0])
    return values.reshape(shape[0], width)


def rows_matrix(model: LoadedModel, rows: Any, where: str) -> np.ndarray:
    """Row objects ``{column: value}`` -> matrix; rows must name exactly the signature columns."""
    if not isinstance(rows, list):
        raise RequestError(f"'{where}' must be a list of row objects")
    _empty(len(rows))
    columns = model.columns
    width = len(columns)
    table: list[list[Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestError(f"{where}[{i}] must be an object mapping column names to values")
        try:
            if len(row) != width:
                raise KeyError
            table.append([row[c] for c in columns])
        except KeyError:
            missing = [c for c in columns if c not in row]
            unknown = [k for k in row if k not in set(columns)]
            raise RequestError(
                f"{where}[{i}]: missing columns {missing}, unknown columns {unknown}; "
                f"the model takes {columns}"
            ) from None
    return values_matrix(model, table, where)


def values_matrix(model: LoadedModel, table: list[Any], where: str) -> np.ndarray:
    """Rows as lists in signature order -> matrix."""
    width = len(model.columns)
    if model.numeric:
        values = numbers(table, "FP64", where)
        if values.size != len(table) * width or any(
            not isinstance(r, list) or len(r) != width for r in table
        ):
            raise RequestError(f"{where}: every row needs {width} values ({model.columns})")
        return values.reshape(len(table), width)
    if any(not isinstance(r, list) or len(r) != width for r in table):
        raise RequestError(f"{where}: every row needs {width} values ({model.columns})")
    cols = [
        _values([r[j] for r in table], d, f"{where}, column {c!r}")
        for j, (c, d) in enumerate(zip(model.columns, model.datatypes, strict=True))
    ]
    return _matrix_from_columns(model, cols, len(table))


def _wants_probabilities(model: LoadedModel, body: dict[str, Any]) -> bool:
    wanted: set[str] = set()
    outputs = body.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            raise RequestError("'outputs' must be a list of {\"name\": ...} objects")
        for o in outputs:
            name = o.get("name") if isinstance(o, dict) else None
            if name not in OUTPUTS:
                raise RequestError(f"unknown output {name!r}; this model offers {list(OUTPUTS)}")
            wanted.add(name)
    parameters = body.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise RequestError("'parameters' must be an object")
    if parameters and parameters.get("probabilities"):
        wanted.add("probabilities")
    if "probabilities" in wanted and not model.has_proba:
        raise RequestError(f"model {model.name!r} ({model.task}) has no probabilities output")
    return "probabilities" in wanted


def decode_v2(model: LoadedModel, body: Any) -> Decoded:
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    rid = request_id_of(body)
    proba = _wants_probabilities(model, body)
    if "rows" in body:
        if "inputs" in body:
            raise RequestError("send either 'inputs' or 'rows', not both")
        return Decoded(rows_matrix(model, body["rows"], "rows"), rid, proba)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("'inputs' must be a non-empty list of tensors (or send 'rows')")
    first = inputs[0]
    if (
        len(inputs) == 1
        and isinstance(first, dict)
        and isinstance(first.get("shape"), list)
        and len(first["shape"]) == 2
        and first.get("name") not in model.columns
    ):
        return Decoded(_tensor_2d(model, first), rid, proba)
    return Decoded(_named(model, inputs), rid, proba)


def decode_v1(model: LoadedModel, body: Any) -> np.ndarray:
    if not isinstance(body, dict) or "instances" not in body:
        raise RequestError("the V1 request body must be an object with 'instances'")
    instances = body["instances"]
    if not isinstance(instances, list):
        raise RequestError("'instances' must be a list")
    _empty(len(instances))
    if isinstance(instances[0], dict):
        return rows_matrix(model, instances, "instances")
    if all(not isinstance(v, list) for v in instances) and len(model.columns) == 1:
        instances = [[v] for v in instances]
    return values_matrix(model, instances, "instances")


def _data(values: np.ndarray) -> Any:
    # orjson serialises numeric numpy arrays natively (OPT_SERIALIZE_NUMPY), without tolist().
    return values if values.dtype.kind in "biuf" else values.tolist()


def datatype_of(values: np.ndarray) -> str:
    kind = values.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return "INT64"
    if kind == "f":
        return "FP64"
    return "BYTES"


def encode_v2(
    model: LoadedModel, rid: str, pred: np.ndarray, proba: np.ndarray | None
) -> dict[str, Any]:
    if pred.dtype.kind in "iu" and pred.dtype != np.int64:
        pred = pred.astype(np.int64)
    outputs: list[dict[str, Any]] = [
        {
            "name": "predict",
            "shape": [len(pred)],
            "datatype": datatype_of(pred),
            "data": _data(pred),
        }
    ]
    if proba is not None:
        outputs.append(
            {
                "name": "probabilities",
                "shape": list(proba.shape),
                "datatype": "FP64",
                "data": np.ascontiguousarray(proba).reshape(-1),
                "parameters": {"classes": model.classes},
            }
        )
    return {"model_name": model.name, "model_version": model.version, "id": rid, "outputs": outputs}


def encode_v1(pred: np.ndarray) -> dict[str, Any]:
    return {"predictions": _data(pred)}
