"""dist/install.yaml and the chart's generated parts stay what hack/dist.py makes of manifests/.

``make dist`` writes them; these tests fail, naming the file, when one drifted (a CRD or a
manifest changed without ``make dist``), and check the release rendering a tag produces.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.cluster.hack import script

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dist() -> ModuleType:
    return script("dist.py")


def objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_every_generated_file_is_up_to_date(dist: ModuleType) -> None:
    assert dist.stale_files() == [], "run `make dist`"


def test_install_yaml_is_the_default_overlay(dist: ModuleType) -> None:
    installed = objects((REPO / "dist" / "install.yaml").read_text())
    assert installed == dist.kustomize("default")
    kinds = {o["kind"] for o in installed}
    assert {"CustomResourceDefinition", "Namespace", "Deployment", "ClusterRole"} <= kinds


def test_the_charts_crds_are_the_generated_ones() -> None:
    chart = sorted(p.name for p in (REPO / "charts" / "modelwerk" / "crds").glob("*.yaml"))
    assert chart == sorted(p.name for p in (REPO / "crds").glob("*.modelwerk.dev.yaml"))
    for name in chart:
        assert (REPO / "charts" / "modelwerk" / "crds" / name).read_bytes() == (
            REPO / "crds" / name
        ).read_bytes()


def test_a_release_points_install_yaml_and_the_chart_at_its_images(
    dist: ModuleType, tmp_path: Path
) -> None:
    dist.release("1.2.3", "ghcr.io/acme", tmp_path)
    deployment = next(
        o for o in objects((tmp_path / "install.yaml").read_text()) if o["kind"] == "Deployment"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/acme/modelwerk-operator:1.2.3"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELWERK_RUNTIME_IMAGE"] == "ghcr.io/acme/modelwerk-runtime:1.2.3"
    chart = yaml.safe_load((tmp_path / "modelwerk" / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == ("1.2.3", "1.2.3")
    values = yaml.safe_load((tmp_path / "modelwerk" / "values.yaml").read_text())
    assert values["operator"]["image"]["repository"] == "ghcr.io/acme/modelwerk-operator"
    assert values["runtime"]["image"]["repository"] == "ghcr.io/acme/modelwerk-runtime"
    # The tag defaults to appVersion, so the chart and install.yaml install the same images.
    assert values["operator"]["image"]["tag"] == values["runtime"]["image"]["tag"] == ""


def test_a_release_version_must_be_semver(dist: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not a SemVer version"):
        dist.release("v1.2", "ghcr.io/acme", tmp_path)
