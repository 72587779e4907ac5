"""XGBoost's classifier on any class labels: what a TrainingJob naming ``XGBClassifier`` trains.

XGBoost's own ``XGBClassifier`` learns only the labels 0…k-1 and answers with them; a Dataset
whose target holds ``"setosa"``, ``"yes"``/``"no"`` or the years 2019…2024 would fail to fit,
and a model trained on re-coded labels would answer with codes a client cannot read.
:class:`LabelledXGBClassifier` codes the labels in ``fit`` (their sorted distinct values, as
scikit-learn's classifiers order ``classes_``), fits XGBoost on the codes, and answers
``predict`` with the original labels; ``classes_`` is those labels, in the column order of
``predict_proba``. Labels that are already 0…k-1 are coded onto themselves.

Q: Why a subclass and not a wrapper estimator around XGBoost's?
A: Everything that reads XGBoost stays as it is: its parameters (``get_params`` walks the
   subclass to XGBoost's signature), cloning in searches, its booster and pickling, and
   onnxmltools' converter, which reads ``classes_`` and writes text labels into the graph
   (``classlabels_strings``), so the compiled model answers the same labels
   (:mod:`~modelwerk.runtime.trainer.onnx_boosting` registers it).

Q: Can a pickle name this class?
A: The model server unpickles its own registered artifacts; the restricted loader of trainer
   containers' models (:mod:`modelwerk.runtime.byo.safe_load`) admits this one class by its
   full name, because its state is only XGBoost's plus the label array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xgboost import XGBClassifier

LABELS = "labels_"
"""The attribute holding the original labels (absent while fitting)."""


class LabelledXGBClassifier(XGBClassifier):
    """``XGBClassifier`` that learns and answers the original class labels."""

    def fit(self, X: Any, y: Any, **kwargs: Any) -> LabelledXGBClassifier:
        labels, codes = np.unique(np.asarray(y), return_inverse=True)
        if kwargs.get("eval_set"):
            # its labels would need the same coding; nothing in modelwerk passes one
            raise TypeError("LabelledXGBClassifier.fit does not take eval_set")
        # XGBoost checks the labels it is given against classes_ while fitting: the codes then
        self.__dict__.pop(LABELS, None)
        super().fit(X, codes, **kwargs)
        setattr(self, LABELS, labels)
        return self

    @property
    def classes_(self) -> np.ndarray:
        labels = self.__dict__.get(LABELS)
        return np.arange(self.n_classes_) if labels is None else np.asarray(labels)

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        predicted = np.asarray(super().predict(X, **kwargs))
        labels = self.__dict__.get(LABELS)
        if labels is None or kwargs.get("output_margin"):
            return predicted  # margins are scores, not class codes
        return np.asarray(labels).take(predicted.astype(np.intp))
