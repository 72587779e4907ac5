"""Tagging an MLflow run with the ModelVersion it became.

The trainer logs the run before the operator numbers the version (the gates decide first), so
the run cannot name it. The ModelVersion's verification pod closes the loop: when the version
records an MLflow run (``spec.tracking.mlflow``), it sets ``modelwerk.modelVersion`` (the
ModelVersion's name) and ``modelwerk.modelVersionNumber`` on that run, with the credentials the
trainer had (the operator puts the same Secret's keys in the pod's environment; it never reads
them itself).

Tagging is a side job of verification, never its verdict: every outcome is a small report for
the ModelVersion's ``Tracked`` condition, and nothing here raises.
"""

from __future__ import annotations

import time

from modelwerk.runtime.mlflow_rest import Client, MlflowError, MlflowUnreachable

VERSION_TAG = "modelwerk.modelVersion"
NUMBER_TAG = "modelwerk.modelVersionNumber"
ATTEMPTS = 3
PAUSE_SECONDS = 1.0
"""A tracker that is restarting gets a few seconds (1 s, then 2 s); one that answered with a
refusal is not asked again."""
_ERROR_CHARS = 500


def tag_run(tracking_uri: str, run_id: str, model_version: str, number: int) -> dict[str, object]:
    """``{"tagged": True}``, or ``tagged`` False with a reason (``TrackingUnavailable``: no
    answer; ``TagRefused``: the server answered with an error) and the error."""
    client = Client(tracking_uri)
    tags = {VERSION_TAG: model_version, NUMBER_TAG: str(number)}
    unreachable: MlflowUnreachable | None = None
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(PAUSE_SECONDS * attempt)
        try:
            client.log_batch(run_id, tags=tags)
            return {"tagged": True}
        except MlflowUnreachable as error:
            unreachable = error
        except (MlflowError, ValueError) as error:  # ValueError: an answer that is not JSON
            return _untagged("TagRefused", error)
    return _untagged("TrackingUnavailable", unreachable)


def _untagged(reason: str, error: object) -> dict[str, object]:
    return {"tagged": False, "reason": reason, "error": str(error)[:_ERROR_CHARS]}
