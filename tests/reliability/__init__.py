"""Reliability campaigns against the real control plane; each writes its figures to docs/."""
