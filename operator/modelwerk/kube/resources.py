"""The resource types the operator reads and writes, and how their URLs are formed."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from modelwerk.api import GROUP, VERSION


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        """The REST path, for example ``/apis/batch/v1/namespaces/ns/jobs/name``.

        >>> JOBS.path("ns", "train", "status")
        '/apis/batch/v1/namespaces/ns/jobs/train/status'
        """
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [root]
        if namespace is not None:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
        if sub is not None:
            parts.append(sub)
        return "/".join(parts)


DATASETS = ResourceType(GROUP, VERSION, "datasets", "Dataset")
TRAINING_JOBS = ResourceType(GROUP, VERSION, "trainingjobs", "TrainingJob")
MODEL_VERSIONS = ResourceType(GROUP, VERSION, "modelversions", "ModelVersion")
DEPLOYMENTS = ResourceType(GROUP, VERSION, "deployments", "Deployment")

JOBS = ResourceType("batch", "v1", "jobs", "Job")
PODS = ResourceType("", "v1", "pods", "Pod")
SERVICES = ResourceType("", "v1", "services", "Service")
PVCS = ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
CONFIG_MAPS = ResourceType("", "v1", "configmaps", "ConfigMap")
EVENTS = ResourceType("", "v1", "events", "Event")
APPS_DEPLOYMENTS = ResourceType("apps", "v1", "deployments", "Deployment")
HTTP_ROUTES = ResourceType("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
LEASES = ResourceType("coordination.k8s.io", "v1", "leases", "Lease")

BY_KIND: dict[tuple[str, str], ResourceType] = {
    (r.api_version, r.kind): r
    for r in (
        DATASETS,
        TRAINING_JOBS,
        MODEL_VERSIONS,
        DEPLOYMENTS,
        JOBS,
        PODS,
        SERVICES,
        PVCS,
        CONFIG_MAPS,
        EVENTS,
        APPS_DEPLOYMENTS,
        HTTP_ROUTES,
        LEASES,
    )
}


def resource_of(api_version: str, kind: str) -> ResourceType:
    try:
        return BY_KIND[(api_version, kind)]
    except KeyError:
        raise ValueError(f"the operator does not manage {kind} ({api_version})") from None
