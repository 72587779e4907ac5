"""``modelwerk byo prepare|upload|evaluate``: the modelwerk containers of a trainer-image run.

All three read the TrainingJob from ``MODELWERK_TRAININGJOB`` and the store from
``MODELWERK_ARTIFACT_ROOT``; ``prepare`` and ``evaluate`` also read the dataset from the
``MODELWERK_DATASET_*`` variables (see :mod:`modelwerk.runtime.trainer.job`). Each writes a
compact JSON result to stdout and the termination message; exit codes as ``modelwerk train``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.runtime import inputs, publish, termination
from modelwerk.runtime.trainer import job as train_job
from modelwerk.runtime.trainer.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, TrainingFailure

USAGE = "usage: modelwerk byo {prepare|upload|evaluate}"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("prepare", "upload", "evaluate"):
        print(USAGE, file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else EXIT_CONFIG
    step = argv[0]
    if step == "upload":
        from modelwerk.runtime.byo import steps

        # Waiting comes first: the trainer runs meanwhile, and a bad setting must not make
        # this sidecar exit early (the kubelet would restart it while the trainer runs).
        steps.wait_for_exit()
    result, code = _run(step)
    if step == "evaluate":
        result = train_job.compact(result)
    print(termination.write(termination.fit(result)))
    return code


def _run(step: str) -> tuple[dict[str, Any], int]:
    from modelwerk.runtime.byo import steps

    try:
        job = inputs.from_env(train_job.TRAININGJOB_ENV, TrainingJob)
        root = os.environ.get(publish.ROOT_ENV)
        if not root:
            raise TrainingFailure("InvalidInput", f"{publish.ROOT_ENV} is not set")
        if job.spec.trainer is None:
            raise TrainingFailure("InvalidSpec", "the TrainingJob has no spec.trainer")
        if step == "upload":
            out = steps.directory(steps.OUTPUT_DIR_ENV)
            return steps.upload(out, train_job.run_directory(job, root)), EXIT_OK
        data = train_job.DatasetInput.from_env()
        if step == "prepare":
            return steps.prepare(job, data, steps.directory(steps.INPUT_DIR_ENV)), EXIT_OK
        from modelwerk.runtime.byo import evaluate

        outcome = evaluate.run(job, data, root)
        return outcome.result, outcome.exit_code
    except inputs.InputError as error:
        return {"ok": False, "reason": "InvalidInput", "error": str(error)}, EXIT_CONFIG
    except TrainingFailure as failure:
        return {"ok": False, "reason": failure.reason, "error": failure.message}, failure.exit_code
    except Exception as error:  # every step leaves a result behind
        return {"ok": False, "reason": "Internal", "error": f"{type(error).__name__}: {error}"}, (
            EXIT_FAILED
        )
