"""Install the project's own objects into a test control plane.

Owns: applying the CRDs from ``crds/`` (and waiting until they are
Established), applying the operator RBAC from ``manifests/base/rbac``, and
writing a kubeconfig that authenticates as the operator's ServiceAccount with a
TokenRequest token -- so tests run the operator with exactly its RBAC.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.cluster.controlplane import ControlPlane, write_kubeconfig
from tests.cluster.rest import Rest, RestError

OPERATOR_NAMESPACE = "modelwerk-system"
OPERATOR_SERVICE_ACCOUNT = "modelwerk-operator"


def _render(cp: ControlPlane, directory: Path) -> str:
    if (directory / "kustomization.yaml").is_file():
        return cp.kubectl("kustomize", str(directory))
    return "\n---\n".join(p.read_text() for p in sorted(directory.glob("*.yaml")))


def install_crds(cp: ControlPlane, crds_dir: Path, progress: Callable[[str], None]) -> list[str]:
    """Apply every CRD under ``crds_dir``; wait until Established. Returns the CRD names."""
    if not crds_dir.is_dir() or not any(crds_dir.glob("*.yaml")):
        progress(f"[cluster] no CRDs in {crds_dir} yet: nothing to install")
        return []
    rendered = _render(cp, crds_dir)
    names = [
        doc["metadata"]["name"]
        for doc in yaml.safe_load_all(rendered)
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]
    if not names:
        raise RuntimeError(f"{crds_dir} has YAML files but no CustomResourceDefinition in them")
    cp.kubectl(
        "apply", "--server-side", "--field-manager=modelwerk-tests", "-f", "-", input=rendered
    )
    admin = Rest.from_kubeconfig(cp.admin_kubeconfig)
    # Polled rather than `kubectl wait`, which fails outright ("conditions accessor error")
    # when it reads a CRD before the API server has given it any condition at all.
    for name in names:
        _wait_established(admin, name)
    # Established comes a moment before the storage serves: lists answer 429
    # "storage is (re)initializing" until then. Wait, so tests never see it.
    for doc in yaml.safe_load_all(rendered):
        if doc and doc.get("kind") == "CustomResourceDefinition":
            spec = doc["spec"]
            version = next(v["name"] for v in spec["versions"] if v.get("served", True))
            _wait_listable(admin, f"/apis/{spec['group']}/{version}/{spec['names']['plural']}")
    return names


def _wait_established(admin: Rest, name: str, timeout: float = 60) -> None:
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
    deadline = time.monotonic() + timeout
    while not any(
        c.get("type") == "Established" and c.get("status") == "True"
        for c in (admin.get(path).get("status") or {}).get("conditions") or []
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRD {name} was not Established within {timeout:.0f}s")
        time.sleep(0.1)


def _wait_listable(admin: Rest, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.get(path, limit="1")
            return
        except RestError as e:
            if e.status != 429 or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def install_operator_rbac(cp: ControlPlane, rbac_dir: Path) -> None:
    """Apply the operator's Namespace, ServiceAccount and (Cluster)Roles/Bindings."""
    if not (rbac_dir / "kustomization.yaml").is_file():
        raise RuntimeError(
            f"{rbac_dir}/kustomization.yaml is missing: the operator RBAC is needed to run the "
            "operator with its own permissions"
        )
    cp.kubectl(
        "apply",
        "--server-side",
        "--field-manager=modelwerk-tests",
        "-f",
        "-",
        input=_render(cp, rbac_dir),
    )


def write_operator_kubeconfig(
    cp: ControlPlane,
    path: Path,
    *,
    namespace: str = OPERATOR_NAMESPACE,
    service_account: str = OPERATOR_SERVICE_ACCOUNT,
    expiration: int = 24 * 3600,
) -> Path:
    """Write a kubeconfig with a TokenRequest token for the ServiceAccount (not admin)."""
    admin = Rest.from_kubeconfig(cp.admin_kubeconfig)
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": expiration},
    }
    token = admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token", request
    )["status"]["token"]
    write_kubeconfig(
        path,
        cp.server,
        cp.ca_file,
        user=f"system:serviceaccount:{namespace}:{service_account}",
        token=token,
    )
    _wait_authorized(Rest.from_kubeconfig(path))
    return path


def _wait_authorized(client: Rest, timeout: float = 10) -> None:
    # RBAC is evaluated from the API server's informer caches: give a freshly
    # applied binding a moment, so the first test does not race it.
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "list", "resource": "pods"}},
    }
    deadline = time.monotonic() + timeout
    while not client.create("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)[
        "status"
    ]["allowed"]:
        if time.monotonic() > deadline:
            raise RuntimeError(
                "the operator ServiceAccount still cannot list pods:"
                " is its ClusterRoleBinding applied?"
            )
        time.sleep(0.1)
