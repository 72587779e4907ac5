"""Builders of objects and observations for the pure decision tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from modelwerk.builders.workload import WorkloadConfig

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
WORKLOAD = WorkloadConfig(image="modelwerk/runtime:test", image_pull_policy="Never")


def job(
    name: str, state: str, message: dict[str, Any] | str | None = None, exit_code: int = 0
) -> tuple[dict, list[dict]]:
    """A Job body in ``state`` and its pod with ``message`` as termination message."""
    conditions = {
        "Succeeded": [{"type": "Complete", "status": "True"}],
        "Failed": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
        ],
    }.get(state, [])
    body = {
        "metadata": {"name": name},
        "status": {
            "conditions": conditions,
            "active": 1 if state == "Running" else 0,
            "startTime": "2026-11-22T11:58:00Z",
            **({"completionTime": "2026-11-22T11:59:00Z"} if state == "Succeeded" else {}),
        },
    }
    pods = []
    if message is not None:
        text = message if isinstance(message, str) else json.dumps(message)
        pods.append(
            {
                "metadata": {"name": f"{name}-x", "labels": {"job-name": name}},
                "status": {
                    "containerStatuses": [
                        {
                            "state": {
                                "terminated": {
                                    "exitCode": exit_code,
                                    "message": text,
                                    "finishedAt": "2026-11-22T11:59:00Z",
                                }
                            }
                        }
                    ]
                },
            }
        )
    return body, pods


@pytest.fixture
def now() -> datetime:
    return NOW
