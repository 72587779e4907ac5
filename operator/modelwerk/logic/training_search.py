"""The search phase of a TrainingJob run whose search runs in its own pods (parallelism > 1).

Stages (``search_plan``) run one after another, each as one Indexed Job with a
deterministic name (``<tj>-search-<run>-<stage>``), so a restarted operator finds the Jobs it
started and never starts a stage twice. A stage is done when its Job completed, or failed
with no more failed indexes than ``maxFailedIndexes`` allows (the failed pods' candidates are
skipped). When every stage is done the final Job fits the best candidate: the stage Jobs'
pods report only counts and their best (termination messages are small); the trial table in
the store is the search's result, and the final Job reads it.

A stage Job that is gone while a later one (or the final Job) exists finished before it was
removed; it is not started again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from modelwerk.api.v1alpha1.search import (
    LOWER_IS_BETTER,
    SearchProgress,
    Stage,
    search_plan,
    trial_count,
)
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.builders.training_job import search_job_name, training_job_name
from modelwerk.logic.jobs import IndexOutcome, JobOutcome

Action = Literal["create", "wait", "fail", "done"]


@dataclass(frozen=True)
class SearchDecision:
    action: Action
    """create the stage's Job, wait for it, fail the run, or go on to the final fit."""
    progress: SearchProgress
    stage: Stage | None = None
    reason: str | None = None
    message: str | None = None


@dataclass
class _Tally:
    scoring: str | None = None
    done: int = 0
    failed: int = 0
    best_score: float | None = None
    best_params: dict[str, Any] | None = None

    def add(self, job: JobOutcome) -> None:
        self.failed += len(job.failed_indexes)
        for index in sorted(job.indexes):
            result = job.indexes[index].result or {}
            if not job.indexes[index].succeeded or not result.get("ok"):
                continue
            self.done += int(result.get("trials") or 0)
            self.scoring = self.scoring or result.get("scoring")
            score = result.get("bestScore")
            if isinstance(score, int | float) and self._better(float(score)):
                self.best_score = float(score)
                params = result.get("bestParams")
                self.best_params = params if isinstance(params, dict) else None

    def _better(self, score: float) -> bool:
        if self.best_score is None:
            return True
        if self.scoring in LOWER_IS_BETTER:
            return score < self.best_score
        return score > self.best_score


def decide_search(tj: TrainingJob, jobs: dict[str, JobOutcome], fingerprint: str) -> SearchDecision:
    """Where the search of this run stands; ``jobs`` are the TrainingJob's Jobs by name."""
    search = tj.spec.search
    assert search is not None and search.parallel
    plan = search_plan(search)
    names = [search_job_name(tj, fingerprint, stage.number) for stage in plan]
    final_started = training_job_name(tj, fingerprint) in jobs
    tally = _Tally(scoring=search.scoring)

    def progress(stage: int) -> SearchProgress:
        return SearchProgress(
            stage=stage,
            stages=len(plan),
            trials_done=tally.done,
            trials_total=trial_count(search),
            failed_indexes=tally.failed,
            scoring=tally.scoring,
            best_score=tally.best_score,
            best_params=tally.best_params,
        )

    for stage, name in zip(plan, names, strict=True):
        job = jobs.get(name)
        if job is None:
            if final_started or any(later in jobs for later in names[stage.number + 1 :]):
                continue
            return SearchDecision("create", progress(stage.number), stage)
        tally.add(job)
        if job.state in ("Pending", "Running"):
            return SearchDecision("wait", progress(stage.number), stage)
        if job.state == "Failed":
            tolerated = job.reason == "FailedIndexes" and (
                len(job.failed_indexes) <= search.max_failed_indexes
            )
            if not tolerated:
                reason, message = _cause(job, stage, search.max_failed_indexes)
                return SearchDecision("fail", progress(stage.number), stage, reason, message)
    return SearchDecision("done", progress(len(plan) - 1))


def _cause(job: JobOutcome, stage: Stage, allowed: int) -> tuple[str, str]:
    """The reason and message of a stage that failed the run: the first failed pod's own
    words when there are any, else the Job's."""
    where = f"search stage {stage.number} (Job {job.name})"
    failed = sorted(job.failed_indexes) or sorted(
        i for i, outcome in job.indexes.items() if not outcome.succeeded
    )
    for index in failed:
        outcome = job.indexes.get(index)
        if outcome is None:
            continue
        detail = _describe(outcome)
        count = len(job.failed_indexes)
        if job.reason == "MaxFailedIndexesExceeded" or count > allowed:
            summary = f"{count} search pod(s) failed, more than maxFailedIndexes ({allowed})"
        else:
            summary = f"the Job failed ({job.reason or 'Failed'})"
        reason = (outcome.result or {}).get("reason") or "SearchFailed"
        if not isinstance(reason, str) or not reason.isalnum():
            reason = "SearchFailed"
        return reason, f"{where}: {summary}; index {index}: {detail}"
    return "SearchFailed", f"{where} failed: {job.message or job.reason or 'no details'}"


def _describe(outcome: IndexOutcome) -> str:
    result = outcome.result or {}
    if result.get("error"):
        return f"{result.get('reason', 'Error')}: {result['error']}"
    why = outcome.reason or "Error"
    tail = f"; output: {outcome.message[-500:]}" if outcome.message else ""
    return f"exit code {outcome.exit_code} ({why}){tail}"
