"""Compiling ``spec.features`` into the preprocessing half of the saved sklearn Pipeline.

Columns are sorted into three groups, decided once from the training frame:

* dropped — ``features.drop`` (and the target), never seen by the model;
* one-hot — ``features.oneHot``: most-frequent imputation (when imputation is on), then
  ``OneHotEncoder(handle_unknown="ignore")`` so a category first seen at serving time encodes
  as all zeros instead of failing the request;
* numeric — every other numeric or boolean column: imputation with the chosen strategy, then
  the chosen scaler.

A text column in neither list is an error rather than a silent drop or a guessed encoding.
Output is dense so every allowlisted estimator (GaussianNB, HistGradientBoosting…) accepts it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pandas.api import types as ptypes

from modelwerk.api.v1alpha1.training_job import Features
from modelwerk.runtime.trainer.errors import TrainingFailure


def feature_columns(frame: pd.DataFrame, target: str, features: Features) -> list[str]:
    """The model's input columns, in the data's order."""
    if target not in frame.columns:
        raise TrainingFailure("DatasetInvalid", f"target column {target!r} is not in the data")
    for field, names in (("drop", features.drop), ("oneHot", features.one_hot)):
        unknown = [n for n in names if n not in frame.columns]
        if unknown:
            raise TrainingFailure(
                "InvalidSpec", f"features.{field} names unknown column(s): {', '.join(unknown)}"
            )
    if target in features.one_hot:
        raise TrainingFailure("InvalidSpec", f"features.oneHot must not list the target {target!r}")
    both = sorted(set(features.drop) & set(features.one_hot))
    if both:
        raise TrainingFailure(
            "InvalidSpec", f"column(s) both dropped and one-hot encoded: {', '.join(both)}"
        )
    columns = [c for c in frame.columns if c != target and c not in set(features.drop)]
    if not columns:
        raise TrainingFailure("InvalidSpec", "no feature columns are left after features.drop")
    text = [c for c in columns if c not in set(features.one_hot) and not _numeric(frame[c])]
    if text:
        raise TrainingFailure(
            "InvalidSpec",
            f"column(s) {', '.join(text)} are not numeric; list them in features.oneHot "
            "or features.drop",
        )
    return columns


def preprocessor(frame: pd.DataFrame, columns: list[str], features: Features) -> Any:
    """A ColumnTransformer over ``columns`` implementing ``features``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    one_hot = [c for c in columns if c in set(features.one_hot)]
    numeric = [c for c in columns if c not in set(one_hot)]
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps = _numeric_steps(features)
        parts.append(("numeric", Pipeline(steps) if steps else "passthrough", numeric))
    if one_hot:
        steps = []
        if features.imputation is not None:
            from sklearn.impute import SimpleImputer

            steps.append(("impute", SimpleImputer(strategy="most_frequent")))
        steps.append(("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)))
        parts.append(("onehot", Pipeline(steps), one_hot))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def _numeric_steps(features: Features) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    if features.imputation is not None:
        from sklearn.impute import SimpleImputer

        imputation = features.imputation
        kwargs: dict[str, Any] = {"strategy": imputation.strategy}
        if imputation.strategy == "constant":
            kwargs["fill_value"] = 0.0 if imputation.fill_value is None else imputation.fill_value
        steps.append(("impute", SimpleImputer(**kwargs)))
    if features.scaling != "none":
        from sklearn import preprocessing

        scaler = {
            "standard": preprocessing.StandardScaler,
            "minmax": preprocessing.MinMaxScaler,
            "robust": preprocessing.RobustScaler,
        }[features.scaling]()
        steps.append(("scale", scaler))
    return steps


def _numeric(series: pd.Series) -> bool:
    return bool(ptypes.is_numeric_dtype(series.dtype) or ptypes.is_bool_dtype(series.dtype))
