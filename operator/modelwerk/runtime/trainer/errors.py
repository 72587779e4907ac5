"""Why a training run failed, as one reason word the operator can act on, and the exit codes."""

from __future__ import annotations

from typing import Literal

Reason = Literal[
    "InvalidInput",
    "InvalidSpec",
    "InvalidParams",
    "EstimatorNotAllowed",
    "DatasetUnreadable",
    "DatasetInvalid",
    "TrainingError",
    "ModelRejected",
    "ChampionUnloadable",
    "ChampionIncompatible",
    "ArtifactStoreError",
    "Internal",
]

EXIT_OK = 0
"""Trained, evaluated and published; gate results are reported, the operator enforces them."""
EXIT_FAILED = 1
"""TrainingError, ModelRejected (a trainer container's model that cannot be loaded safely,
predict the holdout or be served), ArtifactStoreError or Internal: the run broke."""
EXIT_DATA = 2
"""DatasetUnreadable or DatasetInvalid: the data is the problem."""
EXIT_CONFIG = 3
"""InvalidInput, InvalidSpec, InvalidParams or EstimatorNotAllowed: fix the spec; a retry
would fail the same way."""
EXIT_REJECTED = 4
"""Local mode only: the model was trained and written, but a gate failed."""

_EXIT_CODES: dict[str, int] = {
    "DatasetUnreadable": EXIT_DATA,
    "DatasetInvalid": EXIT_DATA,
    "InvalidInput": EXIT_CONFIG,
    "InvalidSpec": EXIT_CONFIG,
    "InvalidParams": EXIT_CONFIG,
    "EstimatorNotAllowed": EXIT_CONFIG,
}


class TrainingFailure(Exception):
    """A run that cannot succeed, with the reason reported to the operator."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES.get(self.reason, EXIT_FAILED)
