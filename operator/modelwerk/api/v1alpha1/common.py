"""Types shared by several kinds: status basics, resources, secret references."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from modelwerk.api.base import DNS_SUBDOMAIN, ApiModel, ObjectName, with_cel
from modelwerk.api.conditions import Condition

# --------------------------------------------------------------------------- URIs
URI_PATTERN = r"^(file|pvc|s3|https?)://[^\s]+$"
_CLAIM = DNS_SUBDOMAIN.strip("^$")


def _cel_string(regex: str) -> str:
    """``regex`` as a single-quoted CEL string literal (CEL reads backslash escapes too)."""
    return "'" + regex.replace("\\", "\\\\") + "'"


_DOTDOT = r"(^|/)\.\.(/|$)"
_URI_RULES = [
    {
        "rule": f"!self.matches({_cel_string(_DOTDOT)})",
        "message": "must not contain '..' path segments",
    },
    {
        "rule": "!self.startsWith('pvc://') || "
        f"(self.matches({_cel_string(f'^pvc://{_CLAIM}/[^/]')}) && "
        "self.matches('^pvc://[^/]{1,253}/'))",
        "message": "must look like pvc://<claim>/<path>, the claim a lower-case DNS name of at "
        "most 253 characters",
    },
]


def _check_uri(uri: str) -> str:
    if ".." in uri.split("/"):
        raise ValueError("must not contain '..' path segments")
    if uri.startswith("pvc://") and not (
        re.match(f"^pvc://{_CLAIM}/[^/]", uri) and re.match("^pvc://[^/]{1,253}/", uri)
    ):
        raise ValueError(
            "must look like pvc://<claim>/<path>, the claim a lower-case DNS name of at most "
            "253 characters"
        )
    return uri


Uri = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        pattern=URI_PATTERN,
        json_schema_extra={"x-kubernetes-validations": _URI_RULES},
    ),
    AfterValidator(_check_uri),
]
"""A location the operator hands to a pod: pvc://, file://, s3:// or http(s)://. GCS is
reached as s3:// through its interoperability endpoint (gcsfs is not in the image).

Path traversal (``..`` segments) is refused at admission as well as in the pod, and a
``pvc://`` claim must be a valid claim name, since it becomes a volume of the pod."""

# --------------------------------------------------------------------------- resources
QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
"""A non-negative Kubernetes quantity (the API's own pattern, without a minus sign)."""
_SUFFIXES = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{s: Decimal(10) ** e for s, e in
       (("n", -9), ("u", -6), ("m", -3), ("", 0), ("k", 3), ("M", 6), ("G", 9), ("T", 12),
        ("P", 15), ("E", 18))},
}  # fmt: skip


def parse_quantity(value: str | int) -> Decimal:
    """The amount a quantity stands for.

    >>> parse_quantity("1.5Gi") == 1.5 * 2**30, parse_quantity("250m"), parse_quantity("2e3")
    (True, Decimal('0.250'), Decimal('2000'))
    """
    if isinstance(value, int):
        return Decimal(value)
    if not re.match(QUANTITY_PATTERN, value):
        raise ValueError(f"{value!r} is not a quantity such as 500m, 1Gi or 2")
    number = re.match(r"^\+?[0-9.]+", value)
    assert number is not None
    digits, suffix = number.group(), value[number.end() :]
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(digits) * Decimal(10) ** Decimal(suffix[1:])
        return Decimal(digits) * _SUFFIXES[suffix]
    except ArithmeticError:
        raise ValueError(f"{value!r} is too large a quantity") from None


def _check_quantity(value: str | int) -> str | int:
    if isinstance(value, int) and value < 0:
        raise ValueError("a quantity must not be negative")
    parse_quantity(value)
    return value


Quantity = Annotated[
    str | int,
    Field(
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
            "maxLength": 64,
            "minimum": 0,
        }
    ),
    AfterValidator(_check_quantity),
]
"""A Kubernetes resource quantity such as ``500m``, ``1Gi`` or ``2``."""

ResourceName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]

_STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_EXTENDED_RESOURCE = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$"


def _names_rule(part: str) -> dict[str, str]:
    return {
        "rule": f"!has(self.{part}) || self.{part}.all(k, k in {list(_STANDARD_RESOURCES)} || "
        f"k.startsWith('hugepages-') || k.matches({_cel_string(_EXTENDED_RESOURCE)}))",
        "message": "a resource is cpu, memory, ephemeral-storage, hugepages-<size> or an "
        "extended resource such as nvidia.com/gpu",
        "fieldPath": f".{part}",
    }


def _known_resource(name: str) -> bool:
    return (
        name in _STANDARD_RESOURCES
        or name.startswith("hugepages-")
        or re.match(_EXTENDED_RESOURCE, name) is not None
    )


class ResourceRequirements(ApiModel):
    """Compute resources for the pods the operator starts (as in a container's resources)."""

    requests: dict[str, Quantity] | None = Field(default=None, max_length=16)
    """Minimum resources, for example cpu: 500m, memory: 1Gi."""
    limits: dict[str, Quantity] | None = Field(default=None, max_length=16)
    """Maximum resources, for example memory: 2Gi."""

    model_config = with_cel(
        _names_rule("requests"),
        _names_rule("limits"),
        {
            "rule": "!has(self.requests) || !has(self.limits) || self.limits.all(k, "
            "!(k in self.requests) || !isQuantity(string(self.requests[k])) || "
            "!isQuantity(string(self.limits[k])) || "
            "quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)",
            "message": "a request must not exceed its limit",
        },
    )

    @model_validator(mode="after")
    def _valid_for_a_pod(self) -> ResourceRequirements:
        for part in (self.requests or {}), (self.limits or {}):
            unknown = sorted(name for name in part if not _known_resource(name))
            if unknown:
                raise ValueError(
                    f"unknown resource {', '.join(unknown)}: a resource is cpu, memory, "
                    "ephemeral-storage, hugepages-<size> or an extended resource"
                )
        requests, limits = self.requests or {}, self.limits or {}
        for name in requests.keys() & limits.keys():
            if parse_quantity(requests[name]) > parse_quantity(limits[name]):
                raise ValueError("a request must not exceed its limit")
        return self


class SecretReference(ApiModel):
    """A Secret in the same namespace with the credentials of a data source."""

    name: ObjectName
    """Name of the Secret; for s3:// it holds AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
    optionally AWS_SESSION_TOKEN, AWS_ENDPOINT_URL and AWS_DEFAULT_REGION. The validation pod
    gets them prefixed with MODELWERK_SOURCE_, so they never replace the artifact store's."""


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
