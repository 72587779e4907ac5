"""The two steps in the trainer pod: ``prepare`` before the user's container, ``upload`` after.

``prepare`` reads the validated snapshot (its content checked against the version), cuts the
run's split exactly as the built-in trainer does (``spec.split``: test size, seed,
stratification) and writes only the training part, features and target, to
``$MODELWERK_BYO_INPUT_DIR/train.parquet``.

``upload`` runs as a native sidecar: it starts before the user's container and waits for
SIGTERM, which the kubelet sends once the user's container has exited. It then copies
``model.joblib`` or ``model.onnx`` (exactly one of them) from the output directory to the run's
directory in the store (``runs/…/<run>/trainer/model.joblib``), hashing it on the way, and
reports::

    {"ok": true, "format": "joblib" | "onnx", "uri": "…", "sha256": "…", "sizeBytes": n}
    {"ok": false, "reason": "NoModel" | "AmbiguousModel", "error": "…"}

in its termination message, which the operator passes to the evaluation Job.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path
from typing import Any

from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.runtime import storage
from modelwerk.runtime.trainer import job as train_job
from modelwerk.runtime.trainer import train
from modelwerk.runtime.trainer.errors import TrainingFailure

INPUT_DIR_ENV = "MODELWERK_BYO_INPUT_DIR"
OUTPUT_DIR_ENV = "MODELWERK_BYO_OUTPUT_DIR"
READY_FILE_ENV = "MODELWERK_BYO_READY_FILE"
TRAIN_FILE = "train.parquet"
MODEL_FILE = "model.joblib"
MODEL_FILES = {"joblib": MODEL_FILE, "onnx": "model.onnx"}
"""What a trainer may write, by format: one of the two."""
TRAINER_DIR = "trainer"
_CHUNK = 1 << 20


def directory(env: str) -> Path:
    value = os.environ.get(env)
    if not value:
        raise TrainingFailure("InvalidInput", f"{env} is not set")
    return Path(value)


def prepare(job: TrainingJob, data: train_job.DatasetInput, input_dir: Path) -> dict[str, Any]:
    """Write the training part of the run's split for the user's container."""
    frame = train_job.load(data)
    if data.target not in frame.columns:
        raise TrainingFailure("DatasetInvalid", f"the snapshot has no column {data.target!r}")
    columns = [c for c in frame.columns if c != data.target]
    x_train, _, y_train, _ = train.split(
        frame[columns], frame[data.target], job.spec.task, job.spec
    )
    part = x_train.assign(**{data.target: y_train}).reset_index(drop=True)
    input_dir.mkdir(parents=True, exist_ok=True)
    part.to_parquet(input_dir / TRAIN_FILE, index=False)
    return {"ok": True, "rows": len(part), "columns": len(columns)}


def wait_for_exit() -> None:
    """Block until SIGTERM (or SIGINT): the kubelet's word that the trainer has exited.

    The signals are blocked first, then the ready file is written: the sidecar's startup
    probe waits for that file, and the kubelet starts the trainer only after it, so a trainer
    that exits at once cannot stop this process before it is listening.
    """
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    ready = os.environ.get(READY_FILE_ENV)
    if ready:
        Path(ready).touch()
    signal.sigwait(stop)


def upload(output_dir: Path, run_directory: str) -> dict[str, Any]:
    """Hash and copy the trainer's model to the run's directory in the store."""
    written = [name for name in MODEL_FILES.values() if (output_dir / name).is_file()]
    if len(written) != 1:
        found = sorted(p.name for p in output_dir.iterdir()) if output_dir.is_dir() else []
        wrote = f"both {' and '.join(written)}" if written else "neither"
        return {
            "ok": False,
            "reason": "NoModel" if not written else "AmbiguousModel",
            "error": f"the trainer wrote {wrote} of {' or '.join(MODEL_FILES.values())} to its "
            f"output directory, which needs exactly one "
            f"(found: {', '.join(found[:10]) or 'nothing'})",
        }
    (name,) = written
    model_format = next(f for f, file in MODEL_FILES.items() if file == name)
    source = output_dir / name
    target = storage.join(run_directory, TRAINER_DIR, name)
    fs, path = storage.fs_and_path(storage.join(run_directory, TRAINER_DIR))
    fs.makedirs(path, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as reader, storage.open_uri(target, "wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            writer.write(chunk)
    return {
        "ok": True,
        "format": model_format,
        "uri": target,
        "sha256": digest.hexdigest(),
        "sizeBytes": size,
    }
