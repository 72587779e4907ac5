"""The modelwerk API: pydantic models that are the single source of the CRD schemas."""

GROUP = "modelwerk.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "modelwerk"

__all__ = ["API_VERSION", "CATEGORY", "GROUP", "VERSION"]
