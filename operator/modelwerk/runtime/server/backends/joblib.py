"""The original backend: the fitted scikit-learn pipeline, unpickled once its sha256 matched."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from modelwerk.runtime.artifacts import ModelCard
from modelwerk.runtime.server.backends import one_pass
from modelwerk.runtime.server.backends.verified import ModelLoadError, verified_copy

log = logging.getLogger(__name__)


class JoblibBackend:
    name = "joblib"

    def __init__(self, estimator: Any, card: ModelCard) -> None:
        self.estimator = estimator
        inputs = card.signature.inputs
        self._columns = [t.name for t in inputs]
        self._datatypes = [t.datatype for t in inputs]
        classification = card.task == "classification"
        found = getattr(estimator, "classes_", None)
        if classification and found is not None:
            self.classes: list[Any] | None = np.asarray(found).tolist()
        elif classification:
            self.classes = list(card.signature.classes or [])
        else:
            self.classes = None
        # Fitted on a DataFrame -> give it one (else sklearn warns about missing feature
        # names); fitted on an array -> give it the array (else it warns the other way round).
        names = getattr(estimator, "feature_names_in_", None)
        self._frame_columns: list[str] | None = None if names is None else list(names)
        if self._frame_columns is not None and set(self._frame_columns) != set(self._columns):
            raise ModelLoadError(
                f"the model was fitted on columns {self._frame_columns} but its signature lists "
                f"{self._columns}"
            )
        n_in = getattr(estimator, "n_features_in_", None)
        if n_in is not None and int(n_in) != len(self._columns):
            raise ModelLoadError(
                f"the model expects {n_in} features but its signature lists {len(self._columns)}"
            )
        self.has_proba = classification and hasattr(estimator, "predict_proba")
        self._predict_from_proba = self.has_proba and _argmax_of_proba(estimator)
        self._both = one_pass.rule_for(estimator) if self.has_proba else None

    def model_input(self, x: np.ndarray) -> Any:
        """The matrix (signature column order) as the estimator wants it."""
        if self._frame_columns is None:
            return x
        frame = pd.DataFrame(
            {
                c: _column(x[:, j], d)
                for j, (c, d) in enumerate(zip(self._columns, self._datatypes, strict=True))
            },
            copy=False,
        )
        return frame[self._frame_columns] if self._frame_columns != self._columns else frame

    def predict(self, x: np.ndarray, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        data = self.model_input(x)
        if proba and self._predict_from_proba:
            both = np.asarray(self.estimator.predict_proba(data), dtype=np.float64)
            return np.asarray(self.estimator.classes_).take(both.argmax(axis=1)), both
        if proba and self._both is not None:
            labels, computed = self._both(data)
            return labels, np.asarray(computed, dtype=np.float64)
        pred = np.asarray(self.estimator.predict(data))
        if pred.ndim > 1:  # some regressors return [n, 1]
            pred = pred.reshape(len(x), -1)[:, 0]
        probabilities = (
            np.asarray(self.estimator.predict_proba(data), dtype=np.float64) if proba else None
        )
        return pred, probabilities


_ARGMAX_OF_PROBA = frozenset(
    {
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
    }
)


def _argmax_of_proba(estimator: Any) -> bool:
    """Whether the estimator's ``predict`` is by definition the class of highest
    ``predict_proba`` (scikit-learn's trees and forests, single output): then one
    ``predict_proba`` gives both, and capturing probabilities costs no second pass over the
    trees. For other estimators ties may be broken differently, so both are called."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    kind = type(final)
    classes = getattr(final, "classes_", None)
    single = classes is not None and np.asarray(classes).ndim == 1
    return single and f"{kind.__module__}.{kind.__qualname__}" in _ARGMAX_OF_PROBA


def _column(values: np.ndarray, datatype: str) -> np.ndarray:
    if datatype == "BYTES":
        return values.astype(object)
    numbers = values.astype(np.float64)
    if datatype.startswith(("INT", "UINT")) and not np.isnan(numbers).any():
        return numbers.astype(np.int64)
    if datatype == "BOOL" and not np.isnan(numbers).any():
        return numbers.astype(bool)
    return numbers


def load_joblib(uri: str, sha256: str, card: ModelCard) -> JoblibBackend:
    """Hash the artifact's bytes and unpickle the very same bytes only when the hash matches."""
    import joblib

    with verified_copy(uri, sha256) as copy:
        try:
            estimator = joblib.load(copy)
        except Exception as exc:
            raise ModelLoadError(f"cannot unpickle {uri}: {type(exc).__name__}: {exc}") from exc
    return JoblibBackend(estimator, card)
