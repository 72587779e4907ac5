"""``modelwerk train``: the entry point of the training Job, and of local training.

In the pod (no ``--local``): the TrainingJob comes from ``MODELWERK_TRAININGJOB`` (or
``-f``), the dataset from the ``MODELWERK_DATASET_*`` variables and the store from
``MODELWERK_ARTIFACT_ROOT`` (or ``--artifact-root``); the compact result JSON goes to stdout and
the termination message. See :mod:`modelwerk.runtime.trainer.job` for the shapes.

Locally: ``modelwerk train -f trainingjob.yaml [--dataset dataset.yaml] --local
[--artifact-root DIR]`` validates the Dataset (from ``--dataset``, or from ``-f`` when that file
holds both objects), trains, writes the artifact (default root ``./.modelwerk-artifacts``) and
prints a table.

Exit codes (both modes):

* 0 — trained and published (in the pod, also when a gate failed: the operator decides)
* 1 — TrainingError, ArtifactStoreError or Internal
* 2 — DatasetUnreadable or DatasetInvalid
* 3 — InvalidInput, InvalidSpec, InvalidParams, EstimatorNotAllowed, or bad arguments
* 4 — local mode only: trained and written, but a gate failed
"""

from __future__ import annotations

import argparse
import os
import sys

from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.runtime import inputs, publish, termination
from modelwerk.runtime.trainer import job as train_job
from modelwerk.runtime.trainer.errors import EXIT_CONFIG, EXIT_FAILED, TrainingFailure


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelwerk train",
        description="Train a model: in the training Job (inputs from the environment) or "
        "locally with --local.",
    )
    parser.add_argument(
        "-f",
        "--file",
        help=f"TrainingJob YAML/JSON (default: JSON in ${train_job.TRAININGJOB_ENV})",
    )
    parser.add_argument("--dataset", help="Dataset YAML/JSON for --local (default: the -f file)")
    parser.add_argument(
        "--local", action="store_true", help="validate the Dataset and train without a cluster"
    )
    parser.add_argument(
        "--search-stage",
        type=int,
        metavar="K",
        help="evaluate this pod's share (index $JOB_COMPLETION_INDEX) of stage K of a "
        "parallel search, instead of training",
    )
    parser.add_argument(
        "--artifact-root",
        help=f"artifact store root (default: ${publish.ROOT_ENV}; "
        f"with --local, {publish.LOCAL_DEFAULT_ROOT})",
    )
    return parser


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:
        return 0 if stop.code in (0, None) else EXIT_CONFIG
    root = args.artifact_root or os.environ.get(publish.ROOT_ENV)
    if args.local:
        if not args.file:
            print("modelwerk train: --local needs -f trainingjob.yaml", file=sys.stderr)
            return EXIT_CONFIG
        from modelwerk.runtime.trainer import local

        return local.run(args.file, args.dataset, root or publish.LOCAL_DEFAULT_ROOT, sys.stdout)
    outcome = run_pod(args.file, root, args.search_stage)
    if args.search_stage is not None:
        from modelwerk.runtime.trainer import search_pod

        print(termination.write(search_pod.compact(outcome.result)))
    else:
        print(termination.write(train_job.compact(outcome.result)))
    return outcome.exit_code


def run_pod(file: str | None, root: str | None, stage: int | None = None) -> train_job.Outcome:
    """The training Job: inputs from the environment, every failure an Outcome."""
    try:
        try:
            if file:
                job = inputs.from_file(file, TrainingJob)
            else:
                job = inputs.from_env(train_job.TRAININGJOB_ENV, TrainingJob)
        except inputs.InputError as error:
            raise TrainingFailure("InvalidInput", str(error)) from error
        data = train_job.DatasetInput.from_env()
        if not root:
            raise TrainingFailure("InvalidInput", f"{publish.ROOT_ENV} is not set")
    except TrainingFailure as failure:
        result = {"ok": False, "reason": failure.reason, "error": failure.message}
        return train_job.Outcome(result, failure.exit_code)
    try:
        if stage is not None:
            from modelwerk.runtime.trainer import search_pod

            return search_pod.run(job, data, root, stage)
        return train_job.run(job, data, root)
    except Exception as error:  # run() reports its own failures; this is the last resort
        result = {"ok": False, "reason": "Internal", "error": f"{type(error).__name__}: {error}"}
        return train_job.Outcome(result, EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
