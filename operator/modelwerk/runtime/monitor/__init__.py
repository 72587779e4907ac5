"""``modelwerk monitor``: the per-Deployment aggregator that joins labels with captured
predictions from every replica and serves the live figures per model version."""
