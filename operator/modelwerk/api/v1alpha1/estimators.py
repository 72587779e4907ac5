"""The estimators a TrainingJob may name (scikit-learn's, XGBoost's and LightGBM's scikit-learn
interfaces), and the task each one solves.

An allowlist instead of import paths: a TrainingJob must never be a way to import arbitrary
code into the trainer pod. Adding an estimator here adds it to the CRD enum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

ESTIMATORS: dict[str, tuple[str, Literal["classification", "regression"]]] = {
    "LogisticRegression": ("sklearn.linear_model", "classification"),
    "RidgeClassifier": ("sklearn.linear_model", "classification"),
    "SGDClassifier": ("sklearn.linear_model", "classification"),
    "DecisionTreeClassifier": ("sklearn.tree", "classification"),
    "RandomForestClassifier": ("sklearn.ensemble", "classification"),
    "ExtraTreesClassifier": ("sklearn.ensemble", "classification"),
    "GradientBoostingClassifier": ("sklearn.ensemble", "classification"),
    "HistGradientBoostingClassifier": ("sklearn.ensemble", "classification"),
    "KNeighborsClassifier": ("sklearn.neighbors", "classification"),
    "SVC": ("sklearn.svm", "classification"),
    "LinearSVC": ("sklearn.svm", "classification"),
    "GaussianNB": ("sklearn.naive_bayes", "classification"),
    "MLPClassifier": ("sklearn.neural_network", "classification"),
    "LinearRegression": ("sklearn.linear_model", "regression"),
    "Ridge": ("sklearn.linear_model", "regression"),
    "Lasso": ("sklearn.linear_model", "regression"),
    "ElasticNet": ("sklearn.linear_model", "regression"),
    "SGDRegressor": ("sklearn.linear_model", "regression"),
    "DecisionTreeRegressor": ("sklearn.tree", "regression"),
    "RandomForestRegressor": ("sklearn.ensemble", "regression"),
    "ExtraTreesRegressor": ("sklearn.ensemble", "regression"),
    "GradientBoostingRegressor": ("sklearn.ensemble", "regression"),
    "HistGradientBoostingRegressor": ("sklearn.ensemble", "regression"),
    "KNeighborsRegressor": ("sklearn.neighbors", "regression"),
    "SVR": ("sklearn.svm", "regression"),
    "MLPRegressor": ("sklearn.neural_network", "regression"),
    # Gradient-boosted trees through their scikit-learn interfaces (the runtime image has them).
    "XGBClassifier": ("xgboost", "classification"),
    "XGBRegressor": ("xgboost", "regression"),
    "LGBMClassifier": ("lightgbm", "classification"),
    "LGBMRegressor": ("lightgbm", "regression"),
}

if TYPE_CHECKING:
    EstimatorName = str
else:  # the CRD enum: generated from the allowlist so the two cannot drift
    EstimatorName = Literal[tuple(ESTIMATORS)]

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS


def task_of(estimator: str) -> Literal["classification", "regression"]:
    return ESTIMATORS[estimator][1]
