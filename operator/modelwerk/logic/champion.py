"""The champion-challenger verdict on a finished run, re-checked from the pod's figures.

The training pod scores both models on the same holdout and says whether the challenger won;
as with gates, the operator decides again from the figures (with the spec it holds), so a
pod's verdict alone never registers a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelwerk.api.v1alpha1.champion import ChampionResult, beats, default_metric
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.builders.champion import with_champion as _champion_env

if TYPE_CHECKING:
    # only a type here: training_result -> training_launch -> this module at import time
    from modelwerk.logic.training_result import TrainingResult

CHAMPION_BEATEN = "ChampionBeaten"


@dataclass(frozen=True)
class ChampionTarget:
    """The ModelVersion a run's model must beat, as resolved when the run starts."""

    version: str
    uri: str
    sha256: str


def with_champion(body: dict[str, Any], champion: ChampionTarget | None) -> dict[str, Any]:
    """A run's final Job told where the champion's artifact is (unchanged without one)."""
    if champion is None:
        return body
    return _champion_env(body, champion.version, champion.uri, champion.sha256)


def judge(tj: TrainingJob, result: TrainingResult) -> tuple[ChampionResult | None, str | None]:
    """The comparison to record and, when the challenger lost, why (for the Rejected
    message)."""
    gate = tj.spec.champion
    if gate is None:
        return None, None
    found = result.champion
    metric = gate.metric or default_metric(tj.spec.task)
    if found is None:
        return None, (
            "the champion was not scored (a training image that predates the champion gate)"
        )
    if found.version is None:
        return found.model_copy(update={"passed": True}), None
    mine, theirs = found.challenger, found.champion
    won = (
        found.metric == metric
        and mine is not None
        and theirs is not None
        and beats(metric, mine, theirs, gate.margin, gate.relative)
    )
    verdict = found.model_copy(update={"passed": won})
    if won:
        return verdict, None
    margin = f"{gate.margin:g}{' (relative)' if gate.relative else ''}"
    return verdict, (
        f"challenger {metric} {_fmt(mine)} does not beat champion {found.version} "
        f"{_fmt(theirs)} by more than {margin} on the same {found.holdout_rows} holdout rows"
    )


def _fmt(value: float | None) -> str:
    return "unmeasured" if value is None else f"{value:.4g}"
