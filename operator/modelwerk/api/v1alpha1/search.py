"""A TrainingJob's hyperparameter search: its spec, and the plan both the operator and the pods
derive from it.

Q: Why does the plan live with the API types?
A: The operator decides how many Jobs and pods a search takes and the pods decide which
   candidates are theirs; both must compute the same thing from the same spec, and the API
   package is the only code both the operator's pure layers and the runtime may import. The
   plan needs no data: stage sizes depend on the spec alone.

The plan (:func:`search_plan`) is a list of stages, each one Indexed Job when the search runs
in parallel (one pod per index), or a step of the one training pod otherwise:

- grid, random: one stage over every candidate;
- halving: one stage (rung) per round of successive halving; a rung keeps the best
  ``⌈n/factor⌉`` candidates of the one before it and gives each ``factor`` times the samples;
- bayesian: rounds of ``max(parallelism, 10)`` trials; each pod of a round rebuilds the
  model of the search from every finished trial before it asks for its own.

Index ``i`` of a stage with ``n`` pods evaluates the stage's candidates ``i, i+n, i+2n, …``
(strided, so that a slow corner of the space is spread over the pods).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, JsonValue, field_validator, model_validator

from modelwerk.api.base import ApiModel

Metric = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "rmse", "mae", "r2"]
Strategy = Literal["grid", "random", "halving", "bayesian"]
StageKind = Literal["trials", "rung", "round"]

BAYESIAN_ROUND_TRIALS = 10
"""Trials per round of a parallel Bayesian search at least (Optuna TPE's own start-up count:
the first round is random, every later round is modelled on everything before it)."""
MAX_PARALLELISM = 64
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
"""Metrics where a smaller value is better (every other one: greater is better)."""


class SearchRange(ApiModel):
    """A range of values for Bayesian or random search, instead of a list."""

    low: float
    """Smallest value."""
    high: float
    """Largest value (included for integers)."""
    log: bool = False
    """Sample on a log scale (for example C or learning_rate); low must be > 0."""
    type: Literal["float", "int"] = "float"
    """float (a continuous range) or int (whole numbers from low to high). Defaults to float."""

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be smaller than high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, not {self.low:g}")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an int range needs whole-number bounds")
        return self


SpaceEntry = list[Any] | SearchRange
_FREE: dict[str, JsonValue] = {"x-kubernetes-preserve-unknown-fields": True}


class Search(ApiModel):
    """Hyperparameter search with cross-validation on the training part."""

    strategy: Strategy
    """grid (every combination), random (maxTrials samples), halving (successive halving of
    the grid) or bayesian (Optuna's TPE, maxTrials trials)."""
    space: dict[str, Any] = Field(min_length=1, max_length=32, json_schema_extra=_FREE)
    """Per estimator parameter, a list of candidate values (max_depth: [3, 5, null]) or, for
    random and bayesian, a range: {low: 0.001, high: 1, log: true} or
    {low: 2, high: 12, type: int}."""
    cv: int = Field(default=5, ge=2, le=20)
    """Number of cross-validation folds. Defaults to 5."""
    scoring: Metric | None = None
    """Metric to optimise; defaults to accuracy (classification) or rmse (regression)."""
    max_trials: int = Field(default=20, ge=1, le=1000)
    """Most candidates tried by random and bayesian search. Defaults to 20."""
    parallelism: int = Field(default=1, ge=1, le=MAX_PARALLELISM)
    """Pods evaluating candidates at the same time (one Indexed Job per stage); 1 searches
    inside the training pod. Defaults to 1."""
    factor: int = Field(default=3, ge=2, le=10)
    """Halving: the share of candidates kept per rung is 1/factor, and each rung gives its
    candidates factor times the samples. Defaults to 3."""
    pruning: bool = True
    """Bayesian: stop a trial after a fold when its running score is below the median of the
    trials before it at that fold (Optuna's MedianPruner). Defaults to true."""
    backoff_limit_per_index: int = Field(default=1, ge=0, le=10)
    """Parallel search: retries of a search pod that was killed or crashed (a pod that
    reports a spec, data or training error is not retried). Defaults to 1."""
    max_failed_indexes: int = Field(default=0, ge=0, le=MAX_PARALLELISM)
    """Parallel search: how many search pods of a stage may fail for good, their candidates
    skipped, before the run fails. Defaults to 0."""

    @field_validator("space")
    @classmethod
    def _entries(cls, space: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in space.items():
            if isinstance(value, list):
                if not value:
                    raise ValueError(f"space.{key} is an empty list")
                out[key] = value
            elif isinstance(value, dict | SearchRange):
                out[key] = SearchRange.model_validate(value)
            else:
                raise ValueError(
                    f"space.{key} must be a list of values or a range {{low, high}}, "
                    f"not {type(value).__name__}"
                )
        return out

    @model_validator(mode="after")
    def _ranges_fit_strategy(self) -> Search:
        ranged = sorted(k for k, v in self.space.items() if isinstance(v, SearchRange))
        if ranged and self.strategy in ("grid", "halving"):
            raise ValueError(
                f"space.{ranged[0]} is a range; {self.strategy} search needs lists of values "
                "(use strategy random or bayesian for ranges)"
            )
        return self

    def ranges(self) -> dict[str, SearchRange]:
        return {k: v for k, v in self.space.items() if isinstance(v, SearchRange)}

    def lists(self) -> dict[str, list[Any]]:
        return {k: v for k, v in self.space.items() if isinstance(v, list)}

    @property
    def parallel(self) -> bool:
        """Whether the search runs in its own pods rather than inside the training pod."""
        return self.parallelism > 1


@dataclass(frozen=True)
class Stage:
    """One step of a search: one Indexed Job when the search is parallel."""

    number: int
    kind: StageKind
    indexes: int
    """Pods (Job completions); at most the search's parallelism."""
    trials: int
    """Trials this stage evaluates when nothing fails."""
    first_trial: int
    """Global number of the stage's first trial; trial numbers never repeat within a run."""

    def share(self, index: int) -> range:
        """Positions (within the stage) of the candidates pod ``index`` evaluates.

        >>> list(Stage(0, "trials", 2, 5, 0).share(1))
        [1, 3]
        """
        return range(index, self.trials, self.indexes)


def grid_size(search: Search) -> int:
    """Candidates of the full grid (ranges excluded).

    >>> grid_size(Search(strategy="grid", space={"a": [1, 2, 3], "b": [True, False]}))
    6
    """
    return math.prod(len(v) for v in search.lists().values())


def rung_sizes(candidates: int, factor: int) -> list[int]:
    """Candidates per rung of successive halving: ``1 + ⌊log_factor(candidates)⌋`` rungs
    (as scikit-learn's HalvingGridSearchCV needs when the data is large enough), each keeping
    ``⌈n / factor⌉`` of the one before.

    >>> rung_sizes(12, 3)
    [12, 4, 2]
    >>> rung_sizes(1, 3)
    [1]
    """
    rungs = 1
    while factor**rungs <= candidates:
        rungs += 1
    sizes = [candidates]
    for _ in range(rungs - 1):
        sizes.append(math.ceil(sizes[-1] / factor))
    return sizes


def trial_count(search: Search) -> int:
    """How many trials the search evaluates when nothing fails (or is pruned)."""
    return sum(stage.trials for stage in search_plan(search))


def search_plan(search: Search) -> list[Stage]:
    """The stages of ``search`` (see the module docstring).

    >>> [(s.kind, s.indexes, s.trials) for s in search_plan(Search(
    ...     strategy="bayesian", space={"C": {"low": 0.1, "high": 10}}, maxTrials=25, parallelism=2))]
    [('round', 2, 10), ('round', 2, 10), ('round', 2, 5)]
    """
    width = search.parallelism
    if search.strategy == "halving":
        sizes = rung_sizes(grid_size(search), search.factor)
        kind: StageKind = "rung"
    elif search.strategy == "bayesian":
        per_round = search.max_trials if width == 1 else max(width, BAYESIAN_ROUND_TRIALS)
        full, rest = divmod(search.max_trials, per_round)
        sizes = [per_round] * full + ([rest] if rest else [])
        kind = "round"
    else:
        size = grid_size(search)
        if search.strategy == "random" and (search.ranges() or search.max_trials < size):
            size = search.max_trials
        sizes = [size]
        kind = "trials"
    stages, first = [], 0
    for number, trials in enumerate(sizes):
        stages.append(Stage(number, kind, min(width, trials), trials, first))
        first += trials
    return stages


class SearchProgress(ApiModel):
    """How far a parallel search has come (status.search)."""

    stage: int = Field(ge=0)
    """The stage running now (0-based): the rung of halving, the round of bayesian."""
    stages: int = Field(ge=1)
    """How many stages the search has."""
    trials_done: int = Field(ge=0)
    """Trials finished so far (pruned ones included)."""
    trials_total: int = Field(ge=0)
    """Trials the search evaluates when nothing fails or is pruned."""
    failed_indexes: int = Field(default=0, ge=0)
    """Search pods that failed for good; their candidates were skipped."""
    scoring: str | None = None
    """The metric the search optimises."""
    best_score: float | None = None
    """Best mean cross-validation score so far, in the metric's own sign."""
    best_params: dict[str, Any] | None = Field(default=None, json_schema_extra=_FREE)
    """The parameters that reached it."""
