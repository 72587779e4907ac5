"""Bayesian search with Optuna's TPE, without a database: each pod rebuilds the study.

Q: How do search pods share what they learned?
A: Through the trial table in the artifact store, the same one every search writes. A pod of
   round ``r`` reads every trial of the rounds before (complete and pruned, with their fold
   scores as intermediate values), adds them to a fresh in-memory study
   (``study.add_trial(create_trial(...))``), then asks for and tells its own trials one by
   one. No shared database, no lock: pods of one round do not see each other's trials, which
   costs the model a few points of information and is why rounds are kept short
   (``search_plan``). The sampler's seed is derived from (seed, round, index), so a rerun of
   the same spec proposes the same trials, and two pods of a round never propose the same
   sequence.

Q: What is pruned?
A: With ``pruning``, each fold's running mean is reported as an intermediate value and
   Optuna's MedianPruner stops a trial whose running mean is below the median of the earlier
   trials at that fold (after 5 complete trials, never after the first fold). A pruned trial
   is kept in the table with the folds it ran and no mean score.
"""

from __future__ import annotations

import hashlib
from typing import Any

from modelwerk.api.v1alpha1.search import Search, SearchRange, Stage
from modelwerk.runtime.trainer import trials
from modelwerk.runtime.trainer.crossval import Evaluator
from modelwerk.runtime.trainer.errors import TrainingFailure

PRUNER_STARTUP_TRIALS = 5
_CHOICE_TYPES = (type(None), bool, int, float, str)


def sampler_seed(seed: int, stage: int, index: int) -> int:
    """A seed per (run seed, round, pod), stable across processes and Python versions.

    >>> sampler_seed(42, 0, 0) == sampler_seed(42, 0, 0) != sampler_seed(42, 0, 1)
    True
    """
    digest = hashlib.sha256(f"{seed}/{stage}/{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def distributions(search: Search) -> dict[str, Any]:
    """The space as Optuna distributions: lists are categorical, ranges float or int."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for key, entry in sorted(search.space.items()):
        if isinstance(entry, SearchRange):
            if entry.type == "int":
                out[key] = IntDistribution(int(entry.low), int(entry.high), log=entry.log)
            else:
                out[key] = FloatDistribution(entry.low, entry.high, log=entry.log)
            continue
        odd = [v for v in entry if not isinstance(v, _CHOICE_TYPES)]
        if odd:
            raise TrainingFailure(
                "InvalidParams",
                f"invalid params: search.space.{key}: bayesian search takes numbers, strings, "
                f"booleans and null as choices, not {odd[0]!r}",
            )
        out[key] = CategoricalDistribution(list(entry))
    return out


def _study(
    search: Search, scoring: str, history: list[trials.Trial], dists: dict[str, Any], seed: int
) -> Any:
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lower = scoring in trials.LOWER_IS_BETTER
    pruner: Any = (
        optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=1)
        if search.pruning
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        direction="minimize" if lower else "maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner,
    )
    for record in sorted(history, key=lambda t: t.trial):
        complete = record.state == "complete" and record.mean_score is not None
        running = [
            sum(record.fold_scores[: n + 1]) / (n + 1) for n in range(len(record.fold_scores))
        ]
        study.add_trial(
            create_trial(
                params={k: v for k, v in record.params.items() if k in dists},
                distributions=dists,
                value=record.mean_score if complete else None,
                intermediate_values=dict(enumerate(running)),
                state=TrialState.COMPLETE if complete else TrialState.PRUNED,
            )
        )
    return study


def run_share(
    evaluator: Evaluator,
    search: Search,
    stage: Stage,
    index: int,
    history: list[trials.Trial],
    *,
    seed: int,
    worker: str,
) -> list[trials.Trial]:
    """Pod ``index`` of round ``stage``: its trials, asked one after another."""
    from optuna.trial import TrialState

    dists = distributions(search)
    own_seed = sampler_seed(seed, stage.number, index)
    study = _study(search, evaluator.scoring, history, dists, own_seed)
    positions = list(stage.share(index))
    out: list[trials.Trial] = []
    for position in positions:
        asked = study.ask(dists)

        def report(fold: int, running: float, asked: Any = asked) -> bool:
            asked.report(running, fold)
            return bool(search.pruning and asked.should_prune())

        record = evaluator.evaluate(
            dict(asked.params),
            trial=stage.first_trial + position,
            worker=worker,
            report=report,
        )
        if record.state == "pruned":
            study.tell(asked, state=TrialState.PRUNED)
        else:
            study.tell(asked, record.mean_score)
        out.append(record)
    return out
