"""Operator scale benchmark: the Deployment decision alone, and the operator on a real control
plane with 1,000 modelwerk Deployments (see results.md)."""
