"""``modelwerk data validate``: the entry point of the Dataset validation Job.

Inputs:

* the Dataset object — JSON in ``MODELWERK_DATASET`` (the operator sets it: metadata.name,
  metadata.namespace and spec), or ``--file dataset.yaml`` for local use;
* the artifact root — ``--artifact-root`` or ``MODELWERK_ARTIFACT_ROOT`` (a path, ``pvc://``
  or any fsspec URL). With ``--file`` it defaults to ``./.modelwerk-artifacts``; in the pod
  (object from the environment) it is required, so a misconfigured Job fails loudly instead
  of writing into the container's throw-away filesystem.

Outputs: the compact result JSON (≤ 4 KiB, see :mod:`modelwerk.runtime.data.job`) on stdout
and in the termination message (``MODELWERK_TERMINATION_MESSAGE_PATH``, default
``/dev/termination-log`` when it exists).

Exit codes:

* 0 — the data was read and judged; ``valid`` says whether it met the contract
* 1 — failed otherwise (artifact store write, unexpected error); ``reason`` says which
* 2 — the source is unreadable (``reason: Unreadable``); may be transient, so worth a retry
* 3 — bad input: no or invalid Dataset object, no artifact root, bad arguments
"""

from __future__ import annotations

import argparse
import os
import sys

from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.runtime import inputs, publish, termination
from modelwerk.runtime.data import job, production

DATASET_ENV = "MODELWERK_DATASET"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelwerk data",
        description="Dataset tools. `validate` checks a Dataset's data against its contract, "
        "versions it and writes the snapshot and profile to the artifact store.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="validate a Dataset (the validation Job)")
    validate.add_argument(
        "-f", "--file", help=f"Dataset YAML/JSON (default: JSON in ${DATASET_ENV})"
    )
    validate.add_argument(
        "--artifact-root", help=f"artifact store root (default: ${publish.ROOT_ENV})"
    )
    return parser


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # argparse exits 2 on errors; 2 means "unreadable" here
        return job.EXIT_VERDICT if stop.code in (0, None) else job.EXIT_BAD_INPUT
    outcome = run(file=args.file, artifact_root=args.artifact_root)
    text = termination.write(job.compact(outcome.result))
    print(text)
    return outcome.exit_code


def run(file: str | None, artifact_root: str | None) -> job.Outcome:
    """Resolve the inputs and validate; every failure becomes an Outcome, never an exception."""
    try:
        dataset = inputs.from_file(file, Dataset) if file else inputs.from_env(DATASET_ENV, Dataset)
    except inputs.InputError as error:
        return job.failure("InvalidInput", str(error), job.EXIT_BAD_INPUT)
    root = artifact_root or os.environ.get(publish.ROOT_ENV)
    if not root:
        if not file:
            return job.failure("InvalidInput", f"{publish.ROOT_ENV} is not set", job.EXIT_BAD_INPUT)
        root = publish.LOCAL_DEFAULT_ROOT
    try:
        context = production.Context.from_env() if dataset.spec.source.production else None
    except ValueError as error:
        return job.failure("InvalidInput", str(error), job.EXIT_BAD_INPUT)
    try:
        return job.validate(dataset, root, context)
    except Exception as error:  # the pod must always leave a result behind
        return job.failure("Internal", f"{type(error).__name__}: {error}", job.EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
