"""Whether a Deployment's server can serve a ModelVersion: refused up front when its backend
cannot (:func:`backend_refusal`), reported by the ``ModelIncompatible`` condition when a pod
refuses it at load time.

A model server refuses an artifact written by another scikit-learn minor version than its own
(``runtime.server.compatibility``): it exits before loading, with a termination message that
starts with ``ModelIncompatible:``, and its pod goes into CrashLoopBackOff. The apps/v1
Deployment only shows a replica that never becomes ready, so the operator reads the crashed
containers' statuses while a track is not fully ready, and says why here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from modelwerk.api.conditions import ConditionStatus, get_condition, set_condition
from modelwerk.api.v1alpha1.deployment import Deployment, DeploymentStatus
from modelwerk.api.v1alpha1.model_version import ModelVersion

MODEL_INCOMPATIBLE = "ModelIncompatible"
MARKER = "ModelIncompatible:"
"""Start of the server's message (``runtime.server.compatibility.MARKER``)."""
RECHECK_SECONDS = 15.0
"""How soon a Deployment with unready pods is looked at again: a crash does not change the
apps/v1 Deployment's status, so no event would bring it back."""


@dataclass(frozen=True)
class Refusal:
    """A serving pod's container that exited because of its model's library versions."""

    version: str
    """The ModelVersion the pod serves."""
    pod: str
    message: str


def refusal_of(pod: dict[str, object], version_label: str) -> Refusal | None:
    """The refusal a pod's first container reports, now or at its last exit.

    >>> pod = {"metadata": {"name": "p", "labels": {"v": "m-v2"}}, "status": {
    ...     "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}},
    ...         "lastState": {"terminated": {"exitCode": 3, "message": "ModelIncompatible: x"}}}]}}
    >>> refusal_of(pod, "v")
    Refusal(version='m-v2', pod='p', message='ModelIncompatible: x')
    """
    meta = pod.get("metadata")
    status = pod.get("status")
    if not isinstance(meta, dict) or not isinstance(status, dict):
        return None
    for container in status.get("containerStatuses") or []:
        for key in ("state", "lastState"):
            terminated = (container.get(key) or {}).get("terminated") or {}
            message = str(terminated.get("message") or "")
            at = message.find(MARKER)
            if at >= 0:
                version = str((meta.get("labels") or {}).get(version_label, ""))
                return Refusal(version, str(meta.get("name", "")), message[at:].strip()[:1000])
    return None


def with_incompatibility(
    status: DeploymentStatus, refusals: list[Refusal], *, generation: int, now: datetime
) -> DeploymentStatus:
    """``status`` with ModelIncompatible True while a pod refuses its model; False once none
    does (only when the condition was there before: healthy Deployments do not carry it)."""
    state: ConditionStatus
    if refusals:
        first = refusals[0]
        versions = sorted({r.version for r in refusals})
        state, reason = "True", "ScikitLearnVersionMismatch"
        message = f"{', '.join(versions)} cannot be served (pod {first.pod}): {first.message}"
    elif get_condition(status.conditions, MODEL_INCOMPATIBLE) is not None:
        state, reason, message = "False", "Compatible", "No serving pod refuses its model"
    else:
        return status
    conditions = set_condition(
        status.conditions,
        MODEL_INCOMPATIBLE,
        state,
        reason,
        message,
        now=now,
        generation=generation,
    )
    return status.model_copy(update={"conditions": conditions})


BACKEND_UNAVAILABLE = "BackendUnavailable"


def backend_refusal(dep: Deployment, mv: ModelVersion) -> str | None:
    """Why ``dep``'s ``spec.server.backend`` cannot serve ``mv``, or None when it can.

    Decided from the ModelVersion before any pod exists: a pod asked for the impossible would
    only crash-loop. ``auto`` serves every version.

    >>> from modelwerk.api.v1alpha1 import Deployment, ModelVersion
    >>> def mv(artifact, **spec):
    ...     spec = {"model": "m", "version": 1, "task": "regression", "artifact": artifact, **spec}
    ...     return ModelVersion.from_k8s({"metadata": {"name": "m-v1"}, "spec": spec})
    >>> def dep(backend):
    ...     spec = {"modelVersion": "m-v1", "server": {"backend": backend}}
    ...     return Deployment.from_k8s({"metadata": {"name": "d"}, "spec": spec})
    >>> onnx = mv({"uri": "file:///a/model.onnx", "sha256": "0" * 64, "format": "onnx"})
    >>> print(backend_refusal(dep("joblib"), onnx))
    ModelVersion m-v1 is an ONNX model (spec.artifact.format: onnx) with no scikit-learn pipeline: spec.server.backend joblib cannot serve it; use auto or onnx
    >>> backend_refusal(dep("auto"), onnx) is None and backend_refusal(dep("onnx"), onnx) is None
    True
    >>> joblib = mv({"uri": "file:///a/model.joblib", "sha256": "0" * 64})
    >>> print(backend_refusal(dep("onnx"), joblib))
    ModelVersion m-v1 has no verified compiled model (spec.compiled is absent): spec.server.backend onnx cannot serve it; use auto or joblib
    """
    backend, name = dep.spec.server.backend, mv.metadata.name
    if backend == "joblib" and mv.spec.artifact.format == "onnx":
        return (
            f"ModelVersion {name} is an ONNX model (spec.artifact.format: onnx) with no "
            "scikit-learn pipeline: spec.server.backend joblib cannot serve it; use auto or onnx"
        )
    compiled = mv.spec.compiled
    if (
        backend == "onnx"
        and mv.spec.artifact.format == "joblib"
        and not (compiled is not None and compiled.verified)
    ):
        why = "spec.compiled is absent" if compiled is None else compiled.reason or "unverified"
        return (
            f"ModelVersion {name} has no verified compiled model ({why}): "
            "spec.server.backend onnx cannot serve it; use auto or joblib"
        )
    return None
