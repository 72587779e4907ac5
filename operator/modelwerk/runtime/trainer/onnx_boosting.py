"""XGBoost and LightGBM final estimators in the ONNX compilation of a pipeline.

skl2onnx converts the pipeline (feature steps included) and calls, for the final estimator,
the converter onnxmltools ships for that library; this module tells skl2onnx about them. The
result goes through the same precision ladder and verification as every other estimator
(:mod:`modelwerk.runtime.trainer.compile`).

Q: Why ML opset 3 for these, when scikit-learn's estimators compile with 5?
A: onnxmltools emits ``TreeEnsembleClassifier``/``TreeEnsembleRegressor`` of ``ai.onnx.ml`` 3
   and refuses a newer target. As converted they hold float32 thresholds and return float32
   (the float64 attempt fails to load: ONNX Runtime refuses the double output skl2onnx declares
   for them), so ``mixed`` (feature steps in float64, a cast to float32 in front of the
   estimator) is the best these models get.

Q: Is the float32 cast faithful?
A: For XGBoost, exactly where XGBoost is: it casts every input to float32 itself before
   walking its trees. LightGBM compares float64 features with float64 thresholds; the converter
   rounds each threshold to float32, so a row whose value lies between a threshold and its
   float32 rounding can take the other branch. Verification checks every row of the snapshot
   (labels exact, probabilities within 1e-5; regression within 1e-5 + 1e-5·|value|); measured
   on iris and diabetes with the default 100 trees, the largest differences were ~1e-7 in
   probability and ~1e-6 relative in regression. Larger regressors can miss: at 500 trees on
   diabetes, XGBoost's by 4.3e-4 on 2 of 442 rows (float32 sums in another order) and
   LightGBM's by 0.37 on one row (a threshold rounding sent it down the other branch); they are
   then served with joblib. What verification cannot prove is the rows it has not seen, as for
   every float32 estimator.

Q: What does a pod without onnxmltools do?
A: Importing it raises ``ImportError``, which compilation records as ``ConverterUnavailable``
   and the joblib model is served, as for any pipeline that does not compile.
"""

from __future__ import annotations

import functools
from typing import Any

FAMILIES = ("xgboost.", "lightgbm.")
"""Module prefixes of the estimators handled here."""
LABELLED_MODULE = "modelwerk.runtime.trainer.xgb_labels"
"""The module of the XGBoost classifier on any labels (``estimator.SUBSTITUTES``)."""
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
CLASSIFIER_OPTIONS: dict[str, Any] = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
"""The options skl2onnx may pass to these classifiers' converters (the compilation passes
``zipmap: False`` to get probabilities as one [n, classes] tensor)."""


def handles(estimator: Any) -> bool:
    module = type(estimator).__module__
    return module.startswith(FAMILIES) or module == LABELLED_MODULE


@functools.cache
def register_converters() -> None:
    """Make skl2onnx convert these estimators with onnxmltools' converters (once per process).

    The shape calculators are skl2onnx's linear ones: they give the label and [n, classes]
    probability outputs (or the [n, 1] value) that the zipmap option and the pipeline
    conversion around the estimator expect."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from xgboost import XGBClassifier, XGBRegressor

    from modelwerk.runtime.trainer.xgb_labels import LabelledXGBClassifier

    classifier, regressor = (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    for cls, alias, shapes, convert in (
        (XGBClassifier, "XGBoostXGBClassifier", classifier, convert_xgboost),
        # reads classes_, so text labels go into the graph (classlabels_strings)
        (LabelledXGBClassifier, "ModelwerkLabelledXGBClassifier", classifier, convert_xgboost),
        (XGBRegressor, "XGBoostXGBRegressor", regressor, convert_xgboost),
        (LGBMClassifier, "LightGbmLGBMClassifier", classifier, convert_lightgbm),
        (LGBMRegressor, "LightGbmLGBMRegressor", regressor, convert_lightgbm),
    ):
        options = CLASSIFIER_OPTIONS if shapes is classifier else None
        update_registered_converter(cls, alias, shapes, convert, options=options)


def libraries() -> dict[str, str]:
    import onnxmltools
    import skl2onnx

    return {"skl2onnx": str(skl2onnx.__version__), "onnxmltools": str(onnxmltools.__version__)}


def version() -> str:
    """Both converters, as the model card's ``converter`` reads: skl2onnx for the pipeline,
    onnxmltools for the estimator."""
    found = libraries()
    return f"{found['skl2onnx']} + onnxmltools {found['onnxmltools']}"
