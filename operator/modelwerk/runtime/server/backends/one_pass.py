"""Labels and probabilities from one pass over a boosted model's trees.

Capture (and any request asking for probabilities) needs both ``predict`` and
``predict_proba``. scikit-learn's gradient-boosting classifiers compute each of them from the
same raw score (``decision_function``), so calling both walks every tree twice. Here the raw
score is computed once and both answers are derived from it exactly as the estimator's own
methods derive them:

- labels: binary models threshold the raw score (``GradientBoostingClassifier``: ``>= 0``,
  ``HistGradientBoostingClassifier``: ``> 0``); a score of exactly 0 gives probabilities
  0.5/0.5, whose argmax would be the first class, so labels are never taken from the
  probabilities. Multiclass models take the argmax of the raw scores.
- probabilities: the loss's inverse link, logistic (``expit``) for log-loss,
  ``expit(2 * raw)`` for the exponential loss, softmax for multiclass log-loss; with the
  complement ``1 - p`` for the first class of a binary model, as the loss computes it.

Any other estimator, loss or configuration keeps two passes (:func:`rule_for` answers None):
tests compare these answers with the estimator's own ``predict`` and ``predict_proba`` for
equality, element for element, including ties.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Both = Callable[[Any], tuple[np.ndarray, np.ndarray]]
"""The model input -> (labels, probabilities)."""

_GB = "sklearn.ensemble._gb.GradientBoostingClassifier"
_HGB = "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier"


def rule_for(estimator: Any) -> Both | None:
    """How to get both answers of ``estimator`` (a classifier or a Pipeline ending in one)
    from one ``decision_function``, or None when that is not known to be exact."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    kind = type(final)
    name = f"{kind.__module__}.{kind.__qualname__}"
    classes = getattr(final, "classes_", None)
    if classes is None or np.asarray(classes).ndim != 1 or name not in (_GB, _HGB):
        return None
    classes = np.asarray(classes)
    loss = getattr(final, "loss", None)
    binary = len(classes) == 2
    if loss == "log_loss":
        scale = 1.0
    elif loss == "exponential" and name == _GB and binary:
        scale = 2.0
    else:
        return None
    strict = name == _HGB  # HistGradientBoosting: raw > 0; GradientBoosting: raw >= 0

    def both(data: Any) -> tuple[np.ndarray, np.ndarray]:
        raw = np.asarray(estimator.decision_function(data))
        if raw.ndim == 1:
            return classes[_binary_labels(raw, strict)], _binary_proba(raw, scale)
        return classes[np.argmax(raw, axis=1)], _softmax(raw)

    return both


def _binary_labels(raw: np.ndarray, strict: bool) -> np.ndarray:
    above = raw > 0 if strict else raw >= 0
    labels: np.ndarray = above.astype(int)
    return labels


def _binary_proba(raw: np.ndarray, scale: float) -> np.ndarray:
    from scipy.special import expit

    proba = np.empty((raw.shape[0], 2), dtype=raw.dtype)
    proba[:, 1] = expit(scale * raw if scale != 1.0 else raw)
    proba[:, 0] = 1 - proba[:, 1]
    return proba


def _softmax(raw: np.ndarray) -> np.ndarray:
    from sklearn.utils.extmath import softmax

    out: np.ndarray = softmax(raw, copy=True)
    return out
