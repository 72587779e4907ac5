"""Deployment: serve a ModelVersion and roll new versions out blue-green or canary.

Named like apps/v1 Deployment on purpose (as Knative names its Service); reach it as ``mwd``,
``deployments.modelwerk.dev`` or through the ``modelwerk`` category.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from modelwerk.api.base import (
    KEEP_DEFAULT,
    ApiModel,
    CrdMeta,
    ObjectName,
    PrinterColumn,
    Resource,
    ScaleSubresource,
    name_rules,
    with_cel,
)
from modelwerk.api.v1alpha1.common import ResourceName, ResourceRequirements, StatusBase
from modelwerk.api.v1alpha1.experiment import Experiment, ExperimentStatus
from modelwerk.api.v1alpha1.model_version import Stage
from modelwerk.api.v1alpha1.production import Capture, CaptureStatus, LiveMetrics
from modelwerk.api.v1alpha1.retraining import Retraining, RetrainingStatus
from modelwerk.api.v1alpha1.shadow import Shadow, ShadowStatus, ShadowStep

RolloutPhase = Literal["Progressing", "Paused", "Healthy", "Degraded", "Aborted"]
CheckMetric = Literal["errorRate", "latency", "drift", "accuracy"]


def _one_of(*fields: str, exactly: bool) -> dict[str, str]:
    count = " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields)
    names = ", ".join(fields)
    if exactly:
        return {"rule": f"{count} == 1", "message": f"set exactly one of {names}"}
    return {"rule": f"{count} <= 1", "message": f"set at most one of {names}"}


def _check_one_of(model: ApiModel, *fields: str, exactly: bool) -> None:
    count = sum(getattr(model, f) is not None for f in fields)
    if count > 1 or (exactly and count == 0):
        names = ", ".join(type(model).model_fields[f].alias or f for f in fields)
        raise ValueError(f"set {'exactly' if exactly else 'at most'} one of {names}")


class ModelSelector(ApiModel):
    """Follow a registered model instead of pinning a version (continuous delivery)."""

    model: ResourceName
    """The registered model; the newest Ready version is served."""
    stage: Stage | None = None
    """Only consider versions in this stage, for example Production."""


class Check(ApiModel):
    """One metric an analysis measures, with the bound it must respect."""

    metric: CheckMetric
    """errorRate (fraction of 5xx), latency (seconds at quantile), drift (highest per-feature
    score), or accuracy (live accuracy from feedback)."""
    quantile: float = Field(default=0.99, gt=0, lt=1)
    """Latency quantile. Defaults to 0.99."""
    max: float | None = None
    """Fail when the measurement is above this."""
    min: float | None = None
    """Fail when the measurement is below this."""

    model_config = with_cel(
        *[{"rule": "has(self.max) || has(self.min)", "message": "a check needs max or min"}]
    )

    @model_validator(mode="after")
    def _bounded(self) -> Check:
        if self.max is None and self.min is None:
            raise ValueError("a check needs max or min")
        return self


class Analysis(ApiModel):
    """How rollout health is measured."""

    interval_seconds: int = Field(default=30, ge=1, le=3600)
    """Time between measurements. Defaults to 30."""
    count: int = Field(default=3, ge=1, le=100)
    """Measurements per analysis run. Defaults to 3."""
    failure_limit: int = Field(default=0, ge=0, le=100)
    """Failed measurements tolerated before the rollout aborts. Defaults to 0."""
    inconclusive_limit: int = Field(default=2, ge=0, le=100)
    """Measurements without enough data tolerated before the rollout pauses. Defaults to 2."""
    min_requests: int = Field(default=20, ge=0)
    """Requests a measurement needs to be conclusive. Defaults to 20."""
    checks: list[Check] = Field(default_factory=list, max_length=16)
    """What is measured; without checks, analysis only requires Ready pods."""
    prometheus_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    """Read metrics from this Prometheus instead of scraping the serving pods directly."""


class Pause(ApiModel):
    """Wait before the next step."""

    duration_seconds: int | None = Field(default=None, ge=0, le=31_536_000)
    """How long (at most a year); without it, wait until resumed or promoted by hand."""


class AnalysisStep(ApiModel):
    """Run the Deployment's analysis now and continue only if it passes."""

    count: int | None = Field(default=None, ge=1, le=100)
    """Measurements for this step; defaults to analysis.count."""


class CanaryStep(ApiModel):
    """Exactly one of setWeight, pause, analysis or shadow."""

    set_weight: int | None = Field(default=None, ge=0, le=100)
    """Percentage of traffic sent to the new version."""
    pause: Pause | None = None
    """Wait for a duration or for a manual resume."""
    analysis: AnalysisStep | None = None
    """Measure and abort on failure."""
    shadow: ShadowStep | None = None
    """Mirror live requests to the new version (no user gets its answers) and abort when its
    answers fail the checks."""

    model_config = with_cel(_one_of("setWeight", "pause", "analysis", "shadow", exactly=True))

    @model_validator(mode="after")
    def _exactly_one(self) -> CanaryStep:
        _check_one_of(self, "set_weight", "pause", "analysis", "shadow", exactly=True)
        return self


class Canary(ApiModel):
    """Shift traffic to the new version step by step."""

    steps: list[CanaryStep] = Field(default_factory=list, max_length=64)
    """The steps; after the last one the new version is promoted."""


class BlueGreen(ApiModel):
    """Bring the new version up beside the old one and switch all traffic at once."""

    auto_promote: bool = True
    """Switch as soon as the new version is Ready (and analysis passed). Defaults to true."""
    pre_promotion_analysis: bool = False
    """Run the analysis against the preview Service before switching. Defaults to false."""
    scale_down_delay_seconds: int = Field(default=30, ge=0, le=86400)
    """Keep the old version running this long after the switch, for a fast rollback.
    Defaults to 30."""
    preview_replicas: int | None = Field(default=None, ge=1, le=1000)
    """Replicas of the preview version before promotion; defaults to spec.replicas."""


class Strategy(ApiModel):
    """At most one of blueGreen, canary or experiment; without any, a new version replaces the
    old one as soon as its pods are Ready."""

    blue_green: BlueGreen | None = None
    """Blue-green deployment."""
    canary: Canary | None = None
    """Canary deployment."""
    experiment: Experiment | None = None
    """A/B experiment: the new version serves a sticky share of the units until an
    always-valid test decides."""

    model_config = with_cel(_one_of("blueGreen", "canary", "experiment", exactly=False))

    @model_validator(mode="after")
    def _at_most_one(self) -> Strategy:
        _check_one_of(self, "blue_green", "canary", "experiment", exactly=False)
        return self


class DriftMonitoring(ApiModel):
    """Compare live inputs with the training profile."""

    method: Literal["psi", "ks"] = "psi"
    """psi (population stability index) or ks (Kolmogorov-Smirnov statistic). Defaults to psi."""
    threshold: float = Field(default=0.2, gt=0)
    """A feature whose score exceeds this has drifted. Defaults to 0.2. A pod reports a
    feature's score only once its window holds enough rows that sampling noise alone crosses
    the threshold with at most 1 % probability; the lower the threshold (and the smaller the
    Dataset's profile), the more rows that takes (condition DriftDetected says how many)."""
    window: int = Field(default=1000, ge=10, le=100000)
    """Recent rows compared with the profile, per serving pod. Defaults to 1000. Must hold the
    rows the threshold needs, or drift is never reported (DriftDetected reason
    WindowTooSmall)."""
    interval_seconds: int = Field(default=60, ge=5, le=86400)
    """How often the operator reads the serving pods' drift. Defaults to 60."""


class Monitoring(ApiModel):
    """Model monitoring and the closed loop."""

    drift: DriftMonitoring | None = None
    """Drift detection."""
    retraining: Retraining | None = None
    """Retrain on drift, a live metric, new data or a schedule, only on data no earlier run
    saw, gated against the served version; the new version rolls out when the Deployment
    follows modelSelector."""
    capture: Capture | None = None
    """Inference capture, labels and the live accuracy joined across all replicas."""


class HTTPRouteRef(ApiModel):
    """A Gateway API HTTPRoute whose backend weights the operator sets."""

    name: ObjectName
    """Name of the HTTPRoute in the Deployment's namespace."""


class TrafficRouting(ApiModel):
    """How traffic is split; by default by replica ratio behind the stable Service."""

    http_route: HTTPRouteRef | None = None
    """Use backend weights on this HTTPRoute for exact percentages."""


class ServiceSpec(ApiModel):
    """How the stable Service is exposed."""

    type: Literal["ClusterIP", "NodePort"] = "ClusterIP"
    """ClusterIP or NodePort. Defaults to ClusterIP."""
    port: int = Field(default=80, ge=1, le=65535)
    """Service port. Defaults to 80."""
    node_port: int | None = Field(default=None, ge=30000, le=32767)
    """Fixed node port (with type NodePort), for example 30080 for the kind port mapping."""


class ServerSpec(ApiModel):
    """The model server pods."""

    resources: ResourceRequirements | None = None
    """Resources of each serving pod."""
    workers: int = Field(default=1, ge=1, le=64)
    """Server worker processes per pod. Defaults to 1."""
    max_batch_size: int = Field(default=64, ge=1, le=4096)
    """Most concurrent requests merged into one predict call. Defaults to 64."""
    max_batch_delay_ms: float = Field(default=2.0, ge=0, le=1000)
    """Longest a request waits for others to batch with. Defaults to 2."""
    backend: Literal["auto", "onnx", "joblib"] = "auto"
    """What computes predictions: onnx (the compiled model the ModelVersion records as
    verified, run by ONNX Runtime; pods refuse to start without one), joblib (the original
    scikit-learn pipeline), or auto: onnx when the ModelVersion has a verified compiled model,
    else joblib. Defaults to auto."""
    intra_op_threads: int = Field(default=1, ge=1, le=64)
    """ONNX Runtime threads per predict call in each worker. Defaults to 1."""
    allow_version_mismatch: bool = False
    """Serve an artifact written by another scikit-learn minor version than the server's.
    Unpickling across versions is unsupported and can give wrong answers, so by default the
    server refuses and the Deployment reports ModelIncompatible. Defaults to false."""


LABEL_METRICS_NEED_CAPTURE = (
    "strategy.experiment.metric mae, rmse and reward need monitoring.capture: their labels "
    "and rewards are joined with the predictions of every replica in the artifact store"
)


class DeploymentSpec(ApiModel):
    """Desired state of a modelwerk Deployment."""

    model_version: ObjectName | None = None
    """The ModelVersion to serve (pinned; what GitOps repositories usually set)."""
    model_selector: ModelSelector | None = None
    """Follow the newest Ready version of a model instead of pinning one."""
    replicas: int = Field(default=1, ge=0, le=1000, json_schema_extra={KEEP_DEFAULT: True})
    """Serving pods of the stable version. Defaults to 1, written by the API server: the scale
    subresource (kubectl scale, a HorizontalPodAutoscaler) needs the field to exist."""
    strategy: Strategy = Field(default_factory=Strategy)
    """How new versions roll out."""
    analysis: Analysis | None = None
    """Measurements used by analysis steps and pre-promotion analysis."""
    progress_deadline_seconds: int = Field(default=600, ge=30, le=86400)
    """A rollout that makes no progress for this long is aborted. Defaults to 600."""
    monitoring: Monitoring | None = None
    """Drift detection and retraining."""
    shadow: Shadow | None = None
    """Mirror a candidate version without rolling it out."""
    traffic_routing: TrafficRouting | None = None
    """Traffic splitting beyond replica ratios."""
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    """The stable Service."""
    server: ServerSpec = Field(default_factory=ServerSpec)
    """Model server settings."""
    history_limit: int = Field(default=10, ge=1, le=100)
    """Rollouts kept in status.history. Defaults to 10."""

    model_config = with_cel(
        _one_of("modelVersion", "modelSelector", exactly=True),
        {
            "rule": "!has(self.strategy) || !has(self.strategy.experiment)"
            " || !has(self.strategy.experiment.metric)"
            " || !has(self.strategy.experiment.metric.name)"
            " || self.strategy.experiment.metric.name == 'accuracy'"
            " || (has(self.monitoring) && has(self.monitoring.capture)"
            " && (!has(self.monitoring.capture.enabled) || self.monitoring.capture.enabled))",
            "message": LABEL_METRICS_NEED_CAPTURE,
        },
    )

    @model_validator(mode="after")
    def _source(self) -> DeploymentSpec:
        _check_one_of(self, "model_version", "model_selector", exactly=True)
        return self

    @model_validator(mode="after")
    def _label_metrics(self) -> DeploymentSpec:
        experiment = self.strategy.experiment
        capture = self.monitoring.capture if self.monitoring else None
        if (
            experiment is not None
            and experiment.metric.name != "accuracy"
            and (capture is None or not capture.enabled)
        ):
            raise ValueError(LABEL_METRICS_NEED_CAPTURE)
        return self


class LatencyBucket(ApiModel):
    """One cumulative bucket of the request latency histogram."""

    le: str
    """Upper bound in seconds, as exposed (``+Inf`` for the last bucket)."""
    count: float
    """Requests at or below the bound."""


class DriftWindow(ApiModel):
    """How full the serving pods' drift windows are, against the rows their scores need."""

    rows: int = Field(default=0, ge=0)
    """Rows in the fullest window among the pods (a pod with several server processes sums
    theirs, although each process scores its own window)."""
    needed: int | None = Field(default=None, ge=1)
    """Rows a window must hold before the drift of every feature is reported at the
    Deployment's threshold: the most any feature needs. Absent when unknown, or when no window
    is enough for that feature (the training profile is too small for the threshold)."""
    feature: str | None = None
    """The feature that needs the most rows, or that no window can measure."""


class MetricSample(ApiModel):
    """Cumulative serving metrics of one version's pods at one time, summed over its pods.

    Measurements are the difference between two samples, so a sample is kept in the status of a
    running analysis: an operator restart does not lose the interval being measured.
    """

    time: datetime
    """When it was taken."""
    pods: int = Field(ge=0)
    """Pods that answered."""
    requests: float = 0
    """Inference requests served, any status code."""
    errors: float = 0
    """Requests answered with a 5xx status."""
    latency_buckets: list[LatencyBucket] = Field(default_factory=list, max_length=64)
    """The request latency histogram."""
    drift_score: float | None = None
    """The highest per-feature drift over the pods' windows."""
    drift_feature: str | None = None
    """The feature with that drift."""
    drift_window: DriftWindow | None = None
    """How far the drift windows are from reporting (absent when the pods do not say)."""
    accuracy: float | None = None
    """Live accuracy (classification): from the join of labels with captured predictions when
    capture is on, else the lowest of the pods' own."""
    labelled: float = 0
    """Labelled rows behind the live accuracy."""


class Measurement(ApiModel):
    """One measured value of an analysis check."""

    metric: str
    """The check's metric."""
    value: float | None = None
    """The measured value; absent when there was not enough data."""
    phase: Literal["Successful", "Failed", "Inconclusive", "Error"]
    """The verdict for this measurement."""
    time: datetime
    """When it was measured."""
    message: str | None = None
    """Details."""


class AnalysisRun(ApiModel):
    """An analysis executed during a rollout."""

    name: str
    """Identifies the run, for example step-3 or pre-promotion."""
    phase: Literal["Running", "Successful", "Failed", "Inconclusive"]
    """The overall verdict so far."""
    measurements: list[Measurement] = Field(default_factory=list, max_length=200)
    """Measurements, oldest first."""
    start_time: datetime | None = None
    """When the run started."""
    message: str | None = None
    """Why it ended as it did."""
    sample: MetricSample | None = None
    """The sample the next measurement is taken against."""
    successful: int = 0
    """Measurement rounds in which every check passed."""
    failed: int = 0
    """Rounds in which a check failed or could not be measured."""
    inconclusive: int = 0
    """Rounds without enough data for a verdict."""


class RolloutRecord(ApiModel):
    """One finished or current rollout."""

    version: str
    """The ModelVersion rolled out."""
    outcome: Literal["Progressing", "Promoted", "Aborted", "RolledBack", "Superseded"]
    """How it ended."""
    start_time: datetime | None = None
    """When it started."""
    finish_time: datetime | None = None
    """When it ended."""
    message: str | None = None
    """Why it ended as it did."""


class Endpoints(ApiModel):
    """Where to reach the model inside the cluster."""

    stable: str | None = None
    """The stable Service: what users should call."""
    preview: str | None = None
    """The preview Service of a blue-green rollout."""
    canary: str | None = None
    """The canary Service of a canary rollout."""


class DriftStatus(ApiModel):
    """The latest drift measurement."""

    score: float | None = None
    """The highest per-feature score."""
    feature: str | None = None
    """The feature with that score."""
    measured_time: datetime | None = None
    """When it was measured."""
    last_retraining_job: str | None = None
    """The TrainingJob started by the last retraining (status.retraining.lastRun says why)."""
    last_retraining_time: datetime | None = None
    """When that retraining started."""


class DeploymentStatus(StatusBase):
    """Observed state of a modelwerk Deployment."""

    phase: RolloutPhase | None = None
    """Progressing, Paused, Healthy, Degraded or Aborted."""
    paused: bool | None = None
    """A person paused the Deployment (command ``pause``); nothing advances until ``resume``."""
    approved: bool | None = None
    """A person promoted the rollout in progress (command ``promote``): blue-green switches as
    soon as the new version is Ready."""
    model: str | None = None
    """The registered model served."""
    strategy: Literal["BlueGreen", "Canary", "Experiment", "Replace"] | None = None
    """The active strategy, for printer columns."""
    stable_version: str | None = None
    """The ModelVersion receiving production traffic."""
    canary_version: str | None = None
    """The ModelVersion being rolled out, while a rollout is in progress."""
    active_color: Literal["blue", "green"] | None = None
    """Blue-green: the color behind the stable Service."""
    current_step_index: int | None = Field(default=None, ge=0)
    """Canary: index of the step in progress."""
    canary_weight: int | None = Field(default=None, ge=0, le=100)
    """Percentage of traffic the current step asks for on the new version."""
    actual_weight: int | None = Field(default=None, ge=0, le=100)
    """Percentage of traffic actually on the new version: with replica-ratio routing the share
    of Ready serving pods, which is as fine-grained as the replica count allows."""
    pause_start_time: datetime | None = None
    """When the current pause began."""
    rollout_start_time: datetime | None = None
    """When the rollout in progress began."""
    progress_time: datetime | None = None
    """When the rollout in progress last advanced; progressDeadlineSeconds counts from here."""
    scale_down_time: datetime | None = None
    """When the previous version's pods are scaled to zero (blue-green scaleDownDelaySeconds)."""
    aborted_version: str | None = None
    """The version whose rollout was aborted; it is not retried until the spec changes or a
    person sends ``retry``."""
    aborted_generation: int | None = None
    """The spec generation the abort happened at."""
    replicas: int | None = None
    """Pods answering production requests (what status.selector matches): the active color,
    plus the canary's pods while they have traffic. Preview pods and a blue-green's warm
    previous color are not counted. The scale subresource reports it to autoscalers."""
    ready_replicas: int | None = None
    """Ready pods among those."""
    selector: str | None = None
    """Label selector of the pods answering production requests (for the scale subresource:
    an HPA averages its metrics over these pods)."""
    aborted_spec_hash: str | None = None
    """Fingerprint of the spec at the abort, spec.replicas left out: an autoscaler changing
    the replicas does not retry an aborted version, any other spec change does."""
    analysis_runs: list[AnalysisRun] | None = Field(default=None, max_length=20)
    """Analysis runs of the current rollout."""
    history: list[RolloutRecord] | None = Field(default=None, max_length=100)
    """Recent rollouts, newest first."""
    endpoints: Endpoints | None = None
    """In-cluster URLs."""
    drift: DriftStatus | None = None
    """Monitoring results."""
    retraining: RetrainingStatus | None = None
    """Why and when the last retraining run started, and the last trigger held back."""
    live_metrics: LiveMetrics | None = None
    """Live accuracy / MAE per version from labels joined with captured predictions."""
    capture: CaptureStatus | None = None
    """How inference capture goes."""
    last_command: str | None = None
    """The last manual command (annotation value) the operator acted on."""
    experiment: ExperimentStatus | None = None
    """The A/B experiment in progress, or the last one."""
    shadow: ShadowStatus | None = None
    """The shadow comparison in progress (a canary step's or a standalone one), or the last."""


class Deployment(Resource):
    """Serves a model and rolls out new versions safely."""

    crd: ClassVar[CrdMeta] = CrdMeta(
        kind="Deployment",
        plural="deployments",
        singular="deployment",
        short_names=("mwd", "mwdeploy"),
        extra_validations=name_rules(service=True),
        printer_columns=(
            PrinterColumn("Model", ".status.model"),
            PrinterColumn("Version", ".status.stableVersion"),
            PrinterColumn("Canary", ".status.canaryVersion", priority=1),
            PrinterColumn("Strategy", ".status.strategy"),
            PrinterColumn("Weight", ".status.actualWeight", "integer"),
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
        scale=ScaleSubresource(
            spec_replicas_path=".spec.replicas",
            status_replicas_path=".status.replicas",
            label_selector_path=".status.selector",
        ),
        failed_phase="Degraded",
    )

    spec: DeploymentSpec
    status: DeploymentStatus = Field(default_factory=DeploymentStatus)
