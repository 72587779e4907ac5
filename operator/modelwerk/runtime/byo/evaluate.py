"""The evaluation Job of a bring-your-own-trainer run: modelwerk grades the model itself.

Inputs: the training Job's (``MODELWERK_TRAININGJOB``, ``MODELWERK_DATASET_*``,
``MODELWERK_ARTIFACT_ROOT``, ``MODELWERK_RUN``) plus ``MODELWERK_BYO_MODEL_URI`` and
``MODELWERK_BYO_SHA256``, which the upload step reported when the model left the trainer.

Steps: verify the snapshot; cut the same split (the holdout was never handed out); check the
model's hash and unpickle it with the restricted loader (:mod:`.safe_load`), or, for a
``model.onnx`` (``MODELWERK_BYO_FORMAT=onnx``), open it with the model server's ONNX backend
(:mod:`.onnx_model`); score it on the holdout with the built-in trainer's metrics, fairness and
robustness; publish it like a trained model (content-addressed, with its card; an ONNX model
as the artifact itself, ``format: onnx``); load the published artifact through the model
server's own load path (hash check, version check, unpickle or ONNX session, warm-up predict).
The result has the training Job's shape, so the operator gates and registers it the same way,
plus ``trainer: {modelSha256, format}``.
"""

from __future__ import annotations

import os
import time

from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.runtime.byo import onnx_model, safe_load
from modelwerk.runtime.server.model import load_model
from modelwerk.runtime.server.settings import ServerSettings
from modelwerk.runtime.trainer import artifact, signature, train
from modelwerk.runtime.trainer import job as train_job
from modelwerk.runtime.trainer.errors import TrainingFailure

MODEL_URI_ENV = "MODELWERK_BYO_MODEL_URI"
SHA256_ENV = "MODELWERK_BYO_SHA256"
FORMAT_ENV = "MODELWERK_BYO_FORMAT"
"""joblib (the default) or onnx: what the upload step found in the output directory."""
FORMATS = ("joblib", "onnx")


def run(job: TrainingJob, data: train_job.DatasetInput, root: str) -> train_job.Outcome:
    started = time.perf_counter()
    assert job.spec.trainer is not None
    trainer = job.spec.trainer
    spec = job.spec

    def evaluate_and_publish() -> train_job.Published:
        train_job.check_model_name(job)
        uri, sha256 = os.environ.get(MODEL_URI_ENV, ""), os.environ.get(SHA256_ENV, "")
        if not uri or not sha256:
            raise TrainingFailure("InvalidInput", f"{MODEL_URI_ENV} and {SHA256_ENV} must be set")
        model_format = os.environ.get(FORMAT_ENV) or "joblib"
        if model_format not in FORMATS:
            raise TrainingFailure(
                "InvalidInput", f"{FORMAT_ENV} is {model_format!r}, not one of {FORMATS}"
            )
        frame = train_job.load(data)
        columns = [c for c in frame.columns if c != data.target]
        x, y = frame[columns], frame[data.target]
        x_train, x_test, y_train, y_test = train.split(x, y, spec.task, spec)
        file = f"model.{model_format}"
        try:
            raw = safe_load.read_verified(uri, sha256)
            model = safe_load.loads(raw) if model_format == "joblib" else None
        except safe_load.UnsafeModel as error:
            raise TrainingFailure("ModelRejected", f"{file}: {error}") from error
        onnx = None
        if model is None:  # ONNX: the server's own backend predicts (onnx_model)
            loaded = onnx_model.load(raw, x, y_train, spec.task)
            model, model_signature = loaded.model, loaded.signature
            onnx = artifact.OnnxArtifact(raw, loaded.framework_version)
        if not callable(getattr(model, "predict", None)):
            raise TrainingFailure("ModelRejected", f"{type(model).__name__} has no predict()")
        try:
            scores, details, fair, robust = train.assess(
                spec, spec.task, model, frame, x_train, x_test, y_test
            )
            if onnx is None:
                model_signature = signature.build(x, model, spec.task)
        except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as error:
            raise TrainingFailure(
                "ModelRejected",
                f"the model cannot predict the holdout (columns {', '.join(columns[:20])}): "
                f"{type(error).__name__}: {error}",
            ) from error
        trained = train.Trained(
            model=model,
            task=spec.task,
            metrics=scores,
            params={},
            best_params=None,
            signature=model_signature,
            train_rows=len(x_train),
            test_rows=len(x_test),
            fit_seconds=0.0,
            details=details,
            fairness=fair,
            robustness=robust,
            holdout=list(x_test.index),
        )
        trained.champion = train_job.challenge(job, frame, data.target, trained)
        published = train_job.publish_model(
            job, data, root, trained, f"trainer:{trainer.image}", started, onnx=onnx
        )
        _check_serving(job, published)
        return trained, published, None

    outcome = train_job.guarded(job, data, started, evaluate_and_publish)
    if outcome.ok:
        outcome.result["trainer"] = {
            "modelSha256": os.environ[SHA256_ENV],
            "format": os.environ.get(FORMAT_ENV) or "joblib",
        }
    return outcome


def _check_serving(job: TrainingJob, published: artifact.Published) -> None:
    """Load the published artifact exactly as ``modelwerk serve`` will."""
    settings = ServerSettings(
        model_uri=published.card.artifact.uri,
        sha256=published.card.artifact.sha256,
        artifact_format=published.card.artifact.format,
        model_name=job.spec.model.name,
        model_card_uri=published.card_uri,
        drift_enabled=False,
    )
    try:
        load_model(settings)
    except Exception as error:  # ModelLoadError, IncompatibleModel or anything the load hits
        raise TrainingFailure(
            "ModelRejected", f"the model server cannot load the model: {error}"
        ) from error
