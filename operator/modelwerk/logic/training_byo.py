"""The trainer stage of a bring-your-own-trainer run (spec.trainer).

The trainer Job (``<tj>-trainer-<run>``) runs the user's container; when it completed and
its upload sidecar reported the model's sha256, the run's final Job evaluates that model. The
trainer's exit code, reason and log tail (its termination message falls back to the log) go
to ``status.trainer`` and, when it failed, to the TrainingJob's message: user code's failures
are the user's to read, and they never reach the evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelwerk.api.v1alpha1.training_job import TrainerRecord, TrainingJob
from modelwerk.builders.byo import trainer_job_name
from modelwerk.logic.jobs import JobOutcome

LOG_TAIL = 1500


@dataclass(frozen=True)
class TrainerDecision:
    action: Literal["create", "wait", "fail", "done"]
    record: TrainerRecord | None = None
    reason: str | None = None
    message: str | None = None
    model_uri: str | None = None
    sha256: str | None = None
    model_format: str = "joblib"
    """joblib or onnx, as the upload step found it."""


def decide_trainer(
    tj: TrainingJob, jobs: dict[str, JobOutcome], fingerprint: str
) -> TrainerDecision:
    name = trainer_job_name(tj, fingerprint)
    job = jobs.get(name)
    if job is None:
        return TrainerDecision("create")
    record = TrainerRecord(exit_code=job.exit_code, reason=job.container_reason)
    if job.state in ("Pending", "Running"):
        return TrainerDecision("wait", record)
    if job.state == "Failed":
        tail = _tail(job)
        record = record.model_copy(update={"log_tail": tail})
        why = job.container_reason or job.reason or "Failed"
        exit_text = "" if job.exit_code is None else f" with exit code {job.exit_code}"
        detail = f": {tail}" if tail else f" ({job.message})" if job.message else ""
        message = f"The trainer container of Job {name} ended{exit_text} ({why}){detail}"
        reason = "TrainerOOMKilled" if why == "OOMKilled" else "TrainerFailed"
        if job.reason == "DeadlineExceeded":
            reason, message = "DeadlineExceeded", f"Trainer Job {name} failed: {job.message}"
        return TrainerDecision("fail", record, reason, message)
    upload = job.init_results.get("upload") or {}
    if not upload.get("ok") or not upload.get("sha256") or not upload.get("uri"):
        error = upload.get("error") or "the upload step reported nothing"
        message = f"The trainer of Job {name} exited without a model: {error}"
        return TrainerDecision("fail", record, str(upload.get("reason") or "NoModel"), message)
    record = record.model_copy(
        update={"model_sha256": upload["sha256"], "model_format": upload.get("format")}
    )
    return TrainerDecision(
        "done",
        record,
        model_uri=upload["uri"],
        sha256=upload["sha256"],
        model_format=str(upload.get("format") or "joblib"),
    )


def _tail(job: JobOutcome) -> str | None:
    """The end of what the trainer said: its termination message or its log's tail."""
    text = job.message
    if job.result is not None:  # the trainer wrote JSON itself
        text = str(job.result.get("error") or job.result.get("message") or job.result)
    if not text:
        return None
    text = text.split(": output: ", 1)[-1].split("; output: ", 1)[-1]
    return text[-LOG_TAIL:].strip() or None
