"""``helm install`` of charts/modelwerk into the real control plane, as a platform engineer runs it.

A second release (its own name and namespace: its cluster-scoped objects carry the release name,
so it never touches the session's own RBAC) installs with ``--wait``; the stand-in node reports
its operator pods Ready, which is what ``--wait`` waits for. The API server itself checks what
matters: the chart's objects are accepted (schemas, admission, the restricted Pod Security
profile of the namespace for its pods), its RBAC grants the operator exactly its verbs, and an
uninstall removes everything but the CRDs.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from typing import Any

from tests.cluster.controlplane import REPO_ROOT, ControlPlane
from tests.cluster.hack import tool
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until

CHART = REPO_ROOT / "charts" / "modelwerk"


def helm(cp: ControlPlane, *args: str, timeout: float = 180) -> str:
    done = subprocess.run(
        [str(tool("helm")), f"--kubeconfig={cp.admin_kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def can_i(cp: ControlPlane, namespace: str, verb: str, resource: str, *where: str) -> bool:
    account = f"system:serviceaccount:{namespace}:modelwerk-operator"
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={cp.admin_kubeconfig}", "auth", "can-i", verb, resource,
         f"--as={account}", *where],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


def test_helm_install_upgrade_and_uninstall(
    control_plane: ControlPlane, admin_rest: Rest, namespace: str, node: StandInNode
) -> None:
    """Into a namespace enforcing the restricted profile, as the chart's values advise."""
    release = f"mw{secrets.token_hex(2)}"
    node.auto(namespace, "app.kubernetes.io/name=modelwerk-operator", mode="ready")
    try:
        helm(control_plane, "install", release, str(CHART), f"--namespace={namespace}",
             "--wait", "--timeout=150s")  # fmt: skip
        status = json.loads(helm(control_plane, "status", release, f"--namespace={namespace}",
                                 "--output=json"))  # fmt: skip
        assert status["info"]["status"] == "deployed", status["info"]

        deployment = admin_rest.get(
            f"/apis/apps/v1/namespaces/{namespace}/deployments/modelwerk-operator"
        )
        assert deployment["status"].get("availableReplicas") == 2, deployment["status"]
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["serviceAccountName"] == "modelwerk-operator"
        assert container["image"] == "modelwerk/operator:0.1.0"
        env: dict[str, Any] = {e["name"]: e for e in container["env"]}
        assert env["MODELWERK_RUNTIME_IMAGE"]["value"] == "modelwerk/runtime:0.1.0"
        assert env["MODELWERK_LEADER_ELECTION"]["value"] == "true"
        assert env["MODELWERK_OPERATOR_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == (
            "metadata.namespace"
        )
        # The restricted profile admitted the operator's pods (a refusal leaves none).
        pods = admin_rest.get(
            f"/api/v1/namespaces/{namespace}/pods",
            labelSelector="app.kubernetes.io/name=modelwerk-operator",
        )["items"]
        assert len(pods) == 2, [p["metadata"]["name"] for p in pods]

        # The operator's identity in this namespace: its verbs, nothing more.
        assert can_i(control_plane, namespace, "create", "jobs.batch", "--all-namespaces")
        assert can_i(control_plane, namespace, "patch", "deployments.modelwerk.dev/status", "-A")
        assert can_i(
            control_plane, namespace, "update", "leases/modelwerk-operator", "-n", namespace
        )
        assert not can_i(control_plane, namespace, "list", "secrets", "--all-namespaces")
        assert not can_i(control_plane, namespace, "update", "deployments.modelwerk.dev", "-A")

        # A values change is an upgrade: the artifact store reaches the operator's env.
        helm(control_plane, "upgrade", release, str(CHART), f"--namespace={namespace}",
             "--reuse-values", "--set=artifactStore.uri=s3://models/prod",
             "--set=artifactStore.secretName=artifact-store", "--wait", "--timeout=150s")  # fmt: skip
        upgraded = admin_rest.get(
            f"/apis/apps/v1/namespaces/{namespace}/deployments/modelwerk-operator"
        )["spec"]["template"]["spec"]["containers"][0]["env"]
        values = {e["name"]: e.get("value") for e in upgraded}
        assert values["MODELWERK_ARTIFACT_STORE"] == "s3://models/prod"
        assert values["MODELWERK_ARTIFACT_STORE_SECRET"] == "artifact-store"
    finally:
        helm(control_plane, "uninstall", release, f"--namespace={namespace}", "--wait")
    cluster_role = f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{release}-operator"
    wait_until(lambda: admin_rest.get_or_none(cluster_role) is None, timeout=60, what="RBAC gone")
    assert (
        admin_rest.get_or_none(
            f"/apis/apps/v1/namespaces/{namespace}/deployments/modelwerk-operator"
        )
        is None
    )
    # CRDs stay (Helm never deletes crds/ objects): the session's own resources live on.
    assert admin_rest.get_or_none(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/datasets.modelwerk.dev"
    )
