"""Every kustomization renders, the operator pod is hardened, the RBAC is least-privilege."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZATIONS = sorted(
    str(p.parent.relative_to(ROOT))
    for p in ROOT.glob("**/kustomization.yaml")
    if ".venv" not in p.parts
)

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize)")


def render(path: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / path)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def test_every_kustomization_is_found() -> None:
    assert {
        "crds",
        "manifests/base",
        "manifests/overlays/default",
        "manifests/overlays/kind",
        "manifests/overlays/monitoring",
        "manifests/components/monitoring",
        "manifests/samples/iris",
    } <= set(KUSTOMIZATIONS)


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_renders(path: str) -> None:
    docs = render(path)
    assert docs
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name")


@pytest.mark.parametrize("overlay", ["manifests/overlays/default", "manifests/overlays/kind"])
def test_overlays_install_crds_and_operator(overlay: str) -> None:
    docs = render(overlay)
    crds = {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert crds == {
        f"{p}.modelwerk.dev" for p in ("datasets", "trainingjobs", "modelversions", "deployments")
    }
    deployment = _one(docs, "Deployment", "modelwerk-operator")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "modelwerk-operator"
    _one(docs, "ServiceAccount", "modelwerk-operator")
    _one(docs, "ClusterRoleBinding", "modelwerk-operator")
    _one(docs, "Service", "modelwerk-operator-metrics")


def test_operator_pod_is_hardened() -> None:
    docs = render("manifests/overlays/default")
    pod = _one(docs, "Deployment", "modelwerk-operator")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]


def test_kind_overlay_never_pulls_images() -> None:
    docs = render("manifests/overlays/kind")
    container = _one(docs, "Deployment", "modelwerk-operator")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["imagePullPolicy"] == "Never"
    assert {"name": "MODELWERK_IMAGE_PULL_POLICY", "value": "Never"} in container["env"]


def test_operator_role_is_least_privilege() -> None:
    role = _one(render("manifests/base/rbac"), "ClusterRole", "modelwerk-operator")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert "update" not in rule["verbs"], (
            "the operator never updates whole objects (no spec writes)"
        )
    granted = {
        (g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    assert ("", "secrets") not in granted, "the operator never reads Secrets; pods reference them"
    assert ("", "pods/exec") not in granted


def test_samples_namespace_enforces_the_restricted_pod_security_standard() -> None:
    ns = _one(render("manifests/samples/iris"), "Namespace", "modelwerk-demo")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_two_replicas_elect_a_leader_and_a_drain_keeps_one() -> None:
    docs = render("manifests/overlays/default")
    deployment = _one(docs, "Deployment", "modelwerk-operator")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELWERK_LEADER_ELECTION"]["value"] == "true"
    assert env["MODELWERK_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    pdb = _one(docs, "PodDisruptionBudget", "modelwerk-operator")
    assert pdb["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert pdb["spec"]["minAvailable"] == 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_leader_election_role_is_namespaced_and_names_its_lease() -> None:
    docs = render("manifests/base/rbac")
    role = _one(docs, "Role", "modelwerk-operator-leader-election")
    assert role["metadata"]["namespace"] == "modelwerk-system"
    verbs: dict[str, list[str] | None] = {}
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["coordination.k8s.io"] and rule["resources"] == ["leases"]
        for verb in rule["verbs"]:
            verbs[verb] = rule.get("resourceNames")
    # The operator never deletes, lists or watches Leases; create cannot name its object.
    assert verbs == {
        "get": ["modelwerk-operator"],
        "update": ["modelwerk-operator"],
        "create": None,
    }
    binding = _one(docs, "RoleBinding", "modelwerk-operator-leader-election")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "modelwerk-operator-leader-election",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "modelwerk-operator", "namespace": "modelwerk-system"}
    ]
    assert not [
        rule
        for rule in _one(docs, "ClusterRole", "modelwerk-operator")["rules"]
        if "leases" in rule["resources"]
    ], "Leases are granted in the operator's namespace only"


PROMETHEUS_OPERATOR_GROUP = "monitoring.coreos.com/"


@pytest.mark.parametrize("overlay", ["manifests/overlays/default", "manifests/overlays/kind"])
def test_default_overlays_need_no_prometheus_operator(overlay: str) -> None:
    assert not [d for d in render(overlay) if d["apiVersion"].startswith(PROMETHEUS_OPERATOR_GROUP)]


def test_monitoring_overlay_is_the_default_install_plus_the_component() -> None:
    default = {(d["kind"], d["metadata"]["name"]) for d in render("manifests/overlays/default")}
    monitoring = {
        (d["kind"], d["metadata"]["name"]) for d in render("manifests/overlays/monitoring")
    }
    assert monitoring - default == {
        ("ServiceMonitor", "modelwerk-operator"),
        ("PodMonitor", "modelwerk-serving"),
        ("PodMonitor", "modelwerk-monitor"),
        ("PrometheusRule", "modelwerk"),
        ("ConfigMap", "modelwerk-grafana-dashboard"),
    }
    assert default <= monitoring


def test_the_service_monitor_scrapes_the_operator_metrics_port() -> None:
    docs = render("manifests/overlays/monitoring")
    monitor = _one(docs, "ServiceMonitor", "modelwerk-operator")["spec"]
    service = _one(docs, "Service", "modelwerk-operator-metrics")
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["namespace"] in monitor["namespaceSelector"]["matchNames"]
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    pod = _one(docs, "Deployment", "modelwerk-operator")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert {"name": "metrics", "containerPort": 9090} in pod["spec"]["containers"][0]["ports"]
    # The operator's series name the namespace of the object they describe; keep it.
    assert endpoint["honorLabels"] is True
    assert {"targetLabel": "job", "replacement": "modelwerk-operator"} in endpoint["relabelings"]


def test_the_pod_monitor_scrapes_every_serving_pod() -> None:
    from modelwerk.api.v1alpha1 import Deployment, ModelVersion
    from modelwerk.builders.serving import build_track
    from modelwerk.builders.workload import WorkloadConfig

    monitor = _one(render("manifests/components/monitoring"), "PodMonitor", "modelwerk-serving")
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"any": True}
    dep = Deployment.from_k8s(
        {"metadata": {"name": "iris", "namespace": "team"}, "spec": {"modelVersion": "iris-v1"}}
    )
    mv = ModelVersion.from_k8s(
        {
            "metadata": {"name": "iris-v1", "namespace": "team"},
            "spec": {
                "model": "iris",
                "version": 1,
                "task": "classification",
                "artifact": {"uri": "pvc://a/m.joblib", "sha256": "0" * 64},
            },
        }
    )
    config = WorkloadConfig(image="i", image_pull_policy="Never")
    pod = build_track(dep, mv, "blue", 1, config)["spec"]["template"]
    labels = pod["metadata"]["labels"]
    for expression in spec["selector"]["matchExpressions"]:
        assert expression["operator"] == "Exists" and expression["key"] in labels
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["path"] == pod["metadata"]["annotations"]["prometheus.io/path"]
    (container,) = pod["spec"]["containers"]
    assert endpoint["port"] in {p["name"] for p in container["ports"]}
    relabeled = {r["targetLabel"]: r.get("sourceLabels") for r in endpoint["relabelings"]}
    assert relabeled["namespace"] == ["__meta_kubernetes_namespace"]
    assert relabeled["pod"] == ["__meta_kubernetes_pod_name"]
    # Prometheus turns every character of a label name that is invalid in a label into _.
    for target, key in (
        ("deployment", "modelwerk.dev/deployment"),
        ("track", "modelwerk.dev/track"),
    ):
        assert key in labels
        meta = "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)
        assert relabeled[target] == [meta]


def test_the_component_ships_the_dashboard_to_grafana() -> None:
    monitoring = ROOT / "manifests" / "components" / "monitoring"
    config_map = _one(
        render("manifests/components/monitoring"), "ConfigMap", "modelwerk-grafana-dashboard"
    )
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "modelwerk-system"
    dashboard = (monitoring / "grafana" / "modelwerk.json").read_text()
    assert json.loads(config_map["data"]["modelwerk.json"]) == json.loads(dashboard)


def test_the_sample_hpa_scales_the_sample_deployment_through_its_scale_subresource() -> None:
    hpa = _one(render("manifests/samples/autoscaling"), "HorizontalPodAutoscaler", "iris")
    dep = _one(render("manifests/samples/iris"), "Deployment", "iris")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        dep["apiVersion"],
        dep["kind"],
        dep["metadata"]["name"],
    )
    assert hpa["metadata"]["namespace"] == dep["metadata"]["namespace"]
    crd = yaml.safe_load((ROOT / "crds" / "deployments.modelwerk.dev.yaml").read_text())
    scale = crd["spec"]["versions"][0]["subresources"]["scale"]
    assert scale["labelSelectorPath"] == ".status.selector"
