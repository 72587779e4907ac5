"""modelwerk.dev/v1alpha1: the four kinds."""

from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.api.v1alpha1.deployment import Deployment
from modelwerk.api.v1alpha1.model_version import ModelVersion
from modelwerk.api.v1alpha1.training_job import TrainingJob

KINDS = (Dataset, TrainingJob, ModelVersion, Deployment)

__all__ = ["KINDS", "Dataset", "Deployment", "ModelVersion", "TrainingJob"]
