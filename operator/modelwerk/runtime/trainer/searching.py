"""Running a search's plan: one pod's share of a stage, or every stage in one process.

The same function evaluates a share whether a search pod runs it (history read from the
trial table in the store) or the training pod runs the whole search (history kept in
memory): :func:`run_serial` is the parallel search with its pods taken one after another, so
both find the same best candidate for grid, random and halving search. A Bayesian search
learns from the rounds before, so its serial form (one pod, one round) asks differently from
its parallel form; each is deterministic given the seed.
"""

from __future__ import annotations

from typing import Any

from modelwerk.api.v1alpha1.search import Search, Stage, grid_size, rung_sizes, search_plan
from modelwerk.runtime.trainer import bayes, space, trials
from modelwerk.runtime.trainer.crossval import Evaluator
from modelwerk.runtime.trainer.errors import TrainingFailure


def worker_name(stage: int, index: int) -> str:
    """The ``worker`` of a search pod's records, and its part's name."""
    return f"{stage}-{index}"


def run_share(
    evaluator: Evaluator,
    search: Search,
    stage: Stage,
    index: int,
    history: list[trials.Trial],
    *,
    worker: str,
) -> list[trials.Trial]:
    """The trials of pod ``index`` of ``stage``; ``history`` holds every earlier stage's."""
    earlier = [t for t in history if t.trial < stage.first_trial]
    if search.strategy == "bayesian":
        return bayes.run_share(
            evaluator, search, stage, index, earlier, seed=evaluator.seed, worker=worker
        )
    candidates = space.candidates(search, stage, earlier, evaluator.seed)
    iteration = resources = None
    if search.strategy == "halving":
        rungs = len(rung_sizes(grid_size(search), search.factor))
        iteration = stage.number
        floor = evaluator.min_resources(rungs, search.factor)
        resources = min(floor * search.factor**stage.number, len(evaluator.y))
    return [
        evaluator.evaluate(
            candidates[position],
            trial=stage.first_trial + position,
            worker=worker,
            iteration=iteration,
            resources=resources,
        )
        for position in stage.share(index)
        if position < len(candidates)  # a halving rung after failed pods has fewer
    ]


def run_serial(evaluator: Evaluator, search: Search, *, width: int = 1) -> list[trials.Trial]:
    """Every stage of the plan for ``width`` pods, the pods of a stage one after another."""
    plan = search_plan(search.model_copy(update={"parallelism": width}))
    history: list[trials.Trial] = []
    for stage in plan:
        done: list[trials.Trial] = []
        for index in range(stage.indexes):
            worker = "0" if width == 1 else worker_name(stage.number, index)
            done += run_share(evaluator, search, stage, index, history, worker=worker)
        history += done
    return trials.ranked(history)


def best(records: list[trials.Trial]) -> trials.Trial:
    """The winner of a finished search (ranked records; halving: of its last rung)."""
    for record in trials.ranked(records):
        if record.mean_score is not None:
            return record
    raise TrainingFailure(
        "TrainingError",
        "the search has no complete trial: every search pod failed or every trial was pruned",
    )


def summary(records: list[trials.Trial], search: Search, winner: trials.Trial) -> dict[str, Any]:
    """What the search did, for the model card."""
    return {
        "strategy": search.strategy,
        "scoring": winner.scoring,
        "cv": search.cv,
        "parallelism": search.parallelism,
        "candidates": len(records),
        "pruned": sum(1 for r in records if r.state == "pruned"),
        "bestScore": winner.mean_score,
    }
