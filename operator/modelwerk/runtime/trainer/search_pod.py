"""``modelwerk train --search-stage K``: one pod of a parallel search's stage ``K``.

The pod's index is ``JOB_COMPLETION_INDEX`` (set by the Indexed Job). It reads and verifies
the dataset snapshot like the training pod, cuts the same split, reads the trial table of
the earlier stages from the store, evaluates its share of the stage's candidates
(:func:`~modelwerk.api.v1alpha1.search.Stage.share`) and writes them as its own part of the
table, ``part-<stage>-<index>.parquet`` (a retried pod overwrites its own part only).

Result (the termination message, small whatever the space: the details are in the table)::

    {"ok": true, "stage": K, "index": I, "trials": n, "pruned": p, "scoring": "accuracy",
     "bestScore": 0.97 | null, "bestParams": {…} | null, "searchSeconds": …,
     "durationSeconds": …}

(``searchSeconds``: evaluating the candidates alone; the rest of ``durationSeconds`` is
reading the data and preparing.)

and on failure ``{"ok": false, "reason", "error", "stage", "index"}`` with the exit code of
:mod:`~modelwerk.runtime.trainer.errors` (the Job fails the index at once for a spec, data or
training error; a crash or a kill is retried).
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

from modelwerk.api.v1alpha1.search import search_plan
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.runtime import termination
from modelwerk.runtime.trainer import job as train_job
from modelwerk.runtime.trainer import searching, train, trials
from modelwerk.runtime.trainer.errors import EXIT_FAILED, EXIT_OK, TrainingFailure
from modelwerk.runtime.trainer.search import default_scoring

INDEX_ENV = "JOB_COMPLETION_INDEX"


def run(
    job: TrainingJob, data: train_job.DatasetInput, root: str, stage_number: int
) -> train_job.Outcome:
    """Evaluate this pod's share of stage ``stage_number``; every failure is an Outcome."""
    started = time.perf_counter()
    where: dict[str, Any] = {"stage": stage_number}
    try:
        index = _index()
        where["index"] = index
        search = job.spec.search
        if search is None or job.spec.estimator is None:
            raise TrainingFailure("InvalidSpec", "a search stage needs spec.search")
        plan = search_plan(search)
        if not 0 <= stage_number < len(plan) or index >= plan[stage_number].indexes:
            raise TrainingFailure(
                "InvalidInput",
                f"the search has {len(plan)} stages; stage {stage_number} index {index} is not one",
            )
        stage = plan[stage_number]
        frame = train_job.load(data)
        directory = train_job.run_directory(job, root)
        history = trials.read(trials.table(directory)) if stage_number else []
        worker = searching.worker_name(stage_number, index)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the final fit reports the warnings that matter
            ready = train.prepare(job.spec, frame, data.target)
            searching_started = time.perf_counter()
            done = searching.run_share(
                ready.evaluator(job.spec), search, stage, index, history, worker=worker
            )
        search_seconds = time.perf_counter() - searching_started
        trials.write(done, directory, worker=worker)
    except TrainingFailure as failure:
        return _failed(failure.reason, failure.message, failure.exit_code, started, where)
    except OSError as error:
        return _failed("ArtifactStoreError", f"{error}", EXIT_FAILED, started, where)
    except Exception as error:  # the pod must always leave a result behind
        return _failed("Internal", f"{type(error).__name__}: {error}", EXIT_FAILED, started, where)
    ranked = trials.ranked(done)
    top = next((t for t in ranked if t.mean_score is not None), None)
    result: dict[str, Any] = {
        "ok": True,
        **where,
        "trials": len(done),
        "pruned": sum(1 for t in done if t.state == "pruned"),
        "scoring": search.scoring or default_scoring(ready.task),
        "bestScore": None if top is None else round(top.mean_score or 0.0, 6),
        "bestParams": None if top is None else top.params,
        "searchSeconds": round(search_seconds, 3),
        "durationSeconds": round(time.perf_counter() - started, 3),
    }
    return train_job.Outcome(result, EXIT_OK)


def compact(result: dict[str, Any]) -> dict[str, Any]:
    return termination.fit(result, droppable=("bestParams",))


def _index() -> int:
    raw = os.environ.get(INDEX_ENV, "")
    if not raw.isdigit():
        raise TrainingFailure("InvalidInput", f"{INDEX_ENV} is not set to an index: {raw!r}")
    return int(raw)


def _failed(
    reason: str, error: str, exit_code: int, started: float, where: dict[str, Any]
) -> train_job.Outcome:
    result = {
        "ok": False,
        "reason": reason,
        "error": error,
        **where,
        "durationSeconds": round(time.perf_counter() - started, 3),
    }
    return train_job.Outcome(result, exit_code)
