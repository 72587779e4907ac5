"""The e2e tier: the whole product on a real cluster, from any kubeconfig.

Set ``MODELWERK_E2E_KUBECONFIG`` to run it (``make e2e-node`` and ``make e2e-kind`` do); without
it every test here is skipped with that reason, so a plain ``pytest`` needs no cluster.

The suite installs modelwerk as a user would, ``kubectl apply --server-side -k
manifests/overlays/$MODELWERK_E2E_OVERLAY`` (default ``kind``: images are loaded, never
pulled), so the operator runs as a pod from its image under its real RBAC. Test namespaces are
labelled ``pod-security.kubernetes.io/enforce=restricted``: every pod modelwerk creates must
comply. ``MODELWERK_E2E_INSTALL=0`` uses an operator that is already installed;
``MODELWERK_E2E_KEEP=1`` keeps the test namespace for a look afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.kubectl import Kubectl, KubectlError, condition, diagnostics, wait_for
from tests.e2e.prometheus import Prometheus, Unreachable, host_address

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KUBECONFIG_ENV = "MODELWERK_E2E_KUBECONFIG"
OPERATOR_NAMESPACE = "modelwerk-system"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: runs against the cluster in $MODELWERK_E2E_KUBECONFIG")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(
        reason=f"{KUBECONFIG_ENV} is not set: the e2e tier needs a cluster"
        " (make e2e-node, make e2e-kind, or point it at any kubeconfig)"
    )
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)
            if not os.environ.get(KUBECONFIG_ENV):
                item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    funcargs = getattr(item, "funcargs", {})
    if report.failed and report.when == "call" and "kubectl" in funcargs:
        namespaces = [n for n in (funcargs.get("namespace"), OPERATOR_NAMESPACE) if n]
        try:
            text = diagnostics(funcargs["kubectl"], namespaces)
        except Exception as e:  # diagnostics must never hide the failure itself
            text = f"(diagnostics failed: {e!r})"
        report.sections.append(("cluster diagnostics", text))
        server = funcargs.get("prometheus")
        if isinstance(server, Prometheus):
            report.sections.append(("prometheus", _prometheus_diagnostics(server)))
    return report


def _prometheus_diagnostics(server: Prometheus) -> str:
    try:
        targets = "\n".join(
            f"{t['labels'].get('job')} {t['scrapeUrl']} {t['health']} {t.get('lastError', '')}"
            for t in server.targets()
        )
        alerts = "\n".join(f"{a['labels']} {a['state']}" for a in server.alerts())
    except Exception as e:  # diagnostics must never hide the failure itself
        targets, alerts = f"(failed: {e!r})", ""
    return f"targets:\n{targets}\nalerts:\n{alerts}\nlog:\n{server.log()}"


@pytest.fixture(scope="session")
def kubectl() -> Kubectl:
    path = Path(os.environ[KUBECONFIG_ENV]).expanduser()
    if not path.is_file():
        pytest.fail(f"{KUBECONFIG_ENV}={path}: no such file")
    client = Kubectl(path)
    wait_for(lambda: client.run("get", "--raw=/readyz"), timeout=60, what="the API server")
    return client


@pytest.fixture(scope="session")
def operator(kubectl: Kubectl) -> dict[str, object]:
    """modelwerk installed from manifests/, its operator pod Ready; returns that pod."""
    if os.environ.get("MODELWERK_E2E_INSTALL", "1") != "0":
        overlay = REPO / "manifests" / "overlays" / os.environ.get("MODELWERK_E2E_OVERLAY", "kind")
        kubectl.run("apply", "--server-side", "--force-conflicts", "-k", str(overlay), timeout=180)
        kubectl.run(
            "wait", "--for=condition=Established", "--timeout=60s",
            "crd/datasets.modelwerk.dev", "crd/trainingjobs.modelwerk.dev",
            "crd/modelversions.modelwerk.dev", "crd/deployments.modelwerk.dev",
        )  # fmt: skip
    try:
        kubectl.wait(
            "deployment.apps/modelwerk-operator", "Available", OPERATOR_NAMESPACE, timeout=300
        )
    except (KubectlError, AssertionError) as e:
        pytest.fail(
            f"the operator did not become Ready: {e}\n{diagnostics(kubectl, [OPERATOR_NAMESPACE])}"
        )
    pods = kubectl.list("pods", OPERATOR_NAMESPACE, "app.kubernetes.io/name=modelwerk-operator")
    ready = [p for p in pods if condition(p, "Ready") == "True"]
    assert ready, f"no Ready operator pod: {[p['metadata']['name'] for p in pods]}"
    return ready[0]


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl, operator: dict[str, object]) -> Iterator[str]:
    name = f"mw-e2e-{secrets.token_hex(3)}"
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "app.kubernetes.io/part-of": "modelwerk-e2e",
                },
            },
        }
    )
    yield name
    if os.environ.get("MODELWERK_E2E_KEEP") != "1":
        kubectl.delete("namespace", name)


@pytest.fixture(scope="session")
def prometheus(kubectl: Kubectl, operator: dict[str, object]) -> Iterator[Prometheus | None]:
    """A Prometheus on this machine scraping the cluster as manifests/components/monitoring
    says (tests/e2e/prometheus.py), stopped after the session; None where the cluster's pods
    and this machine do not share a network (kind), with the reason printed."""
    try:
        address = host_address(kubectl)
    except Unreachable as e:
        print(f"[prometheus] not started: {e}")
        yield None
        return
    server = Prometheus(kubectl, address)
    try:
        server.start()
        yield server
    finally:
        server.stop()
