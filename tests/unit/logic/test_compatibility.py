"""The ModelIncompatible condition: read from crashed serving containers, cleared once none is."""

from __future__ import annotations

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1.deployment import DeploymentStatus
from modelwerk.logic.compatibility import refusal_of, with_incompatibility

from .conftest import NOW


def _pod(state: dict[str, object], last: dict[str, object] | None = None) -> dict[str, object]:
    status = {"state": state, **({"lastState": last} if last else {})}
    return {
        "metadata": {"name": "p-1", "labels": {"v": "m-v2"}},
        "status": {"containerStatuses": [status]},
    }


def test_a_refusal_is_read_from_the_current_or_last_termination() -> None:
    message = "modelwerk serve: ModelIncompatible: written by scikit-learn 1.4.0"
    now = _pod({"terminated": {"exitCode": 3, "message": message}})
    crashed = _pod(
        {"waiting": {"reason": "CrashLoopBackOff"}}, {"terminated": {"message": message}}
    )
    for pod in (now, crashed):
        refusal = refusal_of(pod, "v")
        assert refusal is not None and refusal.version == "m-v2"
        assert refusal.message.startswith("ModelIncompatible: written by")
    assert refusal_of(_pod({"terminated": {"exitCode": 1, "message": "other"}}), "v") is None
    assert refusal_of(_pod({"running": {}}), "v") is None


def test_the_condition_is_set_and_cleared() -> None:
    refusal = refusal_of(_pod({"terminated": {"message": "ModelIncompatible: x"}}), "v")
    assert refusal is not None
    status = with_incompatibility(DeploymentStatus(), [refusal], generation=1, now=NOW)
    condition = get_condition(status.conditions, "ModelIncompatible")
    assert condition is not None and condition.status == "True"
    assert condition.reason == "ScikitLearnVersionMismatch" and "m-v2" in condition.message
    cleared = with_incompatibility(status, [], generation=1, now=NOW)
    condition = get_condition(cleared.conditions, "ModelIncompatible")
    assert condition is not None and condition.status == "False"
    assert with_incompatibility(DeploymentStatus(), [], generation=1, now=NOW).conditions == []
