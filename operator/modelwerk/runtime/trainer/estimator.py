"""Constructing the estimator a TrainingJob names, and checking its params and search space.

Only names in :data:`~modelwerk.api.v1alpha1.estimators.ESTIMATORS` are importable, from the
module recorded there: a TrainingJob must never be a way to import arbitrary code. Params are
checked against the estimator's ``get_params()`` keys and validated eagerly, so a typo or an
out-of-range value fails in a second with ``invalid params: …`` instead of minutes into a
search.
"""

from __future__ import annotations

import importlib
from typing import Any

from modelwerk.api.v1alpha1.estimators import ESTIMATORS
from modelwerk.api.v1alpha1.search import SearchRange
from modelwerk.runtime.trainer.errors import TrainingFailure

SEED_PARAM = "random_state"
DEFAULTS: dict[str, dict[str, Any]] = {
    # One thread unless the spec says otherwise: the same spec trains the same model on any
    # node, whatever its core count (LightGBM's parallel histogram sums are order-dependent),
    # and search pods on a shared node do not oversubscribe it. LightGBM also stays quiet.
    "XGBClassifier": {"n_jobs": 1},
    "XGBRegressor": {"n_jobs": 1},
    "LGBMClassifier": {"n_jobs": 1, "verbose": -1},
    "LGBMRegressor": {"n_jobs": 1, "verbose": -1},
}
SUBSTITUTES: dict[str, tuple[str, str]] = {
    # XGBoost's classifier learns only the labels 0…k-1; this subclass learns any labels and
    # answers with them (see the module).
    "XGBClassifier": ("modelwerk.runtime.trainer.xgb_labels", "LabelledXGBClassifier"),
}
"""Allowlisted names trained as a class of the runtime's own (module, class)."""


def estimator_class(name: str) -> type[Any]:
    """The class of an allowlisted estimator; anything else is refused."""
    if name not in ESTIMATORS:
        raise TrainingFailure(
            "EstimatorNotAllowed",
            f"estimator {name!r} is not allowed; choose one of {', '.join(sorted(ESTIMATORS))}",
        )
    module, attribute = SUBSTITUTES.get(name) or (ESTIMATORS[name][0], name)
    cls: type[Any] = getattr(importlib.import_module(module), attribute)
    return cls


def param_names(cls: type[Any]) -> set[str]:
    return set(cls().get_params(deep=False))


def effective_params(cls: type[Any], params: dict[str, Any], seed: int) -> dict[str, Any]:
    """``params`` checked for unknown names, plus ``random_state=seed`` where it applies."""
    valid = param_names(cls)
    unknown = sorted(set(params) - valid)
    if unknown:
        raise TrainingFailure(
            "InvalidParams",
            f"invalid params: {cls.__name__} has no parameter {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(valid))}",
        )
    out = dict(params)
    if SEED_PARAM in valid and SEED_PARAM not in out:
        out[SEED_PARAM] = seed  # reproducible by default; an explicit value wins
    return out


def build(name: str, params: dict[str, Any], seed: int) -> tuple[Any, dict[str, Any]]:
    """(unfitted estimator, the params it was built with)."""
    cls = estimator_class(name)
    # Defaults after the check: LightGBM takes ``verbose`` through **kwargs, not get_params().
    used = {**DEFAULTS.get(name, {}), **effective_params(cls, params, seed)}
    return construct(cls, used, where="estimator.params"), used


def construct(cls: type[Any], params: dict[str, Any], where: str) -> Any:
    try:
        estimator = cls(**params)
        # scikit-learn validates params at fit time; _validate_params (public behaviour since
        # 1.2, private name) does the same check now, so bad values fail before any fitting.
        # XGBoost's and LightGBM's classes inherit the method but declare no constraints: they
        # check their params when fitting.
        validate = getattr(estimator, "_validate_params", None)
        if callable(validate) and hasattr(estimator, "_parameter_constraints"):
            validate()
    except (TypeError, ValueError) as error:
        raise TrainingFailure("InvalidParams", f"invalid params in {where}: {error}") from error
    return estimator


def check_space(name: str, params: dict[str, Any], space: dict[str, Any]) -> None:
    """Every search-space name is a parameter and every candidate value is acceptable (a
    range's ends stand for the range)."""
    cls = estimator_class(name)
    valid = param_names(cls)
    unknown = sorted(set(space) - valid)
    if unknown:
        raise TrainingFailure(
            "InvalidParams",
            f"invalid params: search.space names {', '.join(unknown)}, which "
            f"{name} does not have; valid: {', '.join(sorted(valid))}",
        )
    for key, entry in space.items():
        if isinstance(entry, SearchRange):
            cast = int if entry.type == "int" else float
            for end in ("low", "high"):
                value = cast(getattr(entry, end))
                construct(cls, {**params, key: value}, where=f"search.space.{key}.{end}")
            continue
        if not isinstance(entry, list) or not entry:
            raise TrainingFailure("InvalidParams", f"invalid params: search.space.{key} is empty")
        for index, value in enumerate(entry):
            construct(cls, {**params, key: value}, where=f"search.space.{key}[{index}]")
