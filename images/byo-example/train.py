"""A trainer image for modelwerk's bring-your-own-trainer contract (manifests/samples/byo).

It trains what the estimator allowlist cannot express: a stacking ensemble (a random forest and a logistic regression) over engineered
features (splines of every column, the principal components of the quantile-normalised
columns and the pairwise products of the five most informative ones), with a logistic
regression on top. Every step is a scikit-learn class, so the model loads in modelwerk's
runtime image; modelwerk then grades it on a holdout this code never sees.

The contract (environment): MODELWERK_TRAIN_PATH (parquet: features + target),
MODELWERK_TARGET, MODELWERK_TASK, MODELWERK_SEED, MODELWERK_OUTPUT_DIR (write model.joblib).
"""

from __future__ import annotations

import os
import sys
import time

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier, StackingClassifier
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import (
    PolynomialFeatures,
    QuantileTransformer,
    SplineTransformer,
    StandardScaler,
)


def build(seed: int, columns: list[str]) -> Pipeline:
    engineered = FeatureUnion(
        [
            ("splines", SplineTransformer(n_knots=4, degree=3)),
            (
                "components",
                Pipeline(
                    [
                        ("quantiles", QuantileTransformer(n_quantiles=50, random_state=seed)),
                        ("pca", PCA(n_components=min(5, len(columns)), random_state=seed)),
                    ]
                ),
            ),
            (
                "interactions",
                Pipeline(
                    [
                        ("top", SelectKBest(f_classif, k=min(5, len(columns)))),
                        (
                            "products",
                            PolynomialFeatures(2, interaction_only=True, include_bias=False),
                        ),
                    ]
                ),
            ),
        ]
    )
    features = ColumnTransformer([("all", engineered, columns)])
    stack = StackingClassifier(
        estimators=[
            ("forest", RandomForestClassifier(n_estimators=60, max_depth=6, random_state=seed)),
            (
                "linear",
                Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(max_iter=2000))]),
            ),
        ],
        final_estimator=LogisticRegression(max_iter=2000),
        cv=3,
    )
    return Pipeline([("features", features), ("model", stack)])


def main() -> int:
    started = time.perf_counter()
    env = os.environ
    if env.get("MODELWERK_TASK") != "classification":
        print(f"this trainer classifies; task is {env.get('MODELWERK_TASK')}", file=sys.stderr)
        return 2
    frame = pd.read_parquet(env["MODELWERK_TRAIN_PATH"])
    target = env["MODELWERK_TARGET"]
    columns = [c for c in frame.columns if c != target]
    model = build(int(env.get("MODELWERK_SEED", "0")), columns)
    model.fit(frame[columns], frame[target])
    out = os.path.join(env["MODELWERK_OUTPUT_DIR"], "model.joblib")
    joblib.dump(model, out)
    print(
        f"trained a stacking ensemble on {len(frame)} rows x {len(columns)} columns "
        f"in {time.perf_counter() - started:.1f} s -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
