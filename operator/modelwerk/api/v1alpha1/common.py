"""Types shared by several kinds: status basics, resources, secret references."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from modelwerk.api.base import ApiModel
from modelwerk.api.conditions import Condition

Quantity = Annotated[str | int, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]
"""A Kubernetes resource quantity such as ``500m``, ``1Gi`` or ``2``."""

ResourceName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]


class ResourceRequirements(ApiModel):
    """Compute resources for the pods the operator starts (as in a container's resources)."""

    requests: dict[str, Quantity] | None = None
    """Minimum resources, for example cpu: 500m, memory: 1Gi."""
    limits: dict[str, Quantity] | None = None
    """Maximum resources, for example memory: 2Gi."""


class SecretReference(ApiModel):
    """A Secret in the same namespace whose keys become environment variables of the pod."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the Secret; for s3:// it holds AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
    optionally AWS_ENDPOINT_URL and AWS_DEFAULT_REGION."""


class StatusBase(ApiModel):
    """Fields every kind's status carries."""

    # A status written by another operator version may carry fields this one does not know;
    # they must not make the whole object unreadable.
    model_config = ConfigDict(**{**ApiModel.model_config, "extra": "ignore"})

    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation this status describes."""
    phase: str | None = None
    """A one-word summary for printer columns; decisions read the conditions instead."""
    message: str | None = Field(default=None, max_length=32768)
    """Why the object is in its phase, for humans."""
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Current state; Ready is always present once the operator has seen the object."""
