"""The candidates of a search stage, in the order every pod and the serial search agree on.

- grid: scikit-learn's ``ParameterGrid`` order (keys sorted, the last key varying fastest),
  the order GridSearchCV evaluates;
- random: scikit-learn's ``ParameterSampler`` with the run's seed, as RandomizedSearchCV
  samples (without replacement over lists; ranges become SciPy distributions, sampled with
  replacement);
- halving rung ``r > 0``: the best ``⌈n/factor⌉`` of rung ``r - 1``, best first, ties by
  trial number.

Values are plain JSON values (NumPy scalars converted), so records compare equal across pods.
"""

from __future__ import annotations

import math
from typing import Any

from modelwerk.api.v1alpha1.search import Search, SearchRange, Stage
from modelwerk.runtime.trainer import trials
from modelwerk.runtime.trainer.errors import TrainingFailure


class _IntLogUniform:
    """Whole numbers, log-uniform between low and high (SciPy has no such distribution)."""

    def __init__(self, low: int, high: int) -> None:
        from scipy.stats import loguniform

        self._low, self._high = low, high
        self._dist = loguniform(low, high + 1)

    def rvs(self, random_state: Any = None) -> int:
        value = math.floor(float(self._dist.rvs(random_state=random_state)))
        return min(max(value, self._low), self._high)


def distribution(entry: SearchRange) -> Any:
    """A range as something ``ParameterSampler`` can draw from."""
    from scipy.stats import loguniform, randint, uniform

    if entry.type == "int":
        low, high = int(entry.low), int(entry.high)
        return _IntLogUniform(low, high) if entry.log else randint(low, high + 1)
    if entry.log:
        return loguniform(entry.low, entry.high)
    return uniform(entry.low, entry.high - entry.low)


def plain(value: Any) -> Any:
    """NumPy scalars as Python values (JSON and equality across processes)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, list | dict | str) else value


def grid(search: Search) -> list[dict[str, Any]]:
    from sklearn.model_selection import ParameterGrid

    return [{k: plain(v) for k, v in c.items()} for c in ParameterGrid(search.lists())]


def sampled(search: Search, count: int, seed: int) -> list[dict[str, Any]]:
    from sklearn.model_selection import ParameterSampler

    space: dict[str, Any] = dict(search.lists())
    space.update({k: distribution(v) for k, v in search.ranges().items()})
    sampler = ParameterSampler(space, n_iter=count, random_state=seed)
    return [{k: plain(v) for k, v in c.items()} for c in sampler]


def survivors(history: list[trials.Trial], rung: int, count: int) -> list[dict[str, Any]]:
    """The ``count`` best candidates of halving rung ``rung``, best first."""
    previous = [t for t in history if t.iteration == rung and t.mean_score is not None]
    return [t.params for t in trials.ranked(previous)[:count]]


def candidates(
    search: Search, stage: Stage, history: list[trials.Trial], seed: int
) -> list[dict[str, Any]]:
    """Every candidate of ``stage`` (not only one pod's share), in plan order."""
    if search.strategy == "grid" or (search.strategy == "halving" and stage.number == 0):
        return grid(search)
    if search.strategy == "random":
        return sampled(search, stage.trials, seed)
    if search.strategy == "halving":
        return survivors(history, stage.number - 1, stage.trials)
    raise TrainingFailure("InvalidSpec", f"{search.strategy} search has no candidate list")
