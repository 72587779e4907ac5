"""Base classes for API types: camelCase aliases, attribute docstrings, CRD metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

KEEP_DEFAULT = "x-modelwerk-keep-default"
"""A field's ``json_schema_extra`` key for crdgen: the CRD keeps this field's default, so the
API server writes it (crdgen drops every other default)."""


class ApiModel(BaseModel):
    """Every API object and sub-object.

    Field docstrings become the CRD ``description`` (what ``kubectl explain`` shows); unknown
    fields are refused so a typo in a manifest is an error rather than silently ignored.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="forbid",
    )

    def to_k8s(self) -> dict[str, Any]:
        """Serialize as the API server stores it: camelCase, no unset optionals."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def with_cel(*rules: Mapping[str, str]) -> ConfigDict:
    """An ApiModel config whose schema carries these CEL rules (``x-kubernetes-validations``).

    Each rule has a twin ``model_validator`` on the model, so the operator refuses what the
    API server refuses, with the same message.
    """
    return ConfigDict(
        **ApiModel.model_config,
        json_schema_extra={"x-kubernetes-validations": [dict(rule) for rule in rules]},
    )


DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
"""The name of another object: a DNS subdomain, as the API server requires of every name.

Checked here too, because a reference becomes part of a URL or a pod spec: ``..`` or
``a/b`` must never reach either."""


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace."""

    name: ObjectName
    """Name of the referenced object."""


class ObjectMeta(BaseModel):
    """The subset of metav1.ObjectMeta the operator reads; everything else passes through."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str = ""
    namespace: str = ""
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class ScaleSubresource:
    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str | None = None


@dataclass(frozen=True)
class CrdMeta:
    """Names and presentation of a kind, rendered into its CustomResourceDefinition."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    printer_columns: tuple[PrinterColumn, ...] = ()
    scale: ScaleSubresource | None = None
    failed_phase: str = "Failed"
    """The phase shown when the operator cannot act on the object at all."""
    extra_validations: tuple[dict[str, str], ...] = field(default=())
    """CEL rules on the whole object, for example on ``metadata.name``."""


def name_rules(*, service: bool = False) -> tuple[dict[str, str], ...]:
    """CEL rules on ``metadata.name`` for a kind whose name the operator writes into label
    values (at most 63 characters) and, with ``service``, into a Service name (a DNS label
    starting with a letter)."""
    if service:
        return (
            {
                "rule": "self.metadata.name.size() <= 63 && "
                "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                "message": "metadata.name must be a DNS label of at most 63 characters that "
                "starts with a letter: the Deployment's Service is named after it",
            },
        )
    return (
        {
            "rule": "self.metadata.name.size() <= 63",
            "message": "metadata.name must be at most 63 characters: it is a label value on "
            "every object the operator creates for it",
        },
    )


class Resource(BaseModel):
    """A custom resource: apiVersion, kind, metadata, spec and status."""

    model_config = ConfigDict(populate_by_name=True, use_attribute_docstrings=True, extra="ignore")

    crd: ClassVar[CrdMeta]

    api_version: str = Field(default="modelwerk.dev/v1alpha1", alias="apiVersion")
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @classmethod
    def from_k8s(cls, body: Any) -> Self:
        return cls.model_validate(dict(body))
