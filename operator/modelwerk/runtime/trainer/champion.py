"""The champion scored in the training pod, on the challenger's exact holdout rows.

Inputs (set by the operator when spec.champion resolved to a ModelVersion):

================================  ============================================================
``MODELWERK_CHAMPION_VERSION``    the champion ModelVersion's name
``MODELWERK_CHAMPION_URI``        its ``model.joblib``
``MODELWERK_CHAMPION_SHA256``     the sha256 its ModelVersion records
================================  ============================================================

Q: Why load it with the restricted loader rather than ``joblib.load``?
A: The champion may be a model a trainer container wrote, or any file a ModelVersion names:
   unpickling it in the pod that grades the challenger must not run code. The bytes are
   hashed before anything is unpickled and compared with the hash the ModelVersion records.

Without these variables there is no champion (a Deployment serving nothing yet): the gate
passes and says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pandas as pd

from modelwerk.api.v1alpha1.champion import ChampionResult, beats, default_metric
from modelwerk.api.v1alpha1.training_job import TrainingJobSpec
from modelwerk.runtime.byo import safe_load
from modelwerk.runtime.trainer import evaluate
from modelwerk.runtime.trainer.errors import TrainingFailure

VERSION_ENV = "MODELWERK_CHAMPION_VERSION"
URI_ENV = "MODELWERK_CHAMPION_URI"
SHA256_ENV = "MODELWERK_CHAMPION_SHA256"


@dataclass(frozen=True)
class ChampionInput:
    version: str
    uri: str
    sha256: str

    @classmethod
    def from_env(cls) -> ChampionInput | None:
        version, uri, sha = (os.environ.get(v, "") for v in (VERSION_ENV, URI_ENV, SHA256_ENV))
        if not (version and uri and sha):
            return None
        return cls(version, uri, sha)


def compare(
    spec: TrainingJobSpec,
    champion: ChampionInput | None,
    challenger: dict[str, float],
    x_test: pd.DataFrame,
    y_test: pd.Series,
) -> ChampionResult | None:
    """Both models on the same holdout rows and the verdict; None without spec.champion."""
    gate = spec.champion
    if gate is None:
        return None
    metric = gate.metric or default_metric(spec.task)
    mine = challenger.get(metric)
    common = {"metric": metric, "margin": gate.margin, "relative": gate.relative}
    if champion is None:
        return ChampionResult(
            challenger=mine,
            passed=True,
            message="no champion: the Deployment served no version when the run started",
            **common,
        )
    try:
        model = safe_load.load_verified(champion.uri, champion.sha256)
    except (safe_load.UnsafeModel, OSError) as error:
        raise TrainingFailure(
            "ChampionUnloadable", f"the champion {champion.version} cannot be loaded: {error}"
        ) from error
    theirs = _score(model, metric, spec.task, _inputs(model, x_test, champion.version), y_test)
    passed = (
        mine is not None
        and theirs is not None
        and beats(metric, mine, theirs, gate.margin, gate.relative)
    )
    need = f"{gate.margin:g}{' (relative)' if gate.relative else ''}"
    return ChampionResult(
        version=champion.version,
        sha256=champion.sha256,
        champion=theirs,
        challenger=mine,
        holdout_rows=len(x_test),
        passed=passed,
        message=(
            f"challenger {metric} {_fmt(mine)} vs champion {champion.version} {_fmt(theirs)} "
            f"on the same {len(x_test)} holdout rows: "
            + (
                f"beats it by more than {need}"
                if passed
                else f"does not beat it by more than {need}"
            )
        ),
        **common,
    )


def _inputs(model: Any, x_test: pd.DataFrame, version: str) -> pd.DataFrame:
    """The holdout as the champion's pipeline expects it (the columns it was fitted on)."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return x_test
    missing = [str(n) for n in names if n not in x_test.columns]
    if missing:
        raise TrainingFailure(
            "ChampionIncompatible",
            f"the champion {version} needs columns the holdout lacks: {', '.join(missing[:10])}",
        )
    return x_test[[str(n) for n in names]]


def _score(model: Any, metric: str, task: str, x: pd.DataFrame, y: pd.Series) -> float | None:
    try:
        if task == "classification":
            scores, _ = evaluate.classification(model, x, y)
        else:
            scores = evaluate.regression(model, x, y)
    except (ValueError, TypeError, AttributeError) as error:
        raise TrainingFailure(
            "ChampionIncompatible", f"the champion cannot score the holdout: {error}"
        ) from error
    value = scores.get(metric)
    return None if value is None else float(value)


def _fmt(value: float | None) -> str:
    return "unmeasured" if value is None else f"{value:.4g}"
