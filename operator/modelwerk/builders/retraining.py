"""Retraining runs a Deployment starts: a copy of a template TrainingJob, recording why.

The run is labelled with the Deployment that started it but not owned by it: a training run
and the version it registers belong to the model's lineage and outlive the Deployment. It
carries its trigger (a label, to select runs by it) and the reason, time and Dataset version
(annotations), and, unless the template names a champion of its own or the policy turns the
gate off, a champion-challenger gate against the version the Deployment serves.
"""

from __future__ import annotations

from typing import Any

from modelwerk.api.v1alpha1.deployment import Deployment
from modelwerk.api.v1alpha1.retraining import RetrainingGate, RetrainingRecord
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.builders.labels import child_name, managed_labels

RETRAINING_LABEL = "modelwerk.dev/retraining-for"
TRIGGER_LABEL = "modelwerk.dev/retraining-trigger"
TEMPLATE_ANNOTATION = "modelwerk.dev/retraining-template"
NUMBER_ANNOTATION = "modelwerk.dev/retraining-number"
REASON_ANNOTATION = "modelwerk.dev/retraining-reason"
TIME_ANNOTATION = "modelwerk.dev/retraining-time"
DATASET_VERSION_ANNOTATION = "modelwerk.dev/retraining-dataset-version"


def retraining_name(dep: Deployment, number: int) -> str:
    return child_name(dep.metadata.name, f"retrain-{number}")


def build_retraining_job(
    dep: Deployment,
    template: TrainingJob,
    number: int,
    record: RetrainingRecord,
    gate: RetrainingGate,
) -> dict[str, Any]:
    spec = template.spec.model_dump(by_alias=True, exclude_unset=True, mode="json")
    spec.pop("suspend", None)  # the template may be suspended; its copies are the runs
    if gate.enabled and template.spec.champion is None:
        spec["champion"] = {
            "deployment": dep.metadata.name,
            **gate.model_dump(by_alias=True, exclude={"enabled"}, exclude_none=True, mode="json"),
        }
    annotations = {
        TEMPLATE_ANNOTATION: template.metadata.name,
        NUMBER_ANNOTATION: str(number),
        REASON_ANNOTATION: record.reason,
        TIME_ANNOTATION: record.time.isoformat(),
    }
    if record.dataset_version:
        annotations[DATASET_VERSION_ANNOTATION] = record.dataset_version
        # The run trains on the version it was started for: neither a newer one published
        # while it waits (the next trigger's data) nor the template's own pin (data seen).
        spec["datasetRef"] = {**spec["datasetRef"], "version": record.dataset_version}
    return {
        "apiVersion": template.api_version,
        "kind": "TrainingJob",
        "metadata": {
            "name": retraining_name(dep, number),
            "namespace": dep.metadata.namespace,
            "labels": managed_labels(
                **{RETRAINING_LABEL: dep.metadata.name, TRIGGER_LABEL: record.trigger}
            ),
            "annotations": annotations,
        },
        "spec": spec,
    }
