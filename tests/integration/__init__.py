"""Integration tests against a real control plane (see tests/cluster/TESTING.md)."""
