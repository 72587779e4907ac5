"""``modelwerk train --local``: validation and training on a laptop, no cluster involved.

The same code paths as the two Jobs run in sequence — :func:`modelwerk.runtime.data.job.validate`
then :func:`modelwerk.runtime.trainer.job.run` on the snapshot it published — and the outcome
is printed as a table instead of a termination message. Unlike in the pod, a failed gate makes
the command fail (exit 4), which is what a CI step or a shell script wants to see.
"""

from __future__ import annotations

from typing import Any, TextIO

from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.runtime import inputs
from modelwerk.runtime.data import job as data_job
from modelwerk.runtime.trainer import job as train_job
from modelwerk.runtime.trainer.errors import EXIT_CONFIG, EXIT_DATA, EXIT_OK, EXIT_REJECTED


def run(file: str, dataset_file: str | None, root: str, out: TextIO) -> int:
    """Validate the Dataset, train the TrainingJob, print the outcome; returns the exit code."""
    try:
        job = inputs.from_file(file, TrainingJob)
        wanted = job.spec.dataset_ref.name
        dataset = inputs.from_file(dataset_file or file, Dataset, name=wanted)
    except inputs.InputError as error:
        print(f"error: {error}", file=out)
        return EXIT_CONFIG
    if dataset.metadata.name != wanted:
        print(
            f"note: {job.metadata.name} refers to Dataset {wanted!r}; using "
            f"{dataset.metadata.name!r} from {dataset_file or file}",
            file=out,
        )
    if dataset.spec.target is None:
        print(f"error: Dataset {dataset.metadata.name} has no spec.target to train on", file=out)
        return EXIT_CONFIG
    if job.spec.estimator is None:
        print(
            "error: --local trains spec.estimator; spec.trainer images run in the cluster", file=out
        )
        return EXIT_CONFIG

    checked = data_job.validate(dataset, root)
    result = checked.result
    if not checked.valid:
        print(
            f"Dataset {dataset.metadata.name}: {result.get('error') or result['message']}", file=out
        )
        for violation in result.get("violations", []):
            where = violation.get("column") or "-"
            print(f"  {violation['rule']:<18} {where:<24} {violation['message']}", file=out)
        return checked.exit_code if checked.exit_code != data_job.EXIT_VERDICT else EXIT_DATA
    print(
        f"Dataset   {dataset.metadata.name}  {result['rows']} rows x {result['columns']} columns"
        f"  version {result['version'][7:19]}",
        file=out,
    )

    data = train_job.DatasetInput(
        name=dataset.metadata.name,
        version=result["version"],
        snapshot_uri=result["snapshotUri"],
        target=dataset.spec.target,
        profile_uri=result["profileUri"],
    )
    outcome = train_job.run(job, data, root)
    if not outcome.ok:
        print(f"Training failed ({outcome.result['reason']}): {outcome.result['error']}", file=out)
        return outcome.exit_code
    _print_result(job, outcome.result, out)
    failed = [g for g in outcome.result["gates"] if not g["passed"]]
    if failed:
        names = ", ".join(_gate_text(g) for g in failed)
        print(f"\nREJECTED: {len(failed)} gate(s) failed: {names}", file=out)
        return EXIT_REJECTED
    return EXIT_OK


def _print_result(job: TrainingJob, result: dict[str, Any], out: TextIO) -> None:
    print(
        f"Model     {job.spec.model.name}  {job.spec.estimator and job.spec.estimator.name}"
        f" ({result['task']})"
        f"  fit {result['fitSeconds']:.2f} s, total {result['durationSeconds']:.2f} s",
        file=out,
    )
    if result.get("bestParams"):
        best = ", ".join(f"{k}={v!r}" for k, v in result["bestParams"].items())
        print(f"Search    best params: {best}", file=out)
    print("\nMetric      Value", file=out)
    for name, value in result["metrics"].items():
        print(f"{name:<11} {value:.4f}", file=out)
    if result["gates"]:
        print("\nGate                          Value     Result", file=out)
        for gate in result["gates"]:
            value = "n/a" if gate["value"] is None else f"{gate['value']:.4f}"
            verdict = "PASS" if gate["passed"] else "FAIL"
            print(f"{_gate_text(gate):<29} {value:<9} {verdict}", file=out)
    for warning in result.get("warnings", []):
        print(f"warning: {warning}", file=out)
    artifact = result["artifact"]
    print(f"\nArtifact  {artifact['uri']}", file=out)
    print(f"          sha256 {artifact['sha256']}  {artifact['sizeBytes']} bytes", file=out)
    print(f"Card      {result['modelCardUri']}", file=out)


def _gate_text(gate: dict[str, Any]) -> str:
    return f"{gate['metric']} {gate['operator']} {gate['threshold']:g}"
