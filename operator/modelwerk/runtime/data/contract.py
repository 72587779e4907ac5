"""The data contract: checking a frame against a Dataset's ``schema`` and inferring its schema.

Every rule reports *how many* values broke it and one observed example, so a status line such
as ``sepal_length: min (3 values, smallest -1.0)`` tells the user what to fix. The rules and
their names (the ``rule`` of a :class:`Violation`):

=====================  =========================================================================
missingColumn          a declared column is absent
extraColumn            a column is neither declared nor the target, with allowExtraColumns false
type                   values that are not of the declared type (see below)
min / max              numeric values below min / above max
allowedValues          values outside allowedValues (compared as text)
nullable               missing values in a column that is not nullable
maxMissingFraction     a nullable column missing more than the allowed fraction
minRows                fewer rows than minRows (an empty frame is always refused)
target                 the target column is absent or has missing labels
=====================  =========================================================================

Types are checked on values, not only on the dtype, because csv carries no types: an integer
column with a gap reads as float, and a numeric column with one bad cell reads as text. So
``integer`` accepts integral floats, ``float`` accepts any number or numeric text, ``boolean``
accepts true/false/yes/no/1/0 spellings, and ``string`` and ``category`` accept anything.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from modelwerk.api.v1alpha1.dataset import (
    ColumnContract,
    ColumnType,
    DataContract,
    InferredColumn,
    Violation,
)

_BOOLEAN_TEXT = frozenset({"true", "false", "t", "f", "yes", "no", "y", "n", "1", "0"})
_OBSERVED_LIMIT = 200


def infer_type(series: pd.Series) -> ColumnType:
    """The logical type of a column, from its dtype."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if ptypes.is_bool_dtype(dtype):
        return "boolean"
    if ptypes.is_integer_dtype(dtype):
        return "integer"
    if ptypes.is_float_dtype(dtype):
        return "float"
    return "string"


def infer_schema(frame: pd.DataFrame) -> list[InferredColumn]:
    """One entry per column, in the frame's order."""
    return [
        InferredColumn(
            name=name, type=infer_type(frame[name]), missing=int(frame[name].isna().sum())
        )
        for name in frame.columns
    ]


def check(
    frame: pd.DataFrame, contract: DataContract | None, target: str | None
) -> list[Violation]:
    """Every broken rule, dataset-wide rules first, then per declared column in contract order."""
    rows = len(frame)
    found: list[Violation] = []
    min_rows = contract.min_rows if contract and contract.min_rows else 1
    if rows < min_rows:
        found.append(
            Violation(
                rule="minRows",
                observed=str(rows),
                count=rows,
                message=f"the data has {rows} rows; at least {min_rows} required",
            )
        )
    if target is not None:
        found.extend(_check_target(frame, target))
    if contract is None:
        return found
    declared = {c.name for c in contract.columns}
    for column in contract.columns:
        if column.name not in frame.columns:
            found.append(
                Violation(
                    column=column.name,
                    rule="missingColumn",
                    message=f"declared column {column.name!r} is not in the data",
                )
            )
    if not contract.allow_extra_columns:
        for name in frame.columns:
            if name not in declared and name != target:
                found.append(
                    Violation(
                        column=name,
                        rule="extraColumn",
                        count=rows,
                        message=f"column {name!r} is not declared and allowExtraColumns is false",
                    )
                )
    for column in contract.columns:
        if column.name in frame.columns:
            found.extend(check_column(frame[column.name], column))
    return found


def _check_target(frame: pd.DataFrame, target: str) -> list[Violation]:
    if target not in frame.columns:
        return [
            Violation(
                column=target,
                rule="target",
                message=f"target column {target!r} is not in the data",
            )
        ]
    missing = int(frame[target].isna().sum())
    if missing:
        return [
            Violation(
                column=target,
                rule="target",
                observed="missing",
                count=missing,
                message=f"target column {target!r} has {missing} missing labels",
            )
        ]
    return []


def check_column(series: pd.Series, rule: ColumnContract) -> list[Violation]:
    """The violations of one column against its declared rules."""
    name = rule.name
    found: list[Violation] = []
    missing = series.isna()
    present = series[~missing]
    n_missing = int(missing.sum())

    bad_type = _type_offenders(present, rule.type)
    if len(bad_type):
        found.append(
            Violation(
                column=name,
                rule="type",
                observed=_clip(f"{infer_type(series)}: {_examples(bad_type)}"),
                count=len(bad_type),
                message=f"{len(bad_type)} values of {name!r} are not {rule.type}",
            )
        )

    if rule.type in ("integer", "float") and (rule.min is not None or rule.max is not None):
        numbers = _as_numbers(present).dropna()
        if rule.min is not None:
            low = numbers[numbers < rule.min]
            if len(low):
                found.append(
                    Violation(
                        column=name,
                        rule="min",
                        observed=_number(low.min()),
                        count=len(low),
                        message=f"{len(low)} values of {name!r} are below {_number(rule.min)} "
                        f"(smallest {_number(low.min())})",
                    )
                )
        if rule.max is not None:
            high = numbers[numbers > rule.max]
            if len(high):
                found.append(
                    Violation(
                        column=name,
                        rule="max",
                        observed=_number(high.max()),
                        count=len(high),
                        message=f"{len(high)} values of {name!r} are above {_number(rule.max)} "
                        f"(largest {_number(high.max())})",
                    )
                )

    if rule.allowed_values is not None:
        allowed = {_normalise_text(v) for v in rule.allowed_values}
        texts = present.map(as_text)
        outside = texts[~texts.isin(allowed)]
        if len(outside):
            found.append(
                Violation(
                    column=name,
                    rule="allowedValues",
                    observed=_clip(_examples(outside)),
                    count=len(outside),
                    message=f"{len(outside)} values of {name!r} are not in allowedValues",
                )
            )

    if n_missing and not rule.nullable:
        found.append(
            Violation(
                column=name,
                rule="nullable",
                observed="missing",
                count=n_missing,
                message=f"{name!r} has {n_missing} missing values but is not nullable",
            )
        )
    elif rule.nullable and rule.max_missing_fraction is not None and len(series):
        fraction = n_missing / len(series)
        if fraction > rule.max_missing_fraction:
            found.append(
                Violation(
                    column=name,
                    rule="maxMissingFraction",
                    observed=f"{fraction:.4g}",
                    count=n_missing,
                    message=f"{name!r} is {fraction:.1%} missing; at most "
                    f"{rule.max_missing_fraction:.1%} allowed",
                )
            )
    return found


def _type_offenders(present: pd.Series, expected: ColumnType) -> pd.Series:
    """The non-missing values that are not of the ``expected`` logical type."""
    dtype = present.dtype
    if expected in ("string", "category"):
        return present.iloc[:0]
    if expected == "boolean":
        if ptypes.is_bool_dtype(dtype):
            return present.iloc[:0]
        if ptypes.is_numeric_dtype(dtype):
            return present[~present.isin([0, 1])]
        texts = present.map(lambda v: str(v).strip().lower())
        return present[~texts.isin(_BOOLEAN_TEXT)]
    # integer or float from here on
    if ptypes.is_bool_dtype(dtype):
        return present
    if ptypes.is_integer_dtype(dtype):
        return present.iloc[:0]
    numbers = _as_numbers(present)
    bad = numbers.isna()
    if expected == "integer":
        values = numbers.to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            fractional = ~np.isfinite(values) | (np.floor(values) != values)
        bad = bad | pd.Series(fractional, index=present.index)
    return present[bad]


def _as_numbers(values: pd.Series) -> pd.Series:
    if ptypes.is_numeric_dtype(values.dtype) and not ptypes.is_bool_dtype(values.dtype):
        return values.astype(float)
    if ptypes.is_bool_dtype(values.dtype):
        return pd.Series(np.nan, index=values.index, dtype=float)
    return pd.to_numeric(values.astype(object), errors="coerce").astype(float)


def as_text(value: object) -> str:
    """A value as the text allowedValues and categorical profiles compare it with.

    Integral floats print without ``.0`` (a csv integer column with a gap reads as float) and
    booleans print lower-case, as YAML writes them.
    """
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _normalise_text(value: str) -> str:
    return value.lower() if value.lower() in ("true", "false") else value


def _examples(values: Iterable[object], limit: int = 3) -> str:
    seen: list[str] = []
    for value in values:
        text = as_text(value)
        if text not in seen:
            seen.append(text)
        if len(seen) == limit:
            break
    return ", ".join(repr(v) for v in seen)


def _number(value: float) -> str:
    return f"{float(value):.6g}"


def _clip(text: str) -> str:
    return text if len(text) <= _OBSERVED_LIMIT else text[: _OBSERVED_LIMIT - 1] + "…"
