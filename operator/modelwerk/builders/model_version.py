"""The verification Job of a ModelVersion: does its artifact exist with the declared hash?"""

from __future__ import annotations

from typing import Any

from modelwerk.api.v1alpha1.model_version import ModelVersion
from modelwerk.builders.labels import child_labels, child_name, owner_reference
from modelwerk.builders.workload import Workload, WorkloadConfig, build_job, build_pod_spec

VERIFY_DEADLINE_SECONDS = 600


def verification_job_name(mv: ModelVersion) -> str:
    return child_name(mv.metadata.name, f"verify-{mv.spec.artifact.sha256[:10]}")


def artifact_claim(uri: str) -> str | None:
    """The PersistentVolumeClaim a ``pvc://`` URI lives on.

    >>> artifact_claim("pvc://modelwerk-artifacts/models/m/x/model.joblib")
    'modelwerk-artifacts'
    >>> artifact_claim("s3://bucket/model.joblib") is None
    True
    """
    return uri.removeprefix("pvc://").split("/", 1)[0] if uri.startswith("pvc://") else None


def build_verification_job(mv: ModelVersion, config: WorkloadConfig) -> dict[str, Any]:
    artifact = mv.spec.artifact
    claim = artifact_claim(artifact.uri)
    workload = Workload(
        command=["modelwerk", "verify", "--uri", artifact.uri, "--sha256", artifact.sha256],
        env={},
        claims=(claim,) if claim else (),
    )
    pod_spec = build_pod_spec(workload, config)
    for mount in pod_spec["containers"][0]["volumeMounts"]:
        if mount["name"].startswith("pvc-"):
            mount["readOnly"] = True  # verification never writes
    return build_job(
        name=verification_job_name(mv),
        namespace=mv.metadata.namespace,
        labels=child_labels(mv, "verification", **{"modelwerk.dev/model": mv.spec.model}),
        owner=owner_reference(mv),
        pod_spec=pod_spec,
        active_deadline_seconds=VERIFY_DEADLINE_SECONDS,
        backoff_limit=0,
    )
