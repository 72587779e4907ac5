"""Security on the real control plane: what the operator's ServiceAccount may do, and the
restricted Pod Security Standard for every pod it creates.

The artifact side of issue 7 part 5 (content-addressed, never overwritten, verified by sha256
before unpickling) is in tests/unit/runtime/test_artifact_store.py and
tests/unit/server/test_loading.py.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from modelwerk.api.v1alpha1 import Dataset, Deployment, ModelVersion, TrainingJob
from modelwerk.builders.dataset import build_validation_job
from modelwerk.builders.model_version import build_verification_job
from modelwerk.builders.serving import build_track
from modelwerk.builders.training_job import build_training_job
from tests.cluster.controlplane import ControlPlane
from tests.cluster.rest import Rest, RestError
from tests.cluster.wait import wait_until

OPERATOR = "system:serviceaccount:modelwerk-system:modelwerk-operator"

# What manifests/base/rbac grants the operator, as `kubectl auth can-i --list` prints it:
# (resource.group, resource name or "" for all, verb). A verb added to the ClusterRole fails
# this test until it is added here too: every grant is a decision, reviewed with the code that
# needs it.
Grant = tuple[str, str, str]
GRANTED: frozenset[Grant] = frozenset(
    {
        (resource, "", verb)
        for resource, verbs in {
            "datasets.modelwerk.dev": "get list watch patch",
            "deployments.modelwerk.dev": "get list watch patch",
            "trainingjobs.modelwerk.dev": "get list watch patch create",
            "modelversions.modelwerk.dev": "get list watch patch create",
            "datasets.modelwerk.dev/status": "get patch",
            "trainingjobs.modelwerk.dev/status": "get patch",
            "modelversions.modelwerk.dev/status": "get patch",
            "deployments.modelwerk.dev/status": "get patch",
            "customresourcedefinitions.apiextensions.k8s.io": "list watch",
            "namespaces": "list watch",
            "events": "create patch",
            "events.events.k8s.io": "create patch",
            "jobs.batch": "get list watch create delete",
            "pods": "get list watch",
            "deployments.apps": "get list watch create patch delete",
            "services": "get list watch create patch delete",
            "persistentvolumeclaims": "get list watch create",
            "httproutes.gateway.networking.k8s.io": "get list watch patch",
        }.items()
        for verb in verbs.split()
    }
    # A namespace's artifact store override: one ConfigMap name, read only; no Secrets at all.
    | {("configmaps", "modelwerk-artifact-store", "get")}
)
# Granted to every authenticated identity by the API server's default roles
# (system:basic-user, system:discovery, system:public-info-viewer).
EVERYONE: frozenset[Grant] = frozenset(
    {
        ("selfsubjectreviews.authentication.k8s.io", "", "create"),
        ("selfsubjectaccessreviews.authorization.k8s.io", "", "create"),
        ("selfsubjectrulesreviews.authorization.k8s.io", "", "create"),
    }
)
# Namespace-scoped grants (Roles) on top of GRANTED, by namespace.
IN_NAMESPACE: dict[str, frozenset[Grant]] = {
    # Leader election: its own Lease, by name; create cannot be limited to a name.
    "modelwerk-system": frozenset(
        {
            ("leases.coordination.k8s.io", "modelwerk-operator", "get"),
            ("leases.coordination.k8s.io", "modelwerk-operator", "update"),
            ("leases.coordination.k8s.io", "", "create"),
        }
    ),
}

_ROW = re.compile(
    r"^(?P<resource>\S*)\s+\[(?P<urls>[^\]]*)\]\s+\[(?P<names>[^\]]*)\]\s+\[(?P<verbs>[^\]]*)\]$"
)


def can_i_list(
    cp: ControlPlane, namespace: str, *, as_user: str | None = OPERATOR
) -> tuple[set[Grant], set[tuple[str, str]]]:
    """``kubectl auth can-i --list`` parsed: (resource, name, verb), (non-resource URL, verb)."""
    args = ["auth", "can-i", "--list", f"--namespace={namespace}"]
    if as_user:
        args.append(f"--as={as_user}")
        out = cp.kubectl(*args)
    else:
        out = cp.kubectl(*args, kubeconfig=cp.workdir / "operator.kubeconfig")
    lines = out.splitlines()
    assert lines[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    resources: set[Grant] = set()
    urls: set[tuple[str, str]] = set()
    for line in lines[1:]:
        row = _ROW.match(line.strip() if line.startswith(" ") else line)
        if row is None:  # a row without a resource starts with the URL column
            row = _ROW.match(" " + line.strip())
        assert row is not None, f"unparsed row: {line!r}"
        verbs = row["verbs"].split()
        if row["resource"]:
            resources.update(
                (row["resource"], name, verb)
                for name in (row["names"].split() or [""])
                for verb in verbs
            )
        for url in row["urls"].split():
            urls.update((url, verb) for verb in verbs)
    return resources, urls


@pytest.mark.parametrize("where", ["default", "modelwerk-system", "test-namespace"])
def test_the_operator_can_do_exactly_what_its_role_grants(
    control_plane: ControlPlane, namespace: str, where: str
) -> None:
    target = namespace if where == "test-namespace" else where
    resources, urls = can_i_list(control_plane, target)
    expected = GRANTED | EVERYONE | IN_NAMESPACE.get(target, frozenset())
    assert resources - expected == set(), "granted but not expected"
    assert expected - resources == set(), "expected but not granted"
    # Non-resource URLs: only reads, and only what any ServiceAccount gets (discovery, health).
    assert {verb for _, verb in urls} == {"get"}
    _, baseline_urls = can_i_list(
        control_plane, target, as_user=f"system:serviceaccount:{namespace}:default"
    )
    assert urls == baseline_urls


def test_impersonation_lists_what_the_operators_own_token_gets(
    control_plane: ControlPlane, namespace: str
) -> None:
    # The audit above impersonates; the operator's TokenRequest token must see the same rules.
    assert can_i_list(control_plane, namespace, as_user=None) == can_i_list(
        control_plane, namespace
    )


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("get", "secrets"),
        ("list", "secrets"),
        ("create", "pods"),
        ("create", "pods/exec"),
        ("update", "datasets.modelwerk.dev"),
        ("delete", "modelversions.modelwerk.dev"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
        ("escalate", "clusterroles.rbac.authorization.k8s.io"),
        ("impersonate", "serviceaccounts"),
        ("create", "serviceaccounts/token"),
        ("patch", "nodes"),
        ("delete", "persistentvolumeclaims"),
    ],
)
def test_what_the_operator_must_never_do(
    control_plane: ControlPlane, namespace: str, verb: str, resource: str
) -> None:
    # Spelled out for the reader; the exact-set audit above already implies each of these.
    done = subprocess.run(
        [
            "kubectl",
            f"--kubeconfig={control_plane.admin_kubeconfig}",
            "auth",
            "can-i",
            verb,
            resource,
            f"--namespace={namespace}",
            f"--as={OPERATOR}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (1, "no"), done.stderr


def _pod(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _dry_run_pod(rest: Rest, namespace: str, name: str, spec: dict[str, Any]) -> None:
    rest.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        _pod(namespace, name, spec),
        query={"dryRun": "All"},
    )


ROOTFUL = {
    "containers": [
        {
            "name": "c",
            "image": "busybox",
            "securityContext": {"privileged": True, "runAsUser": 0},
        }
    ],
    "hostNetwork": True,
}


def test_the_test_namespaces_enforce_the_restricted_standard(
    admin_rest: Rest, namespace: str
) -> None:
    labels = admin_rest.get(f"/api/v1/namespaces/{namespace}")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # Enforcement is live: PodSecurity admission refuses a pod breaking the standard, even as
    # admin and even on a dry run, and names what is wrong.
    with pytest.raises(RestError) as refused:
        admin_rest.create(f"/api/v1/namespaces/{namespace}/pods", _pod(namespace, "bad", ROOTFUL))
    assert refused.value.status == 403
    message = str(refused.value.body)
    assert 'violates PodSecurity "restricted:latest"' in message
    for broken in ("host namespaces", "privileged", "allowPrivilegeEscalation", "runAsNonRoot"):
        assert broken in message
    assert admin_rest.get(f"/api/v1/namespaces/{namespace}/pods")["items"] == []
    # The same pod passes a namespace without the label: the refusal came from the label.
    admin_rest.create("/api/v1/namespaces", {"metadata": {"name": f"{namespace}-open"}})
    try:
        wait_until(  # the ServiceAccount admission plugin wants `default` to exist first
            lambda: admin_rest.get_or_none(
                f"/api/v1/namespaces/{namespace}-open/serviceaccounts/default"
            ),
            timeout=30,
            what="the default ServiceAccount",
        )
        _dry_run_pod(admin_rest, f"{namespace}-open", "bad", ROOTFUL)
    finally:
        admin_rest.delete(f"/api/v1/namespaces/{namespace}-open")


def _workload_pod_specs(namespace: str, store: str) -> dict[str, dict[str, Any]]:
    """The pod spec of every kind of pod the operator creates, from its own builders."""
    from modelwerk.builders.artifact_store import parse_store
    from modelwerk.builders.workload import WorkloadConfig

    config = WorkloadConfig(
        image="ghcr.io/modelwerk/runtime:dev",
        image_pull_policy="IfNotPresent",
        store=parse_store(store, endpoint="http://10.0.0.1:7070", secret="store")
        if store.startswith("s3")
        else parse_store(store),
    )
    model_uri = (
        "s3://mlops/team/models/iris/x/model.joblib"
        if store.startswith("s3")
        else "pvc://modelwerk-artifacts/models/iris/x/model.joblib"
    )
    meta = {"namespace": namespace, "uid": "00000000-0000-0000-0000-000000000001"}
    dataset = Dataset.from_k8s(
        {
            "metadata": {"name": "iris", **meta},
            "spec": {
                "source": {"uri": "s3://bucket/iris.csv", "secretRef": {"name": "s3"}},
                "target": "target",
            },
            "status": {
                "version": "sha256:" + "a" * 64,
                "snapshotUri": "pvc://modelwerk-artifacts/datasets/iris/x/snapshot.parquet",
            },
        }
    )
    tj = TrainingJob.from_k8s(
        {
            "metadata": {"name": "iris-rf", **meta},
            "spec": {
                "datasetRef": {"name": "iris"},
                "model": {"name": "iris"},
                "estimator": {"name": "RandomForestClassifier"},
            },
        }
    )
    mv = ModelVersion.from_k8s(
        {
            "metadata": {"name": "iris-v1", **meta},
            "spec": {
                "model": "iris",
                "version": 1,
                "task": "classification",
                "artifact": {"uri": model_uri, "sha256": "0" * 64},
            },
        }
    )
    dep = Deployment.from_k8s(
        {"metadata": {"name": "iris", **meta}, "spec": {"modelVersion": "iris-v1"}}
    )
    return {
        "validation": build_validation_job(dataset, "f" * 10, config)["spec"]["template"]["spec"],
        "training": build_training_job(tj, dataset, "f" * 10, config)["spec"]["template"]["spec"],
        "verification": build_verification_job(mv, config)["spec"]["template"]["spec"],
        "server": build_track(dep, mv, "blue", 1, config)["spec"]["template"]["spec"],
    }


@pytest.mark.parametrize("store", ["pvc://modelwerk-artifacts", "s3://mlops/team"])
@pytest.mark.parametrize("kind", ["validation", "training", "verification", "server"])
def test_every_pod_the_operator_builds_passes_the_restricted_standard(
    admin_rest: Rest, namespace: str, kind: str, store: str
) -> None:
    # The other integration tests run these pods in restricted namespaces, where the Job and
    # Deployment controllers could not create them otherwise; this says so per kind, directly.
    spec = _workload_pod_specs(namespace, store)[kind]
    _dry_run_pod(admin_rest, namespace, f"{kind}-pod", spec)
