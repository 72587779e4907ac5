"""Operator settings, read from ``MODELWERK_*`` environment variables: the only place that
reads the environment in the operator."""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelwerk.builders.artifact_store import ArtifactStore, parse_store
from modelwerk.logic.leader import ElectionTiming


class OperatorSettings(BaseSettings):
    """How the operator runs and what it puts into the pods it creates."""

    model_config = SettingsConfigDict(env_prefix="MODELWERK_", use_attribute_docstrings=True)

    kubeconfig: str | None = None
    """Kubeconfig file to use; default: in-cluster credentials, else $KUBECONFIG, else
    ~/.kube/config."""
    kube_context: str | None = None
    """Context of the kubeconfig to use; default: its current-context."""
    namespaces: list[str] = Field(default_factory=list)
    """Namespaces to watch (JSON list or comma-free single name); empty means all."""
    identity: str = Field(default_factory=socket.gethostname)
    """Name of this operator instance (the pod name in a cluster), recorded on Events."""
    operator_namespace: str = "modelwerk-system"
    """Where the operator itself runs."""
    runtime_image: str = "modelwerk/runtime:0.1.0"
    """Image of the validation, training and serving pods."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """Pull policy of the workload pods."""
    artifact_store: str = "pvc://modelwerk-artifacts"
    """Where workload pods keep datasets, models and production data. ``pvc://<claim>``: a
    ReadWriteOnce claim per namespace, created on first use (kind, one node).
    ``s3://<bucket>[/<prefix>]``: an S3-compatible object store, each namespace under
    ``<prefix>/<namespace>`` (any cluster of more than one node). A namespace can override it
    with a ConfigMap ``modelwerk-artifact-store`` (keys uri, endpoint, region, secretName)."""
    artifact_store_endpoint: str | None = None
    """Endpoint URL of an S3-compatible store that is not AWS (MinIO, Ceph RGW,
    https://storage.googleapis.com with HMAC keys, ...); becomes AWS_ENDPOINT_URL in pods."""
    artifact_store_region: str | None = None
    """Region of the s3 store; becomes AWS_DEFAULT_REGION in pods."""
    artifact_store_secret: str | None = None
    """Name of a Secret, looked up in each workload's namespace, with the keys
    AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and optionally AWS_SESSION_TOKEN). Pods read
    it through secretKeyRef; the operator never reads it. Unset: the pods' ambient identity."""
    artifact_pvc_size: str = "5Gi"
    """Size requested when the operator creates a pvc:// store's claim."""
    artifact_storage_class: str | None = None
    """Storage class of that claim; default: the cluster's default class."""
    mlflow_tracking_uri: str | None = Field(default=None, pattern=r"^https?://[^\s@]+$")
    """MLflow tracking server for every TrainingJob that names none (spec.tracking);
    credentials go in ``mlflow_credentials_secret``, never in the URI."""
    mlflow_experiment: str = "modelwerk"
    """Experiment of those runs."""
    mlflow_credentials_secret: str | None = None
    """Secret (in each TrainingJob's namespace) with MLFLOW_TRACKING_TOKEN or
    MLFLOW_TRACKING_USERNAME/PASSWORD for the default tracking server."""
    health_port: int = 8080
    """Port of the liveness endpoint (/healthz); 0 disables it."""
    metrics_port: int = 9090
    """Port of the Prometheus endpoint (/metrics); 0 disables it."""
    workers: int = Field(default=8, ge=1, le=256)
    """Objects reconciled concurrently."""
    resync_seconds: float = Field(default=300.0, gt=0)
    """Every object is reconciled at least this often, even without events."""
    max_backoff_seconds: float = Field(default=300.0, gt=0)
    """Longest wait before retrying a reconcile that failed."""
    leader_election: bool = False
    """Run as one of several replicas: only the holder of the Lease ``lease_name`` in
    ``operator_namespace`` reconciles, the others watch and take over when it goes away.
    The manifests turn this on; off, the operator acts alone and at once."""
    lease_name: str = "modelwerk-operator"
    """Name of the leader election Lease (the operator's Role may update only this one)."""
    lease_duration_seconds: int = Field(default=15, ge=1)
    """How long a standby waits, after the Lease last changed, before taking it over."""
    renew_deadline_seconds: float = Field(default=10.0, gt=0)
    """How long the leader keeps acting without renewing; less than the lease duration."""
    retry_period_seconds: float = Field(default=2.0, gt=0)
    """How often the leader renews and a standby tries to acquire the Lease."""

    @model_validator(mode="after")
    def _valid_timing(self) -> OperatorSettings:
        self.election_timing()  # raises on an unsafe combination
        self.store()  # a store the pods could not use stops the operator at start-up
        return self

    def store(self) -> ArtifactStore:
        """The operator-wide artifact store (namespaces may override it)."""
        return parse_store(
            self.artifact_store,
            endpoint=self.artifact_store_endpoint,
            region=self.artifact_store_region,
            secret=self.artifact_store_secret,
            fields=(
                "MODELWERK_ARTIFACT_STORE",
                "MODELWERK_ARTIFACT_STORE_ENDPOINT",
                "MODELWERK_ARTIFACT_STORE_REGION",
                "MODELWERK_ARTIFACT_STORE_SECRET",
            ),
        )

    def election_timing(self) -> ElectionTiming:
        return ElectionTiming(
            lease_duration=self.lease_duration_seconds,
            renew_deadline=self.renew_deadline_seconds,
            retry_period=self.retry_period_seconds,
        )
