"""The validation Job of a Dataset."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.builders.labels import child_labels, child_name, owner_reference
from modelwerk.builders.workload import (
    SOURCE_ENV_PREFIX,
    Workload,
    WorkloadConfig,
    build_job,
    build_pod_spec,
)

DATASET_LABEL = "modelwerk.dev/dataset"
PRODUCTION_ENV = "MODELWERK_PRODUCTION"
"""What the validation pod of a production source reads its window's end and base from (the
format :class:`modelwerk.runtime.data.production.Context` parses)."""
SQL_URL_ENV = "MODELWERK_SQL_URL"
"""The runtime's ``modelwerk.runtime.data.sql.URL_ENV`` (builders cannot import it)."""


@dataclass(frozen=True)
class ProductionContext:
    """What a production source's run is fixed to when its Job is created."""

    now: datetime
    base: Dataset | None = None

    def to_env(self) -> str:
        base = None
        if self.base is not None:
            s = self.base.status
            base = {
                "name": self.base.metadata.name,
                "version": s.version,
                "snapshotUri": s.snapshot_uri,
            }
        return json.dumps({"now": self.now.isoformat(), "base": base}, sort_keys=True)


def validation_fingerprint(
    dataset: Dataset, refresh_epoch: int = 0, *, base_version: str | None = None
) -> str:
    """What makes a validation run distinct: the spec, the refresh period it belongs to and,
    for a production source on a base Dataset, the base's version.

    >>> ds = Dataset.from_k8s({"metadata": {"name": "d"}, "spec": {"source": {"builtin": "iris"}}})
    >>> validation_fingerprint(ds) == validation_fingerprint(ds), len(validation_fingerprint(ds))
    (True, 10)
    >>> validation_fingerprint(ds) != validation_fingerprint(ds, refresh_epoch=1)
    True
    """
    parts: list[Any] = [dataset.spec.to_k8s(), refresh_epoch]
    if base_version is not None:
        parts.append(base_version)
    payload = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


def validation_job_name(dataset: Dataset, fingerprint: str) -> str:
    return child_name(dataset.metadata.name, f"validate-{fingerprint}")


def build_validation_job(
    dataset: Dataset,
    fingerprint: str,
    config: WorkloadConfig,
    production: ProductionContext | None = None,
) -> dict[str, Any]:
    meta = dataset.metadata
    labels = child_labels(dataset, "validation", **{DATASET_LABEL: meta.name})
    identity = {
        "apiVersion": dataset.api_version,
        "kind": "Dataset",
        "metadata": {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid},
        "spec": dataset.spec.to_k8s(),
    }
    env = {"MODELWERK_DATASET": json.dumps(identity, sort_keys=True)}
    if production is not None:
        env[PRODUCTION_ENV] = production.to_env()
    base = production.base.status.snapshot_uri if production and production.base else None
    sql = dataset.spec.source.sql
    workload = Workload(
        command=["modelwerk", "data", "validate"],
        env=env,
        reads=(dataset.spec.source.uri, base),
        secret_env=dataset.spec.source.secret_ref.name if dataset.spec.source.secret_ref else None,
        secret_env_prefix=SOURCE_ENV_PREFIX,
        secret_keys=(
            ((SQL_URL_ENV, sql.url_secret_ref.name, sql.url_secret_ref.key),) if sql else ()
        ),
        resources=dataset.spec.resources,
    )
    return build_job(
        name=validation_job_name(dataset, fingerprint),
        namespace=meta.namespace,
        labels=labels,
        owner=owner_reference(dataset),
        pod_spec=build_pod_spec(workload, config, meta.namespace),
        active_deadline_seconds=dataset.spec.active_deadline_seconds,
        # Validation is deterministic: a failure repeats, so retrying only delays the verdict.
        backoff_limit=0,
    )
