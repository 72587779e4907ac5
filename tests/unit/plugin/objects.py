"""Representative modelwerk Deployments as the API server returns them (camelCase JSON), at the
states a person steering a rollout sees: a canary at each of its steps, a blue-green rollout
waiting for promotion, an aborted rollout, and a fresh object the operator has not seen yet.

Shapes and messages follow what the operator writes (modelwerk.logic.rollout): the step weight
is recorded once its pods are Ready, and an abort ends the rollout (no canary version or step
index) but keeps its analysis runs."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2026, 11, 22, 10, 15, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


CANARY_STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"pause": {}},
    {"setWeight": 50},
    {"analysis": {}},
    {"pause": {"durationSeconds": 120}},
]


def _meta(name: str, generation: int = 2) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "demo",
        "uid": "0b0c2f7e-3d7a-4bb0-9d0e-6a0d6f9f3b11",
        "generation": generation,
        "resourceVersion": "4711",
        "creationTimestamp": ago(3 * 86400),
    }


def fresh() -> dict[str, Any]:
    """Just applied; no operator has written a status."""
    return {
        "apiVersion": "modelwerk.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": _meta("iris", generation=1),
        "spec": {
            "modelVersion": "iris-classifier-v1",
            "replicas": 2,
            "strategy": {"canary": {"steps": copy.deepcopy(CANARY_STEPS)}},
        },
    }


def _condition(
    type_: str, status: str, reason: str, message: str, seconds: float
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": ago(seconds),
    }


def _canary_spec() -> dict[str, Any]:
    return {
        "modelSelector": {"model": "iris-classifier"},
        "replicas": 4,
        "strategy": {"canary": {"steps": copy.deepcopy(CANARY_STEPS)}},
        "analysis": {
            "intervalSeconds": 30,
            "count": 3,
            "checks": [
                {"metric": "errorRate", "max": 0.01},
                {"metric": "latency", "quantile": 0.99, "max": 0.25},
            ],
        },
        "monitoring": {"drift": {"method": "psi", "threshold": 0.2}},
    }


# What each step leaves in the status: phase, reason, message, weights asked/actual.
_AT_STEP: list[tuple[str, str, str, int | None, int]] = [
    (
        "Progressing",
        "RollingOut",
        "step 1/5: starting 1 pod(s) of iris-classifier-v2 for 20%",
        None,
        0,
    ),
    ("Paused", "PausedByStep", "step 2/5: paused at 20% until promoted", 20, 20),
    (
        "Progressing",
        "RollingOut",
        "step 3/5: starting 2 pod(s) of iris-classifier-v2 for 50%",
        20,
        20,
    ),
    ("Progressing", "AnalysisRunning", "Analysis step-4: measuring", 50, 50),
    ("Paused", "PausedByStep", "step 5/5: paused at 50% for 120s", 50, 50),
]


def canary_at(step: int) -> dict[str, Any]:
    """A canary from v1 to v2 at ``step`` (0-based) of CANARY_STEPS."""
    phase, reason, message, asked, actual = _AT_STEP[step]
    status: dict[str, Any] = {
        "observedGeneration": 2,
        "phase": phase,
        "message": message,
        "model": "iris-classifier",
        "strategy": "Canary",
        "stableVersion": "iris-classifier-v1",
        "canaryVersion": "iris-classifier-v2",
        "currentStepIndex": step,
        "actualWeight": actual,
        "replicas": 5,
        "readyReplicas": 5 if actual == asked else 4,
        "rolloutStartTime": ago(600),
        "progressTime": ago(30),
        "conditions": [
            _condition("Ready", "False", reason, message, 600),
            _condition("Available", "True", reason, message, 86400),
            _condition("Degraded", "False", reason, message, 86400),
            _condition("Progressing", "True", reason, message, 600),
        ],
        "endpoints": {
            "stable": "http://iris.demo.svc:80",
            "canary": "http://iris-canary.demo.svc:80",
        },
        "drift": {"score": 0.07, "feature": "petal length (cm)", "measuredTime": ago(45)},
        "history": [
            {"version": "iris-classifier-v2", "outcome": "Progressing", "startTime": ago(600)},
            {
                "version": "iris-classifier-v1",
                "outcome": "Promoted",
                "startTime": ago(86400 + 300),
                "finishTime": ago(86400),
                "message": "all steps passed",
            },
        ],
    }
    if asked is not None:
        status["canaryWeight"] = asked
    if phase == "Paused" and step == 4:
        status["pauseStartTime"] = ago(75)
    if step == 1:
        status["pauseStartTime"] = ago(300)
    if step >= 3:
        measurements = [
            {"metric": "errorRate", "value": 0.002, "phase": "Successful", "time": ago(60)},
            {"metric": "latency", "value": 0.181, "phase": "Successful", "time": ago(60)},
        ]
        if step == 4:
            measurements += [
                {"metric": "errorRate", "value": 0.001, "phase": "Successful", "time": ago(30)},
                {"metric": "latency", "value": 0.176, "phase": "Successful", "time": ago(30)},
            ]
        status["analysisRuns"] = [
            {
                "name": "step-4",
                "phase": "Running" if step == 3 else "Successful",
                "startTime": ago(95),
                "measurements": measurements,
            }
        ]
    return {
        "apiVersion": "modelwerk.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": _meta("iris"),
        "spec": _canary_spec(),
        "status": status,
    }


def blue_green_waiting() -> dict[str, Any]:
    """v2 is Ready on green behind the preview Service; autoPromote is off."""
    message = "fraud-v2 is Ready behind the preview Service; promote to switch"
    return {
        "apiVersion": "modelwerk.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": _meta("fraud") | {"namespace": "payments"},
        "spec": {
            "modelVersion": "fraud-v2",
            "replicas": 3,
            "strategy": {"blueGreen": {"autoPromote": False, "scaleDownDelaySeconds": 60}},
        },
        "status": {
            "observedGeneration": 2,
            "phase": "Paused",
            "message": message,
            "model": "fraud",
            "strategy": "BlueGreen",
            "stableVersion": "fraud-v1",
            "canaryVersion": "fraud-v2",
            "activeColor": "blue",
            "replicas": 6,
            "readyReplicas": 6,
            "rolloutStartTime": ago(240),
            "conditions": [
                _condition("Ready", "False", "WaitingForPromotion", message, 120),
                _condition("Available", "True", "WaitingForPromotion", message, 7200),
                _condition("Progressing", "True", "WaitingForPromotion", message, 120),
            ],
            "endpoints": {
                "stable": "http://fraud.payments.svc:80",
                "preview": "http://fraud-preview.payments.svc:80",
            },
        },
    }


def aborted() -> dict[str, Any]:
    """The step-4 analysis failed: the rollout aborted and all traffic is back on v1."""
    obj = canary_at(3)
    reason = "Analysis step-4 failed: errorRate 0.042 above 0.01"
    for ended in ("canaryVersion", "currentStepIndex", "canaryWeight", "rolloutStartTime"):
        del obj["status"][ended]
    obj["status"] |= {
        "phase": "Aborted",
        "message": reason,
        "actualWeight": 0,
        "readyReplicas": 4,
        "replicas": 4,
        "abortedVersion": "iris-classifier-v2",
        "abortedGeneration": 2,
        "lastCommand": "pause@20261122T100000.000000Z",
        "conditions": [
            _condition("Ready", "False", "AnalysisFailed", reason, 20),
            _condition("Available", "True", "AnalysisFailed", reason, 86400),
            _condition("Degraded", "True", "AnalysisFailed", reason, 20),
            _condition("Progressing", "False", "AnalysisFailed", reason, 20),
        ],
        "analysisRuns": [
            {
                "name": "step-4",
                "phase": "Failed",
                "startTime": ago(95),
                "message": reason,
                "measurements": [
                    {"metric": "errorRate", "value": 0.042, "phase": "Failed", "time": ago(20)},
                    {"metric": "latency", "value": 0.19, "phase": "Successful", "time": ago(20)},
                ],
            }
        ],
        "history": [
            {
                "version": "iris-classifier-v2",
                "outcome": "Aborted",
                "startTime": ago(600),
                "finishTime": ago(20),
                "message": reason,
            },
            *obj["status"]["history"][1:],
        ],
    }
    obj["metadata"]["annotations"] = {"modelwerk.dev/command": "pause@20261122T100000.000000Z"}
    return obj
