"""Reading a batch/v1 Job and its pods: did it finish, and what did its pod report?"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

JobState = Literal["Pending", "Running", "Succeeded", "Failed"]
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


def job_outcome(job: dict[str, Any], pods: list[dict[str, Any]]) -> JobOutcome:
    """Summarise ``job`` and the pods it created.

    >>> job = {"metadata": {"name": "j"}, "status": {"conditions": [
    ...     {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
    ...      "message": "Job was active longer than specified deadline"}]}}
    >>> job_outcome(job, []).state, job_outcome(job, []).message
    ('Failed', 'DeadlineExceeded: Job was active longer than specified deadline')
    """
    name = job["metadata"]["name"]
    status = job.get("status", {})
    finished = [(t, _terminated(p)) for p in pods if (t := _terminated(p)) is not None]
    # The newest terminated container speaks for the Job (retries leave older ones behind).
    finished.sort(key=lambda pair: pair[0].get("finishedAt") or "")
    terminated = finished[-1][0] if finished else None
    result: dict[str, Any] | None = None
    raw = (terminated or {}).get("message")
    if raw:
        try:
            parsed = json.loads(raw)
            result = parsed if isinstance(parsed, dict) else None
        except ValueError:
            result = None
    failed = _condition(job, "Failed")
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
