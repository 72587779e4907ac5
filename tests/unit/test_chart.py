"""The Helm chart renders what the kustomize overlays render, with a real helm v4.

helm comes from hack/tools.py (built once from the Go module pinned in hack/helm, then cached). With
release name ``modelwerk`` in ``modelwerk-system``, the chart's objects equal the overlay's
exactly; the one difference is the Namespace object, which Helm leaves to ``--create-namespace``
(the release namespace must exist before Helm stores the release in it).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.hack import tool

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "modelwerk"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def helm() -> Path:
    return tool("helm")


def run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )


def template(
    helm: Path, *values: str, release: str = "modelwerk", namespace: str = "modelwerk-system"
) -> dict[tuple[str, str, str], Obj]:
    sets = [f"--set={v}" for v in values]
    done = run(
        helm, "template", release, str(CHART), f"--namespace={namespace}", "--include-crds", *sets
    )
    assert done.returncode == 0, done.stderr
    return by_key(d for d in yaml.safe_load_all(done.stdout) if d)


def by_key(objects: Any) -> dict[tuple[str, str, str], Obj]:
    found: dict[tuple[str, str, str], Obj] = {}
    for obj in objects:
        key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        assert key not in found, f"{key} rendered twice"
        found[key] = obj
    return found


def kustomize(overlay: str) -> dict[tuple[str, str, str], Obj]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "manifests" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    )
    rendered = by_key(d for d in yaml.safe_load_all(done.stdout) if d)
    namespace = rendered.pop(("Namespace", "", "modelwerk-system"))  # Helm's --create-namespace
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    return rendered


def differences(
    chart: dict[tuple[str, str, str], Obj], overlay: dict[tuple[str, str, str], Obj]
) -> list[str]:
    found = [f"only in the chart: {k}" for k in chart.keys() - overlay.keys()]
    found += [f"only in the overlay: {k}" for k in overlay.keys() - chart.keys()]
    for key in sorted(chart.keys() & overlay.keys()):
        if chart[key] != overlay[key]:
            found.append(
                f"{key} differs:\n--- chart\n{yaml.safe_dump(chart[key])}\n"
                f"--- overlay\n{yaml.safe_dump(overlay[key])}"
            )
    return found


def test_the_default_values_render_the_default_overlay(helm: Path) -> None:
    assert differences(template(helm), kustomize("default")) == []


def test_monitoring_adds_the_monitoring_component(helm: Path) -> None:
    chart = template(helm, "monitoring.enabled=true")
    assert differences(chart, kustomize("monitoring")) == []
    kinds = {k[0] for k in chart}
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= kinds
    # The rules' own templates reach Prometheus as written, not evaluated by Helm.
    rule = next(o for k, o in chart.items() if k[0] == "PrometheusRule")
    assert "{{ $labels.namespace }}" in yaml.safe_dump(rule)


def test_never_pulling_images_renders_the_kind_overlay(helm: Path) -> None:
    chart = template(helm, "operator.image.pullPolicy=Never", "runtime.image.pullPolicy=Never")
    assert differences(chart, kustomize("kind")) == []


def test_another_release_and_namespace_own_their_names(helm: Path) -> None:
    chart = template(helm, "monitoring.enabled=true", release="ml", namespace="ml-platform")
    namespaced = {k for k in chart if k[1]}
    assert namespaced and {k[1] for k in namespaced} == {"ml-platform"}
    cluster = {k[2] for k in chart if not k[1] and k[0] != "CustomResourceDefinition"}
    assert cluster == {"ml-operator", "ml-edit", "ml-view"}
    binding = chart[("ClusterRoleBinding", "", "ml-operator")]
    assert binding["roleRef"]["name"] == "ml-operator"
    assert binding["subjects"][0]["namespace"] == "ml-platform"
    monitor = chart[("ServiceMonitor", "ml-platform", "modelwerk-operator")]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ml-platform"]}


def operator_container(chart: dict[tuple[str, str, str], Obj]) -> Obj:
    deployment = chart[("Deployment", "modelwerk-system", "modelwerk-operator")]
    container: Obj = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_images_artifact_store_and_resources_are_values(helm: Path) -> None:
    chart = template(
        helm,
        "operator.image.repository=registry.example/mw/operator",
        "operator.image.tag=1.4.0",
        "runtime.image.repository=registry.example/mw/runtime",
        "runtime.image.tag=1.4.1",
        "artifactStore.uri=s3://models/prod",
        "artifactStore.endpoint=https://minio.example:9000",
        "artifactStore.region=eu-central-1",
        "artifactStore.secretName=artifact-store",
        "operator.resources.limits.memory=512Mi",
        "operator.replicas=3",
        "monitoring.enabled=true",
        "monitoring.labels.release=kube-prometheus-stack",
    )
    container = operator_container(chart)
    assert container["image"] == "registry.example/mw/operator:1.4.0"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELWERK_RUNTIME_IMAGE"] == "registry.example/mw/runtime:1.4.1"
    assert env["MODELWERK_ARTIFACT_STORE"] == "s3://models/prod"
    assert env["MODELWERK_ARTIFACT_STORE_ENDPOINT"] == "https://minio.example:9000"
    assert env["MODELWERK_ARTIFACT_STORE_REGION"] == "eu-central-1"
    assert env["MODELWERK_ARTIFACT_STORE_SECRET"] == "artifact-store"
    assert container["resources"]["limits"]["memory"] == "512Mi"
    assert chart[("Deployment", "modelwerk-system", "modelwerk-operator")]["spec"]["replicas"] == 3
    monitors = [
        o for k, o in chart.items() if k[0] in ("ServiceMonitor", "PodMonitor", "PrometheusRule")
    ]
    assert all(m["metadata"]["labels"]["release"] == "kube-prometheus-stack" for m in monitors)


def test_one_replica_without_leader_election_is_recreated_not_rolled(helm: Path) -> None:
    chart = template(helm, "operator.replicas=1", "operator.leaderElection=false")
    deployment = chart[("Deployment", "modelwerk-system", "modelwerk-operator")]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    env = {e["name"]: e.get("value") for e in operator_container(chart)["env"]}
    assert env["MODELWERK_LEADER_ELECTION"] == "false"
    assert ("PodDisruptionBudget", "modelwerk-system", "modelwerk-operator") not in chart


def test_replicas_without_leader_election_are_refused(helm: Path) -> None:
    done = run(helm, "template", "modelwerk", str(CHART), "--set=operator.leaderElection=false")
    assert done.returncode != 0
    assert "operator.replicas > 1 needs operator.leaderElection" in done.stderr


def test_helm_lint_passes(helm: Path) -> None:
    done = run(helm, "lint", "--strict", str(CHART))
    assert done.returncode == 0, done.stdout + done.stderr
