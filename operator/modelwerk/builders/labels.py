"""Labels, names and owner references shared by every child object.

Children carry the standard ``app.kubernetes.io/*`` labels plus ``modelwerk.dev/owner-kind``
and ``modelwerk.dev/owner-name``, which pods inherit from their templates: that is how an
event on a Job's pod finds its way back to the Dataset or TrainingJob behind it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from modelwerk.api.base import Resource

MANAGED_BY = "modelwerk"
OWNER_KIND = "modelwerk.dev/owner-kind"
OWNER_NAME = "modelwerk.dev/owner-name"
MANAGED_SELECTOR = {"app.kubernetes.io/managed-by": MANAGED_BY}
COMPONENT = "app.kubernetes.io/component"


def managed_labels(**extra: str) -> dict[str, str]:
    """Labels of everything the operator creates, owned or not (artifact claims, versions)."""
    return {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "modelwerk",
        **extra,
    }


def child_labels(owner: Resource, component: str, **extra: str) -> dict[str, str]:
    return managed_labels(
        **{
            "app.kubernetes.io/name": "modelwerk",
            "app.kubernetes.io/instance": owner.metadata.name,
            COMPONENT: component,
            OWNER_KIND: owner.crd.kind,
            OWNER_NAME: owner.metadata.name,
            **extra,
        }
    )


def owner_reference(owner: Resource) -> dict[str, Any]:
    """Makes the child garbage-collected with its owner and marks who controls it."""
    return {
        "apiVersion": owner.api_version,
        "kind": owner.crd.kind,
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_name(owner: str, suffix: str, *, max_length: int = 63) -> str:
    """``<owner>-<suffix>``, shortened with a hash when it would exceed ``max_length``.

    >>> child_name("iris", "validate-1a2b")
    'iris-validate-1a2b'
    >>> len(child_name("x" * 80, "train-abc"))
    63
    """
    name = f"{owner}-{suffix}"
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: max_length - 9].rstrip('-')}-{digest}"
