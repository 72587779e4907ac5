"""Bring your own trainer: a container image and command that trains instead of an estimator.

The contract the container gets (environment variables, all paths inside the container):

==============================  ================================================================
``MODELWERK_TRAIN_PATH``        the training split as parquet (features and target), read-only
``MODELWERK_OUTPUT_DIR``        where to write ``model.joblib`` (a fitted scikit-learn
                                compatible pipeline built from classes the runtime image can
                                import) or ``model.onnx`` (an ONNX model, served by ONNX
                                Runtime; ``runtime.byo.onnx_model`` says what it must take
                                and answer); exactly one; nothing else in it is kept
``MODELWERK_TARGET``            the label column
``MODELWERK_TASK``              classification or regression
``MODELWERK_FEATURES``          the feature columns, comma separated (every column but the
                                target; the model is called with a frame of these columns)
``MODELWERK_SEED``              spec.split.seed, for reproducible training
==============================  ================================================================

The container never sees the holdout split, the artifact store or its credentials: it runs
with an emptyDir holding the training split, an emptyDir for its output and one for /tmp.
modelwerk then evaluates the model on the holdout itself, applies the gates and registers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelwerk.api.base import ApiModel
from modelwerk.api.v1alpha1.common import ResourceRequirements

TRAIN_PATH_ENV = "MODELWERK_TRAIN_PATH"
OUTPUT_DIR_ENV = "MODELWERK_OUTPUT_DIR"
TARGET_ENV = "MODELWERK_TARGET"
TASK_ENV = "MODELWERK_TASK"
FEATURES_ENV = "MODELWERK_FEATURES"
SEED_ENV = "MODELWERK_SEED"
CONTRACT_ENV = (TRAIN_PATH_ENV, OUTPUT_DIR_ENV, TARGET_ENV, TASK_ENV, FEATURES_ENV, SEED_ENV)
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class EnvVar(ApiModel):
    """An environment variable of the trainer container (a plain value)."""

    name: str = Field(min_length=1, max_length=128, pattern=_ENV_NAME)
    """Variable name; the MODELWERK_ names of the contract are set by modelwerk."""
    value: str = Field(default="", max_length=32768)
    """Its value."""


class Trainer(ApiModel):
    """A container that trains the model (instead of spec.estimator)."""

    image: str = Field(min_length=1, max_length=512)
    """The image, for example registry.example.com/team/churn-trainer:1.4."""
    command: list[str] = Field(default_factory=list, max_length=64)
    """The entrypoint (default: the image's)."""
    args: list[str] = Field(default_factory=list, max_length=256)
    """Its arguments."""
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    """Extra environment variables (plain values)."""
    task: Literal["classification", "regression"]
    """What the model predicts: decides the metrics, the gates and how it is served."""
    resources: ResourceRequirements | None = None
    """Resources of the trainer container."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Kubernetes' imagePullPolicy for the image (default: Kubernetes' own)."""
