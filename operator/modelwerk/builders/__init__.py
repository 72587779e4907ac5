"""Pure constructors of the Kubernetes objects the operator owns (plain dicts)."""
