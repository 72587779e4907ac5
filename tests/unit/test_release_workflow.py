"""The release workflow (.github/workflows/release.yaml) does what a release needs, checked
without GitHub: the tag trigger, both images for two architectures pushed to ghcr.io, the
rendering by hack/dist.py that its own tests cover, the chart pushed as an OCI artifact, and
install.yaml and the chart attached to the release. Every shell step must at least parse."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "release.yaml"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as a boolean
    return doc


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = job["steps"]
    return found


def uses(job: dict[str, Any], action: str) -> dict[str, Any]:
    matches = [s for s in steps(job) if s.get("uses", "").split("@")[0] == action]
    assert len(matches) == 1, f"{action}: {matches}"
    return matches[0]


def scripts(workflow: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for job in workflow["jobs"].values() for s in steps(job))


def test_it_runs_on_version_tags_only(workflow: dict[str, Any]) -> None:
    assert workflow["on"] == {"push": {"tags": ["v*"]}}
    assert workflow["permissions"] == {"contents": "read"}  # jobs ask for more, each its own


def test_both_images_are_pushed_for_amd64_and_arm64(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["images"]
    assert job["strategy"]["matrix"]["image"] == ["operator", "runtime"]
    for image in job["strategy"]["matrix"]["image"]:
        assert (REPO / "images" / image / "Dockerfile").is_file()
    assert job["permissions"]["packages"] == "write"
    uses(job, "docker/setup-qemu-action")
    uses(job, "docker/setup-buildx-action")
    assert uses(job, "docker/login-action")["with"]["registry"] == "ghcr.io"
    build = uses(job, "docker/build-push-action")["with"]
    assert build["platforms"] == "linux/amd64,linux/arm64"
    assert build["push"] is True
    assert build["file"] == "images/${{ matrix.image }}/Dockerfile"
    assert build["tags"].endswith(
        "/modelwerk-${{ matrix.image }}:${{ steps.meta.outputs.version }}"
    )


def test_the_release_renders_pushes_and_attaches_install_yaml_and_the_chart(
    workflow: dict[str, Any],
) -> None:
    job = workflow["jobs"]["release"]
    assert job["needs"] == "images"  # never a release whose images are missing
    assert job["permissions"]["contents"] == "write"
    assert uses(job, "azure/setup-helm")["with"]["version"].startswith("v4.")
    run = "\n".join(s.get("run", "") for s in steps(job))
    assert "python hack/dist.py --check" in run
    assert re.search(r"hack/dist\.py --release .* --registry .* --out build/release", run, re.S)
    assert "helm package build/release/modelwerk" in run
    assert re.search(r"helm push .*modelwerk-.*\.tgz.*oci://", run, re.S)
    assert "build/release/install.yaml" in run and "gh release" in run
    # The registry the images go to is the one the chart and install.yaml point at.
    images = workflow["jobs"]["images"]["steps"]
    meta = next(s["run"] for s in images if s.get("id") == "meta")
    assert meta == next(s["run"] for s in steps(job) if s.get("id") == "meta")


def test_every_action_is_pinned_to_a_version(workflow: dict[str, Any]) -> None:
    for job in workflow["jobs"].values():
        for step in steps(job):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+(\.\d+)*", step["uses"]), step["uses"]


def test_every_shell_step_parses(workflow: dict[str, Any]) -> None:
    # GitHub substitutes ${{ … }} before the shell runs; a word stands in for it here.
    script = re.sub(r"\$\{\{[^}]*\}\}", "expression", scripts(workflow))
    done = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
