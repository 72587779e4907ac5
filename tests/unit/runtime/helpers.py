"""Builders for the pod runtime tests: API objects and small data files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.api.v1alpha1.training_job import TrainingJob


def dataset(
    name: str = "ds",
    target: str | None = "target",
    schema: dict[str, Any] | None = None,
    **source: Any,
) -> Dataset:
    spec: dict[str, Any] = {"source": source}
    if target is not None:
        spec["target"] = target
    if schema is not None:
        spec["schema"] = schema
    return Dataset.model_validate(
        {"kind": "Dataset", "metadata": {"name": name, "namespace": "ns"}, "spec": spec}
    )


def training_job(
    name: str = "tj", dataset_name: str = "ds", model: str = "m", **spec: Any
) -> TrainingJob:
    body: dict[str, Any] = {"datasetRef": {"name": dataset_name}, "model": {"name": model}}
    body.update(spec)
    return TrainingJob.model_validate(
        {
            "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": "ns", "uid": "u-1"},
            "spec": body,
        }
    )


def write_csv(directory: Path, text: str, name: str = "data.csv") -> str:
    path = directory / name
    path.write_text(text)
    return f"file://{path}"
