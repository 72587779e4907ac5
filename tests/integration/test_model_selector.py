"""``modelSelector.stage`` against the real API server: a Deployment that follows the
Production version of a model serves it even when newer versions exist, and moves when another
version is promoted to Production; and ``kubectl get`` shows ModelVersions without wrapping."""

from __future__ import annotations

from tests.cluster.controlplane import ControlPlane
from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.serving import GROUP, create_deployment, tracks, wait_for_status
from tests.integration.test_closed_loop import V1, V2, _chain
from tests.integration.test_rollbacks import register
from tests.integration.test_training_chain import phase_is


def stage(rest: Rest, namespace: str, version: str, value: str) -> None:
    rest.merge_patch(
        f"{GROUP}/namespaces/{namespace}/modelversions/{version}", {"spec": {"stage": value}}
    )


def test_a_deployment_follows_the_production_version_of_its_model(
    control_plane: ControlPlane,
    admin_rest: Rest,
    namespace: str,
    operator: InProcessOperator,
    node: StandInNode,
) -> None:
    _chain(admin_rest, node, namespace)
    register(admin_rest, namespace, V2, 2)  # newer, and not in Production
    path = create_deployment(
        admin_rest,
        namespace,
        modelSelector={"model": "iris-classifier", "stage": "Production"},
        replicas=1,
    )
    waiting = wait_for_status(
        admin_rest,
        path,
        lambda s: (
            s.get("reason") == "NoReadyVersion" or "in stage Production" in s.get("message", "")
        ),
        timeout=60,
        what="the Deployment to wait for a Production version",
    )
    assert (
        "No Ready ModelVersion of model iris-classifier in stage Production" in waiting["message"]
    )
    assert tracks(admin_rest, namespace) == {}

    stage(admin_rest, namespace, V1, "Production")
    wait_for_status(
        admin_rest,
        path,
        lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == V1,
        timeout=120,
        what="v1, the Production version, served (not v2, the newest)",
    )

    stage(admin_rest, namespace, V2, "Production")
    wait_until(
        lambda: (
            phase_is(admin_rest, namespace, "modelversions", V2, "Ready")
            and admin_rest.get(f"{GROUP}/namespaces/{namespace}/modelversions/{V1}")["spec"][
                "stage"
            ]
            == "Archived"
        ),
        timeout=60,
        what="v1 archived: one Production version per model",
    )
    wait_for_status(
        admin_rest,
        path,
        lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == V2,
        timeout=120,
        what="the Deployment to move to the new Production version",
    )

    # The printer columns: the dataset version in 12 hex digits, the full one with -o wide.
    dataset_version = admin_rest.get(f"{GROUP}/namespaces/{namespace}/modelversions/{V1}")["spec"][
        "lineage"
    ]["datasetVersion"]
    short = dataset_version.removeprefix("sha256:")[:12]
    listed = control_plane.kubectl("get", "modelversions", "-n", namespace)
    assert "DATASET-VERSION" in listed and short in listed and dataset_version not in listed, listed
    wide = control_plane.kubectl("get", "modelversions", "-n", namespace, "-o", "wide")
    assert dataset_version in wide, wide
    assert max(len(line) for line in listed.splitlines()) < 120, listed
