"""The champion-challenger gate: a new model must beat a reference on the same holdout.

The champion is the version a Deployment serves or a named ModelVersion. The training pod
loads its artifact (sha256-verified, with the restricted loader of bring-your-own models),
scores it on the challenger's exact holdout rows and reports both figures; the operator
rejects a challenger that does not beat the champion by the margin.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from modelwerk.api.base import ApiModel, ObjectName, with_cel

HIGHER_IS_BETTER = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "r2"})
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
ChampionMetric = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "r2", "rmse", "mae"]


class ChampionMargin(ApiModel):
    """How much better the challenger must be."""

    metric: ChampionMetric | None = None
    """The holdout metric compared. Defaults to accuracy (classification) or rmse
    (regression)."""
    margin: float = Field(default=0.0, ge=0, le=1000)
    """The challenger must beat the champion by more than this: absolute points of the metric
    (0.01 = one accuracy point), or with relative: true a fraction of the champion's figure
    (0.02 = 2 % better). Defaults to 0: strictly better, a tie is rejected."""
    relative: bool = False
    """Read margin as a fraction of the champion's figure. Defaults to false."""


class Champion(ChampionMargin):
    """The reference a TrainingJob's model must beat before it is registered."""

    deployment: ObjectName | None = None
    """The version this Deployment serves when the run starts (its status.stableVersion). A
    Deployment serving nothing yet means there is no champion: the gate passes and says so."""
    model_version: ObjectName | None = None
    """A named ModelVersion."""

    model_config = with_cel(
        {
            "rule": "has(self.deployment) != has(self.modelVersion)",
            "message": "set exactly one of deployment and modelVersion",
        }
    )

    @model_validator(mode="after")
    def _one_of(self) -> Champion:
        if (self.deployment is None) == (self.model_version is None):
            raise ValueError("set exactly one of deployment and modelVersion")
        return self


class ChampionResult(ApiModel):
    """Champion and challenger scored on the same holdout rows."""

    version: str | None = None
    """The champion ModelVersion (none: the Deployment served nothing)."""
    sha256: str | None = None
    """sha256 of the champion's artifact as verified before loading."""
    metric: str
    """The metric compared."""
    champion: float | None = None
    """The champion's figure on the challenger's holdout."""
    challenger: float | None = None
    """The challenger's figure on the same rows."""
    margin: float = 0.0
    """The margin asked for."""
    relative: bool = False
    """Whether the margin is a fraction of the champion's figure."""
    holdout_rows: int | None = None
    """Rows both were scored on."""
    passed: bool
    """The challenger beat the champion by more than the margin (or there was none)."""
    message: str = Field(default="", max_length=1024)
    """The comparison in words."""


def default_metric(task: Literal["classification", "regression"]) -> str:
    return "accuracy" if task == "classification" else "rmse"


def beats(metric: str, challenger: float, champion: float, margin: float, relative: bool) -> bool:
    """Whether ``challenger`` is better than ``champion`` by more than the margin.

    >>> beats("accuracy", 0.95, 0.93, 0.01, False)
    True
    >>> beats("accuracy", 0.93, 0.93, 0.0, False)
    False
    >>> beats("rmse", 9.0, 10.0, 0.05, True)
    True
    >>> beats("rmse", 9.6, 10.0, 0.05, True)
    False
    """
    gain = challenger - champion if metric not in LOWER_IS_BETTER else champion - challenger
    needed = margin * abs(champion) if relative else margin
    return gain > needed
