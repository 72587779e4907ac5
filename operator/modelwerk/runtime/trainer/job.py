"""One training run in the pod: read the snapshot, train, publish, report.

Inputs (set by the operator on the training container):

==================================  ==========================================================
``MODELWERK_TRAININGJOB``           the TrainingJob object as JSON (metadata + spec)
``MODELWERK_DATASET_NAME``          the Dataset's name
``MODELWERK_DATASET_VERSION``       ``sha256:…`` of the validated version to train on
``MODELWERK_DATASET_SNAPSHOT_URI``  its snapshot (parquet); re-hashed and compared with VERSION
``MODELWERK_DATASET_TARGET``        the label column
``MODELWERK_DATASET_PROFILE_URI``   its reference profile (optional; recorded as lineage)
``MODELWERK_ARTIFACT_ROOT``         where ``models/<model>/<sha256>/`` is written
==================================  ==========================================================

Result on success (≤ 4 KiB, camelCase)::

    {"ok": true, "task", "metrics": {…}, "bestParams": {…} | null,
     "artifact": {"uri", "sha256", "sizeBytes", "frameworkVersion"}, "modelCardUri",
     "signature": {"inputs": [[name, datatype]], "outputs": [[name, datatype, shape]],
                   "classes": […]},
     "gates": [{"metric", "operator", "threshold", "value", "passed"}], "gatesPassed",
     "datasetVersion", "durationSeconds", "fitSeconds", "warnings": […]}

and on failure ``{"ok": false, "reason": "<Reason>", "error": "…", "durationSeconds"}`` (see
:mod:`~modelwerk.runtime.trainer.errors` for reasons and exit codes). Gates are evaluated and
reported but do not change the exit code here: the operator re-checks them and decides.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.runtime import publish, termination
from modelwerk.runtime.artifacts import DatasetLineage
from modelwerk.runtime.data import snapshot
from modelwerk.runtime.trainer import artifact, signature, train
from modelwerk.runtime.trainer.errors import EXIT_FAILED, EXIT_OK, TrainingFailure

TRAININGJOB_ENV = "MODELWERK_TRAININGJOB"
DATASET_NAME_ENV = "MODELWERK_DATASET_NAME"
DATASET_VERSION_ENV = "MODELWERK_DATASET_VERSION"
DATASET_SNAPSHOT_ENV = "MODELWERK_DATASET_SNAPSHOT_URI"
DATASET_TARGET_ENV = "MODELWERK_DATASET_TARGET"
DATASET_PROFILE_ENV = "MODELWERK_DATASET_PROFILE_URI"


@dataclass(frozen=True)
class DatasetInput:
    """The validated dataset version a run trains on."""

    name: str
    version: str
    snapshot_uri: str
    target: str
    profile_uri: str | None = None

    @classmethod
    def from_env(cls) -> DatasetInput:
        values = {
            var: os.environ.get(var, "")
            for var in (
                DATASET_NAME_ENV,
                DATASET_VERSION_ENV,
                DATASET_SNAPSHOT_ENV,
                DATASET_TARGET_ENV,
            )
        }
        missing = [var for var, value in values.items() if not value]
        if missing:
            raise TrainingFailure("InvalidInput", f"not set: {', '.join(missing)}")
        return cls(
            name=values[DATASET_NAME_ENV],
            version=values[DATASET_VERSION_ENV],
            snapshot_uri=values[DATASET_SNAPSHOT_ENV],
            target=values[DATASET_TARGET_ENV],
            profile_uri=os.environ.get(DATASET_PROFILE_ENV) or None,
        )


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]
    exit_code: int
    trained: train.Trained | None = None

    @property
    def ok(self) -> bool:
        return bool(self.result.get("ok"))


def run(job: TrainingJob, data: DatasetInput, root: str) -> Outcome:
    """Train ``job`` on ``data``; every failure becomes an Outcome with a reason."""
    started = time.perf_counter()
    try:
        try:
            publish.segment(job.spec.model.name)
        except publish.PublishError as error:
            raise TrainingFailure("InvalidSpec", str(error)) from error
        frame = load(data)
        trained = train.fit(job.spec, frame, data.target)
        published = artifact.write(
            trained,
            root=publish.root_uri(root),
            model=job.spec.model.name,
            estimator=job.spec.estimator.name,
            dataset=DatasetLineage(
                name=data.name, version=data.version, profile_uri=data.profile_uri
            ),
            job=job.metadata,
            duration_seconds=time.perf_counter() - started,
        )
    except TrainingFailure as failure:
        return _failed(failure.reason, failure.message, failure.exit_code, started)
    except (publish.PublishError, OSError) as error:
        return _failed(
            "ArtifactStoreError", f"{type(error).__name__}: {error}", EXIT_FAILED, started
        )
    except Exception as error:  # the pod must always leave a result behind
        return _failed("Internal", f"{type(error).__name__}: {error}", EXIT_FAILED, started)

    gates = [
        {
            "metric": gate.metric,
            "operator": gate.operator,
            "threshold": gate.threshold,
            "value": trained.metrics.get(gate.metric),
            "passed": gate.metric in trained.metrics and gate.passes(trained.metrics[gate.metric]),
        }
        for gate in job.spec.gates
    ]
    card = published.card
    result: dict[str, Any] = {
        "ok": True,
        "task": trained.task,
        "metrics": trained.metrics,
        "bestParams": trained.best_params,
        "artifact": {
            "uri": card.artifact.uri,
            "sha256": card.artifact.sha256,
            "sizeBytes": card.artifact.size_bytes,
            "frameworkVersion": card.artifact.framework_version,
        },
        "modelCardUri": published.card_uri,
        "signature": signature.compact(trained.signature),
        "gates": gates,
        "gatesPassed": all(g["passed"] for g in gates),
        "datasetVersion": data.version,
        "durationSeconds": round(time.perf_counter() - started, 3),
        "fitSeconds": round(trained.fit_seconds, 3),
        "warnings": trained.warnings,
    }
    return Outcome(result, EXIT_OK, trained)


def load(data: DatasetInput) -> pd.DataFrame:
    """The snapshot, verified against the version it claims to be."""
    try:
        frame = snapshot.read(data.snapshot_uri)
    except Exception as error:  # any reader failure means the data cannot be used
        raise TrainingFailure(
            "DatasetUnreadable", f"cannot read {data.snapshot_uri}: {type(error).__name__}: {error}"
        ) from error
    # The version is what lineage promises; a snapshot that changed since validation would
    # train a model whose recorded dataset version is a lie.
    actual = snapshot.version_of(frame)
    if actual != data.version:
        raise TrainingFailure(
            "DatasetUnreadable",
            f"snapshot {data.snapshot_uri} has content {actual}, not the expected {data.version}",
        )
    return frame


def compact(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` cut to the termination-message limit; the full details are in the card."""
    return termination.fit(
        result,
        lists=("warnings", "signature.inputs", "signature.classes"),
        droppable=("warnings", "bestParams"),
    )


def _failed(reason: str, error: str, exit_code: int, started: float) -> Outcome:
    result = {
        "ok": False,
        "reason": reason,
        "error": error,
        "durationSeconds": round(time.perf_counter() - started, 3),
    }
    return Outcome(result, exit_code)
