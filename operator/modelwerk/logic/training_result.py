"""What a training pod reports, read by the TrainingJob decision: the result, the gates, the
signature and the headline metric."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationError, model_validator

from modelwerk.api.base import ApiModel
from modelwerk.api.conditions import ConditionStatus
from modelwerk.api.v1alpha1.champion import ChampionResult
from modelwerk.api.v1alpha1.evaluation import (
    FairnessSummary,
    RobustnessSummary,
    RuntimeEnvironment,
    TrackingRecord,
    TrialSummary,
    gate_figures,
)
from modelwerk.api.v1alpha1.model_version import Compiled, Signature, Tensor
from modelwerk.api.v1alpha1.training_job import GateResult, Reproducibility, TrainingJob
from modelwerk.logic.training_launch import ObservedTraining

TRACKED = "Tracked"


class ArtifactResult(ApiModel):
    model_config = ApiModel.model_config | {"extra": "ignore"}
    uri: str
    sha256: str
    size_bytes: int | None = None
    format: Literal["joblib", "onnx"] = "joblib"
    framework_version: str | None = None


class TrainingResult(ApiModel):
    """The training pod's termination message (see ``modelwerk.runtime.trainer``)."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    ok: bool
    task: str | None = None
    metrics: dict[str, float | None] = {}
    best_params: dict[str, Any] | None = None
    artifact: ArtifactResult | None = None
    signature: dict[str, Any] | None = None
    compiled: dict[str, Any] | None = None
    duration_seconds: float | None = None
    reason: str | None = None
    error: str | None = None
    fairness: FairnessSummary | None = None
    robustness: RobustnessSummary | None = None
    trials: list[TrialSummary] | None = None
    trial_count: int | None = None
    trials_uri: str | None = None
    environment: RuntimeEnvironment | None = None
    tracking: TrackingRecord | None = None
    tracking_error: str | None = None
    champion: ChampionResult | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_cut_markers(cls, raw: Any) -> Any:
        """The pod cuts long lists to fit 4 KiB and marks them ``<list>Truncated``
        (``runtime.termination``); the full lists are in the model card."""
        if isinstance(raw, dict):
            for key in ("fairness", "robustness"):
                if isinstance(raw.get(key), dict):
                    raw = {
                        **raw,
                        key: {k: v for k, v in raw[key].items() if not k.endswith("Truncated")},
                    }
        return raw

    def figures(self) -> dict[str, float]:
        """Everything a gate can name (holdout metrics, fairness, robustness)."""
        metrics = {k: v for k, v in self.metrics.items() if v is not None}
        return gate_figures(
            metrics,
            self.fairness.figures if self.fairness else None,
            self.robustness.figures if self.robustness else None,
        )


def tracking_condition(
    tj: TrainingJob, result: TrainingResult
) -> tuple[str, ConditionStatus, str] | None:
    """``Tracked``: True once the tracker has the whole run, False (never failing the run)
    when it could not be reached or refused part of it; absent without a tracker."""
    if result.tracking is None and result.tracking_error is None:
        return None
    if result.tracking_error is None:
        return (TRACKED, "True", "Logged")
    if result.tracking is None:
        return (TRACKED, "False", "TrackingUnavailable")
    return (TRACKED, "False", "TrackingIncomplete")


def primary_metric(tj: TrainingJob, metrics: dict[str, float]) -> str | None:
    """The headline metric: the first gate's, else accuracy or rmse."""
    names = [g.metric for g in tj.spec.gates]
    names += ["accuracy" if tj.spec.task == "classification" else "rmse"]
    for name in names:
        if name in metrics:
            return f"{name}={metrics[name]:.4g}"
    return None


def evaluate_gates(tj: TrainingJob, figures: dict[str, float]) -> list[GateResult]:
    """Every gate against the run's figures (holdout metrics, fairness, robustness)."""
    return [gate.result(figures) for gate in tj.spec.gates]


def _tensors(entries: Any) -> list[Tensor]:
    tensors = []
    for entry in entries or []:
        if isinstance(entry, dict):
            tensors.append(Tensor.model_validate(entry))
        else:  # compact form: [name, datatype] or [name, datatype, shape]
            shape = list(entry[2]) if len(entry) > 2 else [-1]
            tensors.append(Tensor(name=entry[0], datatype=entry[1], shape=shape))
    return tensors


def signature_of(raw: dict[str, Any] | None) -> Signature | None:
    if not raw or not raw.get("inputs"):
        return None
    classes = raw.get("classes")
    return Signature(
        inputs=_tensors(raw.get("inputs")),
        outputs=_tensors(raw.get("outputs")) or [Tensor(name="predict", datatype="BYTES")],
        classes=[str(c) for c in classes] if classes is not None else None,
    )


def compiled_of(raw: dict[str, Any] | None) -> Compiled | None:
    """The compilation the pod reported; one the API would refuse is recorded as unverified.

    >>> compiled_of({"verified": True}).reason
    'the training pod reported an unreadable compilation result'
    >>> compiled_of(None) is None
    True
    """
    if raw is None:
        return None
    try:
        return Compiled.model_validate(raw)
    except ValidationError:
        return Compiled(
            verified=False, reason="the training pod reported an unreadable compilation result"
        )


def reproducibility(
    tj: TrainingJob,
    observed: ObservedTraining,
    result: TrainingResult,
    fingerprint: str,
    image: str,
) -> Reproducibility:
    """What the finished run needs to be repeated: the data version, the seed, the spec's
    fingerprint, the image and the library versions the training pod reported."""
    dataset = observed.dataset
    environment = result.environment or RuntimeEnvironment()
    return Reproducibility(
        dataset=tj.spec.dataset_ref.name,
        dataset_version=tj.status.dataset_version or (dataset.status.version if dataset else None),
        seed=tj.spec.split.seed,
        spec_hash=fingerprint,
        image=image,
        trainer_image=tj.spec.trainer.image if tj.spec.trainer else None,
        python=environment.python,
        libraries=environment.libraries,
        artifact_sha256=result.artifact.sha256 if result.artifact else None,
    )
