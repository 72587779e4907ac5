"""Tagging a ModelVersion's MLflow run with the version: which run, with whose credentials, and
the ``Tracked`` condition the verification pod's report becomes.

The trainer logs its run before the operator numbers the version, so the run cannot name it.
The verification pod, which runs once for every new ModelVersion anyway, sets the tags
(``modelwerk.runtime.version_tags``). The operator only names a Secret for that pod: it never
reads one and never talks to the tracking server.

Credentials follow their server: the pod gets the Secret the trainer had for the server the run
is on (the TrainingJob's ``spec.tracking.mlflow.credentialsSecret``, else the operator-wide
default's), and only when the run's tracking URI is that server's. A ModelVersion applied by
hand with some other URI gets no credentials at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelwerk.api.conditions import ConditionStatus, get_condition, set_condition
from modelwerk.api.v1alpha1.evaluation import MlflowRun
from modelwerk.api.v1alpha1.model_version import ModelVersion, ModelVersionStatus
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.builders.model_version import RunTag
from modelwerk.builders.workload import MlflowDefault
from modelwerk.logic.plan import Event
from modelwerk.logic.training_result import TRACKED

TAGGED = "Tagged"
UNAVAILABLE = "TrackingUnavailable"
REFUSED = "TagRefused"


def training_job_to_observe(mv: ModelVersion) -> str | None:
    """The TrainingJob whose tracking settings the verification Job needs: only for a version
    that records an MLflow run and is still to be verified."""
    lineage = mv.spec.lineage
    if run_of(mv) is None or lineage is None or not lineage.training_job:
        return None
    if mv.status.verified_sha256 == mv.spec.artifact.sha256 or mv.status.phase == "Failed":
        return None
    return lineage.training_job


def run_of(mv: ModelVersion) -> MlflowRun | None:
    """The version's MLflow run record, if it has one."""
    return mv.spec.tracking.mlflow if mv.spec.tracking else None


def run_tag(
    mv: ModelVersion, training_job: TrainingJob | None, default: MlflowDefault | None
) -> RunTag | None:
    """What the verification pod tags, and with which Secret; None without an MLflow run."""
    run = run_of(mv)
    if run is None:
        return None
    trainer = training_job if _trained(mv, training_job) else None
    return RunTag(
        run.tracking_uri, run.run_id, credentials_secret(run.tracking_uri, trainer, default)
    )


def credentials_secret(
    tracking_uri: str, training_job: TrainingJob | None, default: MlflowDefault | None
) -> str | None:
    """The Secret the trainer had for the server at ``tracking_uri``.

    >>> default = MlflowDefault("http://mlflow.example:5000", credentials_secret="mlflow-token")
    >>> credentials_secret("http://mlflow.example:5000/", None, default)
    'mlflow-token'
    >>> credentials_secret("http://elsewhere.example", None, default) is None
    True
    """
    own = training_job.spec.tracking.mlflow if training_job and training_job.spec.tracking else None
    if own is not None and _same_server(own.tracking_uri, tracking_uri):
        return own.credentials_secret.name if own.credentials_secret else None
    if default is not None and _same_server(default.tracking_uri, tracking_uri):
        return default.credentials_secret
    return None


def with_tracked(
    mv: ModelVersion,
    status: ModelVersionStatus,
    result: dict[str, Any] | None,
    *,
    now: datetime,
) -> tuple[ModelVersionStatus, tuple[Event, ...]]:
    """``status`` with the ``Tracked`` condition from the verification pod's report, and a
    Warning the first time the tag could not be set. Never touches the phase: a tracker that is
    down or refuses says so here and nowhere else."""
    decided = tracked(mv, result)
    if decided is None:
        return status, ()
    state, reason, message = decided
    before = get_condition(status.conditions, TRACKED)
    conditions = set_condition(
        status.conditions,
        TRACKED,
        state,
        reason,
        message,
        now=now,
        generation=mv.metadata.generation,
    )
    events: tuple[Event, ...] = ()
    if state == "False" and (before is None or before.status != "False"):
        events = (Event("Warning", reason, message),)
    return status.model_copy(update={"conditions": conditions}), events


def tracked(
    mv: ModelVersion, result: dict[str, Any] | None
) -> tuple[ConditionStatus, str, str] | None:
    """``Tracked`` (status, reason, message) from the verification pod's report; None when the
    version records no MLflow run or the pod said nothing about it.

    >>> mv = ModelVersion.from_k8s({"metadata": {"name": "m-v2"}, "spec": {"model": "m",
    ...     "version": 2, "task": "regression", "artifact": {"uri": "pvc://a/b", "sha256": "0" * 64},
    ...     "tracking": {"mlflow": {"trackingUri": "http://t", "runId": "r1"}}}})
    >>> tracked(mv, {"ok": True, "tracking": {"tagged": True}})[:2]
    ('True', 'Tagged')
    >>> tracked(mv, {"ok": True, "tracking": {"tagged": False, "reason": "TrackingUnavailable",
    ...     "error": "cannot reach http://t: [Errno 111] Connection refused"}})[1]
    'TrackingUnavailable'
    """
    run = run_of(mv)
    report = (result or {}).get("tracking")
    if run is None or not isinstance(report, dict):
        return None
    tags = f"modelwerk.modelVersion={mv.metadata.name}"
    if report.get("tagged") is True:
        return ("True", TAGGED, f"MLflow run {run.run_id} is tagged {tags}")
    reason = report.get("reason")
    if reason not in (UNAVAILABLE, REFUSED):
        reason = REFUSED
    error = str(report.get("error") or "no detail")[:1000]
    return (
        "False",
        reason,
        f"MLflow run {run.run_id} is not tagged {tags}: {error}; the version is usable, "
        "only the run's link to it is missing",
    )


def _trained(mv: ModelVersion, training_job: TrainingJob | None) -> bool:
    """Whether ``training_job`` is the one that produced ``mv`` (a name can be reused)."""
    lineage = mv.spec.lineage
    if training_job is None or lineage is None:
        return False
    if lineage.training_job_uid:
        return training_job.metadata.uid == lineage.training_job_uid
    return training_job.metadata.name == lineage.training_job


def _same_server(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")
