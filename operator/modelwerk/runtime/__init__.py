"""Code that runs inside the workload pods: data validation, training and model serving.

Nothing here may import the operator's Kubernetes layer (enforced by import-linter); pods
report back through their termination message and the artifact store only.
"""
