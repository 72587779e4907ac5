"""The verification Job of a ModelVersion: does its artifact exist with the declared hash?
It also tags the version's MLflow run with it, when the version records one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelwerk.api.v1alpha1.model_version import ModelVersion
from modelwerk.builders.labels import child_labels, child_name, owner_reference
from modelwerk.builders.workload import Workload, WorkloadConfig, build_job, build_pod_spec

VERIFY_DEADLINE_SECONDS = 600


@dataclass(frozen=True)
class RunTag:
    """The MLflow run the verification pod tags with the version, and the Secret whose keys
    (the trainer's credentials for that server) become the pod's environment."""

    tracking_uri: str
    run_id: str
    credentials_secret: str | None = None


def verification_job_name(mv: ModelVersion) -> str:
    return child_name(mv.metadata.name, f"verify-{mv.spec.artifact.sha256[:10]}")


def build_verification_job(
    mv: ModelVersion, config: WorkloadConfig, tag: RunTag | None = None
) -> dict[str, Any]:
    artifact = mv.spec.artifact
    command = ["modelwerk", "verify", "--uri", artifact.uri, "--sha256", artifact.sha256]
    compiled = mv.spec.compiled
    if compiled is not None and compiled.verified and compiled.uri and compiled.sha256:
        command += ["--compiled-uri", compiled.uri, "--compiled-sha256", compiled.sha256]
    if tag is not None:
        command += [
            "--mlflow-tracking-uri", tag.tracking_uri,
            "--mlflow-run-id", tag.run_id,
            "--model-version", mv.metadata.name,
            "--model-version-number", str(mv.spec.version),
        ]  # fmt: skip
    workload = Workload(
        command=command,
        env={},
        reads=(artifact.uri,),
        writes_store=False,  # verification never writes
        secret_env=tag.credentials_secret if tag else None,
        # A missing Secret must not hold verification back: the tag is refused, and the
        # ModelVersion's Tracked condition says so.
        secret_env_optional=True,
    )
    pod_spec = build_pod_spec(workload, config, mv.metadata.namespace)
    return build_job(
        name=verification_job_name(mv),
        namespace=mv.metadata.namespace,
        labels=child_labels(mv, "verification", **{"modelwerk.dev/model": mv.spec.model}),
        owner=owner_reference(mv),
        pod_spec=pod_spec,
        active_deadline_seconds=VERIFY_DEADLINE_SECONDS,
        backoff_limit=0,
    )
