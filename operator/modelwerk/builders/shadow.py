"""What a shadow adds to the serving workloads: the candidate's Service, and the environment
that makes the stable pods copy requests to it (read by ``runtime.server.shadow``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelwerk.api.v1alpha1.deployment import Deployment
from modelwerk.builders.experiment import service_url
from modelwerk.builders.labels import child_name

ENV_PREFIX = "MODELWERK_SHADOW_"


@dataclass(frozen=True)
class ShadowRole:
    """The stable color copies ``percent`` % of its requests to ``version``."""

    version: str
    percent: int


def shadow_service_name(dep: Deployment) -> str:
    return child_name(dep.metadata.name, "shadow")


def shadow_env(
    dep: Deployment, role: ShadowRole, service_ips: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The stable container's environment for ``role``.

    >>> from modelwerk.api.v1alpha1 import Deployment
    >>> dep = Deployment.from_k8s({"metadata": {"name": "iris", "namespace": "ml"},
    ...                            "spec": {"modelVersion": "m-v1"}})
    >>> [e["value"] for e in shadow_env(dep, ShadowRole("m-v2", 50))]
    ['http://iris-shadow.ml.svc:80', 'm-v2', '50']
    """
    values = {
        "URL": service_url(dep, shadow_service_name(dep), service_ips),
        "VERSION": role.version,
        "PERCENT": str(role.percent),
    }
    return [{"name": ENV_PREFIX + name, "value": value} for name, value in values.items()]
