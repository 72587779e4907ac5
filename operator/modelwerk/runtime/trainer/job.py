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
``MODELWERK_RUN``                   the run's fingerprint (keys ``runs/…/<run>/``; optional)
``MODELWERK_MLFLOW_*``              the operator's default tracking server (optional; see
                                    :mod:`~modelwerk.runtime.trainer.tracking`)
==================================  ==========================================================

Result on success (≤ 4 KiB, camelCase)::

    {"ok": true, "task", "metrics": {…}, "bestParams": {…} | null,
     "artifact": {"uri", "sha256", "sizeBytes", "format", "frameworkVersion"}, "modelCardUri",
     "signature": {"inputs": [[name, datatype]], "outputs": [[name, datatype, shape]],
                   "classes": […]},
     "gates": [{"metric", "operator", "threshold", "value", "passed"}], "gatesPassed",
     "datasetVersion", "durationSeconds", "fitSeconds", "warnings": […],
     "compiled": {"verified", "reason", "uri", "sha256", "converter", "opset", "precision",
                  "rows", "holdoutRows", "labelAgreement", "maxProbabilityDiff", …}}
     "fairness": {…}, "robustness": {…}, "trials": [best 5], "trialCount", "trialsUri",
     "environment": {"python", "libraries"}, "tracking": {"mlflow": {…}} | null,
     "trackingError": "…" | null}

and on failure ``{"ok": false, "reason": "<Reason>", "error": "…", "durationSeconds"}`` (see
:mod:`~modelwerk.runtime.trainer.errors` for reasons and exit codes). Gates are evaluated and
reported but do not change the exit code here: the operator re-checks them and decides.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from modelwerk.api.v1alpha1.champion import ChampionResult
from modelwerk.api.v1alpha1.evaluation import gate_figures
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.runtime import publish, storage, termination
from modelwerk.runtime.artifacts import CompiledArtifact, DatasetLineage, TrialsRef
from modelwerk.runtime.data import snapshot
from modelwerk.runtime.trainer import (
    artifact,
    champion,
    fairness,
    robustness,
    signature,
    tracking,
    train,
    trials,
)
from modelwerk.runtime.trainer.compile import Compilation, compile_pipeline
from modelwerk.runtime.trainer.errors import EXIT_FAILED, EXIT_OK, TrainingFailure

TRAININGJOB_ENV = "MODELWERK_TRAININGJOB"
DATASET_NAME_ENV = "MODELWERK_DATASET_NAME"
DATASET_VERSION_ENV = "MODELWERK_DATASET_VERSION"
DATASET_SNAPSHOT_ENV = "MODELWERK_DATASET_SNAPSHOT_URI"
DATASET_TARGET_ENV = "MODELWERK_DATASET_TARGET"
DATASET_PROFILE_ENV = "MODELWERK_DATASET_PROFILE_URI"
RUN_ENV = "MODELWERK_RUN"
STATUS_TRIALS = 5


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


Published = tuple["train.Trained", "artifact.Published", TrialsRef | None]
"""What a run produced: the model, where it was published, its search's trial table."""


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]
    exit_code: int
    trained: train.Trained | None = None

    @property
    def ok(self) -> bool:
        return bool(self.result.get("ok"))


_STORE_FAILURES: tuple[type[Exception], ...] = (publish.PublishError, *storage.STORE_ERRORS)


def run(job: TrainingJob, data: DatasetInput, root: str) -> Outcome:
    """Train ``job`` on ``data``; every failure becomes an Outcome with a reason."""
    started = time.perf_counter()

    def train_and_publish() -> Published:
        check_model_name(job)
        frame = load(data)
        directory = run_directory(job, root)
        searched = None
        if job.spec.search is not None and job.spec.search.parallel:
            # The search ran in its own pods; their records are the search's result.
            searched = trials.read(trials.table(directory))
        trained = train.fit(job.spec, frame, data.target, searched)
        trained.champion = challenge(job, frame, data.target, trained)
        trials_ref = None
        if trained.trials:
            table = trials.table(directory)
            if searched is None:
                table = trials.write(trained.trials, directory)
            trials_ref = TrialsRef(
                uri=table,
                count=len(trained.trials),
                scoring=trained.trials[0].scoring,
                best=[t.summary() for t in trained.trials[:STATUS_TRIALS]],
            )
        # Compiled only for a model that will be registered: a rejected run needs no model.onnx.
        compilation = (
            compile_pipeline(
                trained.model, frame, trained.signature, trained.task, holdout=trained.holdout
            )
            if all(g["passed"] for g in gate_results(job, trained))
            and (trained.champion is None or trained.champion.passed)
            else None
        )
        estimator = job.spec.estimator.name if job.spec.estimator else "trainer"
        published = publish_model(
            job, data, root, trained, estimator, started, trials_ref, compilation
        )
        return trained, published, trials_ref

    return guarded(job, data, started, train_and_publish)


def challenge(
    job: TrainingJob, frame: pd.DataFrame, target: str, trained: train.Trained
) -> ChampionResult | None:
    """The champion (spec.champion) on the trained model's exact holdout rows."""
    rows = frame.loc[trained.holdout]
    return champion.compare(
        job.spec,
        champion.ChampionInput.from_env(),
        trained.metrics,
        rows.drop(columns=[target]),
        rows[target],
    )


def check_model_name(job: TrainingJob) -> None:
    try:
        publish.segment(job.spec.model.name)
    except publish.PublishError as error:
        raise TrainingFailure("InvalidSpec", str(error)) from error


def publish_model(
    job: TrainingJob,
    data: DatasetInput,
    root: str,
    trained: train.Trained,
    estimator: str,
    started: float,
    trials_ref: TrialsRef | None = None,
    compilation: Compilation | None = None,
    onnx: artifact.OnnxArtifact | None = None,
) -> artifact.Published:
    return artifact.write(
        trained,
        root=publish.root_uri(root),
        model=job.spec.model.name,
        estimator=estimator,
        dataset=DatasetLineage(name=data.name, version=data.version, profile_uri=data.profile_uri),
        job=job.metadata,
        duration_seconds=time.perf_counter() - started,
        compilation=compilation,
        trials=trials_ref,
        onnx=onnx,
    )


def guarded(
    job: TrainingJob,
    data: DatasetInput,
    started: float,
    work: Callable[[], Published],
) -> Outcome:
    """Run ``work`` (train or evaluate, then publish) and report; every failure an Outcome."""
    try:
        trained, published, trials_ref = work()
    except TrainingFailure as failure:
        return _failed(failure.reason, failure.message, failure.exit_code, started)
    except _STORE_FAILURES as error:
        return _failed(
            "ArtifactStoreError", f"{type(error).__name__}: {error}", EXIT_FAILED, started
        )
    except Exception as error:  # the pod must always leave a result behind
        return _failed("Internal", f"{type(error).__name__}: {error}", EXIT_FAILED, started)
    return Outcome(report(job, data, trained, published, trials_ref, started), EXIT_OK, trained)


def report(
    job: TrainingJob,
    data: DatasetInput,
    trained: train.Trained,
    published: artifact.Published,
    trials_ref: TrialsRef | None,
    started: float,
) -> dict[str, Any]:
    """The result of a published model (see the module docstring), tracked if configured."""
    gates = gate_results(job, trained)
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
            "format": card.artifact.format,
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
        "environment": {
            "python": card.libraries.get("python"),
            "libraries": {k: v for k, v in card.libraries.items() if k != "python"},
        },
    }
    if card.compiled is not None:
        result["compiled"] = compiled_result(card.compiled)
    if trained.champion is not None:
        result["champion"] = trained.champion.to_k8s()
    if trained.fairness is not None:
        result["fairness"] = fairness.summary(trained.fairness)
    if trained.robustness is not None:
        result["robustness"] = robustness.summary(trained.robustness)
    if trials_ref is not None:
        result |= {"trials": trials_ref.best, "trialCount": trials_ref.count}
        result["trialsUri"] = trials_ref.uri
    target = tracking.target(job.spec.tracking)
    if target is not None:
        logged = tracking.log_run(target, job, data, trained, card, published.card_uri, gates)
        result["tracking"] = logged.record
        result["trackingError"] = logged.error
    result["durationSeconds"] = round(time.perf_counter() - started, 3)
    return result


def gate_results(job: TrainingJob, trained: train.Trained) -> list[dict[str, Any]]:
    """Every gate against the run's figures (holdout metrics, fairness, robustness)."""
    figures = gate_figures(
        trained.metrics,
        trained.fairness.figures if trained.fairness else None,
        trained.robustness.figures if trained.robustness else None,
    )
    return [gate.result(figures).model_dump() for gate in job.spec.gates]


def compiled_result(card: CompiledArtifact) -> dict[str, Any]:
    """The compilation in the ModelVersion's ``spec.compiled`` shape (camelCase)."""
    snapshot = card.snapshot
    out: dict[str, Any] = {
        "verified": card.verified,
        "reason": card.reason,
        "uri": card.uri,
        "sha256": card.sha256,
        "converter": card.converter,
        "opset": card.opsets.get(""),
        "precision": card.precision,
        "rows": snapshot.rows if snapshot else None,
        "holdoutRows": card.holdout.rows if card.holdout else None,
    }
    if snapshot is not None:
        out |= snapshot.model_dump(by_alias=True, exclude={"rows"})
    return {k: v for k, v in out.items() if v is not None}


def run_directory(job: TrainingJob, root: str) -> str:
    """The run-scoped directory (``runs/<ns>/<tj>/<uid>/<run>``) of this pod's run."""
    meta = job.metadata
    return trials.run_dir(
        publish.root_uri(root),
        meta.namespace or "default",
        meta.name,
        meta.uid,
        os.environ.get(RUN_ENV, ""),
    )


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
        lists=(
            "warnings",
            "robustness.mostSensitive",
            "trials",
            "fairness.groups",
            "signature.inputs",
            "signature.classes",
        ),
        droppable=(
            "warnings",
            "bestParams",
            "trials",
            "environment",
            "fairness",
            "robustness",
            "compiled",
        ),
    )


def _failed(reason: str, error: str, exit_code: int, started: float) -> Outcome:
    result = {
        "ok": False,
        "reason": reason,
        "error": error,
        "durationSeconds": round(time.perf_counter() - started, 3),
    }
    return Outcome(result, exit_code)
