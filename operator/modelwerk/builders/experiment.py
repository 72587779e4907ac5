"""What an A/B experiment adds to the serving workloads: each arm's Service, and the
environment that makes a serving pod take part (read by ``runtime.server.experiment``).

Arm A is the active color (the stable version), arm B the idle color (the new version). During
the experiment the stable Service selects both colors; a pod that receives a request for the
other arm forwards it to that arm's Service, ``<name>-arm-a`` or ``<name>-arm-b``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from modelwerk.api.v1alpha1.deployment import Deployment
from modelwerk.builders.labels import child_name

Arm = Literal["a", "b"]
ENV_PREFIX = "MODELWERK_EXPERIMENT_"


@dataclass(frozen=True)
class ArmRole:
    """A color's part in an experiment."""

    arm: Arm
    salt: str


def arm_service_name(dep: Deployment, arm: Arm) -> str:
    return child_name(dep.metadata.name, f"arm-{arm}")


def service_url(dep: Deployment, service: str, ips: Mapping[str, str] | None) -> str:
    """``service`` by its cluster IP once it has one (the pods then need no cluster DNS; a
    Service keeps its IP for life), by its DNS name before.

    >>> from modelwerk.api.v1alpha1 import Deployment
    >>> dep = Deployment.from_k8s({"metadata": {"name": "iris", "namespace": "ml"},
    ...                            "spec": {"modelVersion": "m-v1"}})
    >>> service_url(dep, "iris-shadow", None), service_url(dep, "iris-shadow", {"iris-shadow": "10.96.0.7"})
    ('http://iris-shadow.ml.svc:80', 'http://10.96.0.7:80')
    """
    host = (ips or {}).get(service) or f"{service}.{dep.metadata.namespace}.svc"
    return f"http://{host}:{dep.spec.service.port}"


def arm_env(
    dep: Deployment, role: ArmRole, service_ips: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The serving container's environment for ``role``.

    >>> from modelwerk.api.v1alpha1 import Deployment
    >>> spec = {"modelVersion": "m-v2", "strategy": {"experiment": {"key": {"header": "x-user"}}}}
    >>> dep = Deployment.from_k8s({"metadata": {"name": "iris", "namespace": "ml"}, "spec": spec})
    >>> {e["name"][21:]: e["value"] for e in arm_env(dep, ArmRole("a", "s1"))}["PEER_URL"]
    'http://iris-arm-b.ml.svc:80'
    """
    experiment = dep.spec.strategy.experiment
    assert experiment is not None
    peer = arm_service_name(dep, "b" if role.arm == "a" else "a")
    values = {
        "ARM": role.arm,
        "SHARE_B": repr(experiment.share_b),
        "SALT": role.salt,
        # Without a key every request is its own unit; the header is then never present.
        "KEY": experiment.key.setting() if experiment.key else "header:x-modelwerk-no-key",
        "PEER_URL": service_url(dep, peer, service_ips),
        "FORWARD_TIMEOUT_SECONDS": repr(experiment.forward_timeout_seconds),
    }
    return [{"name": ENV_PREFIX + name, "value": value} for name, value in values.items()]
