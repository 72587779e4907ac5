"""The search phase of a TrainingJob run: one Indexed Job per stage, progress, failure causes,
restarts that never start a stage twice, and the final fit after the last stage."""

from __future__ import annotations

import json
from typing import Any

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1 import TrainingJob
from modelwerk.api.v1alpha1.training_job import TrainingJobStatus
from modelwerk.builders.training_job import run_fingerprint, search_job_name, training_job_name
from modelwerk.logic.jobs import index_set, job_outcome
from modelwerk.logic.plan import Plan
from modelwerk.logic.training_job import ObservedTraining, reconcile_training_job

from .conftest import NOW, WORKLOAD
from .test_training_job import ready_dataset, training

HALVING = {
    "strategy": "halving",
    "space": {"max_depth": [2, 3, 4, 5], "min_samples_leaf": [1, 3]},
    "parallelism": 2,
}


def searching(**search: Any) -> TrainingJob:
    return training(search={**HALVING, **search})


def stage_job(
    tj: TrainingJob,
    stage: int,
    state: str,
    pods: dict[int, tuple[int, dict[str, Any] | str]] | None = None,
    *,
    reason: str = "FailedIndexes",
    failed: str = "",
    completions: int = 2,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A stage's Indexed Job in ``state``; ``pods`` maps index -> (exit code, message)."""
    name = search_job_name(tj, run_fingerprint(tj), stage)
    conditions: list[dict[str, str]] = []
    if state == "Succeeded":
        conditions = [{"type": "Complete", "status": "True"}]
    elif state == "Failed":
        conditions = [{"type": "Failed", "status": "True", "reason": reason, "message": "x"}]
    done = ",".join(str(i) for i, (code, _) in sorted((pods or {}).items()) if code == 0)
    body = {
        "metadata": {"name": name},
        "spec": {"completionMode": "Indexed", "completions": completions},
        "status": {
            "conditions": conditions,
            "active": 1 if state == "Running" else 0,
            "completedIndexes": done,
            "failedIndexes": failed,
        },
    }
    out = []
    for index, (code, message) in (pods or {}).items():
        text = message if isinstance(message, str) else json.dumps(message)
        out.append(
            {
                "metadata": {
                    "name": f"{name}-{index}-abcde",
                    "labels": {
                        "job-name": name,
                        "batch.kubernetes.io/job-completion-index": str(index),
                    },
                },
                "status": {
                    "containerStatuses": [
                        {
                            "state": {
                                "terminated": {
                                    "exitCode": code,
                                    "reason": "Completed" if code == 0 else "Error",
                                    "message": text,
                                    "finishedAt": "2026-11-22T11:59:00Z",
                                }
                            }
                        }
                    ]
                },
            }
        )
    return body, out


def ok(trials: int, score: float, depth: int) -> tuple[int, dict[str, Any]]:
    return 0, {
        "ok": True,
        "trials": trials,
        "scoring": "accuracy",
        "bestScore": score,
        "bestParams": {"max_depth": depth},
    }


def reason(status: TrainingJobStatus) -> str | None:
    ready = get_condition(status.conditions, "Ready")
    return ready.reason if ready else None


def decide(tj: TrainingJob, *jobs: tuple[dict[str, Any], list[dict[str, Any]]]) -> Plan:
    obs = ObservedTraining(
        dataset=ready_dataset(),
        jobs={body["metadata"]["name"]: job_outcome(body, pods) for body, pods in jobs},
        versions=[],
        artifact_pvc_exists=True,
    )
    return reconcile_training_job(tj, obs, now=NOW, config=WORKLOAD)


def test_the_first_stage_is_an_indexed_job_per_the_plan() -> None:
    tj = searching(backoffLimitPerIndex=2, maxFailedIndexes=1)
    plan = decide(tj)
    (job,) = plan.create
    spec = job["spec"]
    assert job["metadata"]["name"] == search_job_name(tj, run_fingerprint(tj), 0)
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert (spec["backoffLimitPerIndex"], spec["maxFailedIndexes"]) == (2, 1)
    assert "backoffLimit" not in spec
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert rules[1]["action"] == "FailIndex" and rules[1]["onExitCodes"]["values"] == [1, 2, 3]
    command = spec["template"]["spec"]["containers"][0]["command"]
    assert command == ["modelwerk", "train", "--search-stage", "0"]
    assert job["metadata"]["labels"]["modelwerk.dev/search-stage"] == "0"
    assert plan.status.phase == "Searching"
    assert plan.status.search is not None
    assert (plan.status.search.stages, plan.status.search.trials_total) == (2, 11)
    assert [e.reason for e in plan.events] == ["SearchStageStarted"]


def test_progress_counts_finished_pods_and_keeps_the_best() -> None:
    tj = searching()
    plan = decide(tj, stage_job(tj, 0, "Running", {0: ok(5, 0.91, 3)}))
    assert plan.create == ()
    progress = plan.status.search
    assert progress is not None
    assert (progress.stage, progress.trials_done, progress.best_score) == (0, 5, 0.91)
    assert progress.best_params == {"max_depth": 3}
    assert "1/2 running (5/11 trials; best accuracy 0.91)" in (plan.status.message or "")


def test_a_finished_stage_starts_the_next_then_the_final_fit() -> None:
    tj = searching()
    first = stage_job(tj, 0, "Succeeded", {0: ok(4, 0.91, 3), 1: ok(4, 0.95, 4)})
    plan = decide(tj, first)
    (job,) = plan.create
    assert job["metadata"]["name"] == search_job_name(tj, run_fingerprint(tj), 1)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "1"
    second = stage_job(tj, 1, "Succeeded", {0: ok(2, 0.96, 4), 1: ok(1, 0.94, 3)})
    plan = decide(tj, first, second)
    (final,) = plan.create
    assert final["metadata"]["name"] == training_job_name(tj, run_fingerprint(tj))
    assert final["spec"]["template"]["spec"]["containers"][0]["command"] == ["modelwerk", "train"]
    assert plan.status.phase == "Running"
    assert plan.status.search is not None and plan.status.search.trials_done == 11
    assert plan.status.search.best_score == 0.96
    assert "best of 11 trials" in (plan.status.message or "")


def test_restarts_never_start_a_stage_twice() -> None:
    tj = searching()
    first = stage_job(tj, 0, "Succeeded", {0: ok(5, 0.9, 3), 1: ok(4, 0.9, 4)})
    running = stage_job(tj, 1, "Running")
    assert decide(tj, first, running).create == ()
    # the first stage's Job was removed after it finished: the second one proves it ran
    assert decide(tj, running).create == ()
    final = (
        {"metadata": {"name": training_job_name(tj, run_fingerprint(tj))}, "status": {"active": 1}},
        [],
    )
    assert decide(tj, final).create == ()


def test_a_failed_pod_fails_the_run_with_its_own_words() -> None:
    tj = searching()
    error = {"ok": False, "reason": "TrainingError", "error": "candidate {'max_depth': 2}: boom"}
    job = stage_job(
        tj,
        0,
        "Failed",
        {0: (1, error), 1: ok(4, 0.9, 3)},
        reason="MaxFailedIndexesExceeded",
        failed="0",
    )
    plan = decide(tj, job)
    assert plan.create == ()
    status = plan.status
    assert (status.phase, reason(status)) == ("Failed", "TrainingError")
    assert "more than maxFailedIndexes (0)" in (status.message or "")
    assert "index 0: TrainingError: candidate {'max_depth': 2}: boom" in (status.message or "")
    # terminal: the next reconcile changes nothing and emits nothing again
    again = decide(training(status=status.to_k8s(), search=HALVING), job)
    assert again.create == () and again.events == ()


def test_a_crashed_pod_reports_its_exit_and_log_tail() -> None:
    tj = searching()
    job = stage_job(
        tj,
        0,
        "Failed",
        {1: (137, "Traceback…\nMemoryError")},
        reason="MaxFailedIndexesExceeded",
        failed="1",
    )
    status = decide(tj, job).status
    assert reason(status) == "SearchFailed"
    assert "index 1: exit code 137 (Error); output: Traceback…\nMemoryError" in (
        status.message or ""
    )


def test_tolerated_failures_skip_the_pod_and_go_on() -> None:
    tj = searching(maxFailedIndexes=1)
    job = stage_job(tj, 0, "Failed", {0: ok(5, 0.9, 3), 1: (1, {"ok": False})}, failed="1")
    plan = decide(tj, job)
    (next_stage,) = plan.create
    assert next_stage["metadata"]["name"].endswith("-1")
    assert plan.status.search is not None and plan.status.search.failed_indexes == 1


def test_a_deadline_fails_the_run_with_the_jobs_words() -> None:
    tj = searching()
    job = stage_job(tj, 0, "Failed", reason="DeadlineExceeded")
    status = decide(tj, job).status
    assert status.phase == "Failed" and "DeadlineExceeded" in (status.message or "")


def test_a_dataset_that_changed_mid_search_fails_the_run() -> None:
    tj = searching()
    first = stage_job(tj, 0, "Succeeded", {0: ok(5, 0.9, 3), 1: ok(4, 0.9, 4)})
    started = training(search=HALVING, status={"datasetVersion": "sha256:" + "00" * 32})
    plan = decide(started, first)
    assert plan.create == () and reason(plan.status) == "DatasetChanged"


def test_index_sets() -> None:
    assert index_set("") == frozenset()
    assert index_set("3") == {3}
    assert index_set("0-1,4,6-7") == {0, 1, 4, 6, 7}
