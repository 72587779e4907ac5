"""Retraining runs a Deployment starts when its inputs drift: a copy of a template TrainingJob.

The run is labelled with the Deployment that started it but not owned by it: a training run
and the version it registers belong to the model's lineage and outlive the Deployment.
"""

from __future__ import annotations

from typing import Any

from modelwerk.api.v1alpha1.deployment import Deployment
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.builders.labels import child_name, managed_labels

RETRAINING_LABEL = "modelwerk.dev/retraining-for"
TEMPLATE_ANNOTATION = "modelwerk.dev/retraining-template"
NUMBER_ANNOTATION = "modelwerk.dev/retraining-number"


def retraining_name(dep: Deployment, number: int) -> str:
    return child_name(dep.metadata.name, f"retrain-{number}")


def build_retraining_job(dep: Deployment, template: TrainingJob, number: int) -> dict[str, Any]:
    return {
        "apiVersion": template.api_version,
        "kind": "TrainingJob",
        "metadata": {
            "name": retraining_name(dep, number),
            "namespace": dep.metadata.namespace,
            "labels": managed_labels(**{RETRAINING_LABEL: dep.metadata.name}),
            "annotations": {
                TEMPLATE_ANNOTATION: template.metadata.name,
                NUMBER_ANNOTATION: str(number),
            },
        },
        "spec": template.spec.model_dump(by_alias=True, exclude_unset=True, mode="json"),
    }
