"""Reading a batch/v1 Job and its pods: did it finish, and what did its pod report?"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

JobState = Literal["Pending", "Running", "Succeeded", "Failed"]
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
"""metav1.Condition's rule for a reason (``Condition.reason``), at most 1024 characters."""


@dataclass(frozen=True)
class JobOutcome:
    name: str
    state: JobState
    result: dict[str, Any] | None
    """The JSON the pod wrote to its termination message, if it was JSON."""
    message: str | None
    """Why the Job failed, or the raw termination message when it was not JSON."""
    start_time: datetime | None
    completion_time: datetime | None
    exit_code: int | None = None
    stuck: str | None = None
    """Why the Job's pod cannot start, for a reason the kubelet keeps retrying without end (a
    Secret or key that does not exist): the run waits until someone fixes it."""
    reason: str | None = None
    """The Job's Failed condition reason (DeadlineExceeded, FailedIndexes, …)."""
    container_reason: str | None = None
    """Why the newest pod's container ended: Completed, Error, OOMKilled, …"""
    init_results: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    """The newest pod's init (and sidecar) containers that ended: their JSON results."""
    indexes: dict[int, IndexOutcome] = field(default_factory=dict)
    """Indexed Jobs: what the newest finished pod of each index reported."""
    completed_indexes: frozenset[int] = frozenset()
    failed_indexes: frozenset[int] = frozenset()


@dataclass(frozen=True)
class IndexOutcome:
    """The newest finished pod of one index of an Indexed Job."""

    succeeded: bool
    result: dict[str, Any] | None
    message: str | None
    """The raw termination message when it was not JSON (a crash's log tail)."""
    exit_code: int | None
    reason: str | None
    """The container's reason: Completed, Error, OOMKilled, …"""


def index_set(value: str | None) -> frozenset[int]:
    """An Indexed Job's ``completedIndexes``/``failedIndexes`` ("1,3-5") as a set.

    >>> sorted(index_set("0,2-4"))
    [0, 2, 3, 4]
    """
    out: set[int] = set()
    for part in (value or "").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return frozenset(out)


def _json(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _init_results(pod: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {}
    for status in pod.get("status", {}).get("initContainerStatuses") or []:
        state = (status.get("state") or {}).get("terminated")
        if state:
            out[status.get("name", "")] = _json(state.get("message"))
    return out


def _indexes(pods: list[dict[str, Any]]) -> dict[int, IndexOutcome]:
    newest: dict[int, tuple[str, IndexOutcome]] = {}
    for pod in pods:
        meta = pod.get("metadata", {})
        raw_index = (meta.get("labels") or {}).get(INDEX_LABEL) or (
            meta.get("annotations") or {}
        ).get(INDEX_LABEL)
        terminated = _terminated(pod)
        if raw_index is None or not str(raw_index).isdigit() or terminated is None:
            continue
        raw = terminated.get("message")
        result = _json(raw)
        outcome = IndexOutcome(
            succeeded=terminated.get("exitCode") == 0,
            result=result,
            message=None if result is not None or not raw else raw[-1500:],
            exit_code=terminated.get("exitCode"),
            reason=terminated.get("reason"),
        )
        finished = terminated.get("finishedAt") or ""
        index = int(raw_index)
        if index not in newest or finished >= newest[index][0]:
            newest[index] = (finished, outcome)
    return {index: outcome for index, (_, outcome) in newest.items()}


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return dict(condition)
    return None


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        state = status.get("state", {}).get("terminated") or status.get("lastState", {}).get(
            "terminated"
        )
        if state:
            return dict(state)
    return None


_STUCK = ("CreateContainerConfigError", "CreateContainerError")
"""Container waiting reasons that only a change outside the pod ends (missing Secrets, keys)."""


def _stuck(pods: list[dict[str, Any]]) -> str | None:
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            waiting = status.get("state", {}).get("waiting") or {}
            if waiting.get("reason") in _STUCK:
                return f"{waiting['reason']}: {waiting.get('message') or 'no message'}"
    return None


def job_outcome(job: dict[str, Any], pods: list[dict[str, Any]]) -> JobOutcome:
    """Summarise ``job`` and the pods it created.

    >>> job = {"metadata": {"name": "j"}, "status": {"conditions": [
    ...     {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
    ...      "message": "Job was active longer than specified deadline"}]}}
    >>> job_outcome(job, []).state, job_outcome(job, []).message
    ('Failed', 'DeadlineExceeded: Job was active longer than specified deadline')
    >>> ending = {"metadata": {"name": "j"}, "status": {"active": 0, "conditions": [
    ...     {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded",
    ...      "message": "Job was active longer than specified deadline"}]}}
    >>> job_outcome(ending, []).state
    'Failed'
    """
    name = job["metadata"]["name"]
    status = job.get("status", {})
    finished = [(t, p) for p in pods if (t := _terminated(p)) is not None]
    # The newest terminated container speaks for the Job (retries leave older ones behind).
    finished.sort(key=lambda pair: pair[0].get("finishedAt") or "")
    terminated = finished[-1][0] if finished else None
    newest_pod = finished[-1][1] if finished else None
    result: dict[str, Any] | None = None
    raw = (terminated or {}).get("message")
    if raw:
        try:
            parsed = json.loads(raw)
            result = parsed if isinstance(parsed, dict) else None
        except ValueError:
            result = None
    # Since Kubernetes 1.31 a Job past its deadline or backoff limit first gets FailureTarget,
    # drops to zero active pods while they terminate, and only then Failed. Reading the gap as
    # Pending again would write the run's status twice; the outcome is already decided.
    failed = _condition(job, "Failed") or _condition(job, "FailureTarget")
    # SuccessCriteriaMet is the success counterpart (1.31+), set before Complete.
    complete = _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet")
    if failed:
        state: JobState = "Failed"
        message = f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}".rstrip(": ")
        if raw and result is None:
            message = f"{message}; output: {raw[-1500:]}"
    elif complete:
        state, message = "Succeeded", None
    else:
        state = "Running" if status.get("active") else "Pending"
        message = None
    if result is None and raw and state != "Failed":
        message = raw[-1500:]
    return JobOutcome(
        name=name,
        state=state,
        result=result,
        message=message,
        start_time=_time(status.get("startTime")),
        completion_time=_time(status.get("completionTime"))
        or _time((failed or {}).get("lastTransitionTime")),
        exit_code=(terminated or {}).get("exitCode"),
        stuck=_stuck(pods) if state in ("Pending", "Running") else None,
        reason=(failed or {}).get("reason"),
        container_reason=(terminated or {}).get("reason"),
        init_results=_init_results(newest_pod) if newest_pod else {},
        indexes=_indexes(pods) if job.get("spec", {}).get("completionMode") == "Indexed" else {},
        completed_indexes=index_set(status.get("completedIndexes")),
        failed_indexes=index_set(status.get("failedIndexes")),
    )


def failure(job: JobOutcome, default_reason: str) -> tuple[str, str]:
    """The CamelCase reason and the human detail of a Job that did not deliver.

    The pod's own JSON result speaks first; the Job's condition and raw output after it.

    >>> job = JobOutcome("j", "Failed", {"reason": "InvalidParams", "error": "bad n"}, None, None, None)
    >>> failure(job, "TrainingFailed")
    ('InvalidParams', 'bad n')
    >>> failure(JobOutcome("j", "Failed", None, "DeadlineExceeded: too slow", None, None), "X")
    ('X', 'DeadlineExceeded: too slow')
    """
    result = job.result or {}
    reason = str(result.get("reason") or default_reason)
    if len(reason) > 1024 or not _REASON.match(reason):  # the pod may print anything
        reason = default_reason
    detail = result.get("error") or result.get("message") or job.message or "no details"
    return reason, str(detail)
