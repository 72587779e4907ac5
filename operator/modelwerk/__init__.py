"""modelwerk: a Kubernetes-native MLOps operator for scikit-learn models."""

__version__ = "0.1.0"
