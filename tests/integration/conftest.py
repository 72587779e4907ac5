"""Fixtures for integration tests against a real control plane (see tests/cluster/TESTING.md).

Session: ``control_plane`` (etcd + kube-apiserver + controller-manager + scheduler,
CRDs and operator RBAC installed), ``operator_kubeconfig``, ``kube`` (admin
ApiClient), ``operator_kube`` (ApiClient with the operator's RBAC).
Data servers (session): ``s3`` (versitygw), ``postgres`` (PostgreSQL 15).
Per test: ``namespace`` (fresh, restricted PodSecurity), ``node`` (kubelet
stand-in), ``operator`` (the operator running in-process, restartable).

Every test under tests/integration/ is marked ``integration`` automatically, so
``pytest -m "not integration"`` runs only the fast tests.
"""

from __future__ import annotations

import contextlib
import functools
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from modelwerk.kube import credentials
from modelwerk.kube.client import Kube
from tests.cluster import process
from tests.cluster.controlplane import REPO_ROOT, ControlPlane, ensure_binaries
from tests.cluster.install import install_crds, install_operator_rbac, write_operator_kubeconfig
from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.postgres import PostgresServer, running_postgres
from tests.cluster.rest import Rest
from tests.cluster.s3 import S3Server, ensure_versitygw

HERE = Path(__file__).resolve().parent
_BINARIES = pytest.StashKey[dict[str, Path]]()


def pytest_configure(config: pytest.Config) -> None:
    # Also registered in pyproject.toml; repeated here so this directory works on its own.
    config.addinivalue_line(
        "markers", "integration: runs against the real control plane started by the test session"
    )


# Seen once in ~10 runs: an asyncio transport of the in-process operator's (already closed)
# event loop is garbage-collected during a later test. It is a teardown-order artefact of
# running kopf in a thread of the test process, not a leak of a running operator.
_TRANSPORT_GC = "ignore:Exception ignored in.*_SelectorTransport.__del__:pytest.PytestUnraisableExceptionWarning"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.filterwarnings(_TRANSPORT_GC))


def pytest_collection_finish(session: pytest.Session) -> None:
    # Obtain the binaries before the first test starts, so that a first (cold)
    # build is not counted against that test's pytest-timeout.
    if session.config.option.collectonly:
        return
    if any(item.get_closest_marker("integration") for item in session.items):
        session.config.stash[_BINARIES] = ensure_binaries(progress=_terminal(session.config))
    if any("s3" in getattr(item, "fixturenames", ()) for item in session.items):
        ensure_versitygw()  # likewise: a first build of the S3 server happens before the tests


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    # Keep each phase's report on the item, so fixtures can tell whether the test failed.
    report: pytest.TestReport = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _terminal(config: pytest.Config) -> Callable[[str], None]:
    """A writer reaching the terminal even while pytest captures output (build progress)."""
    capture = config.pluginmanager.getplugin("capturemanager")

    def write(message: str) -> None:
        if capture is None:
            print(message, file=sys.__stderr__, flush=True)
            return
        with capture.global_and_fixture_disabled():
            print(message, file=sys.stderr, flush=True)

    return write


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """The session's control plane, with crds/ and manifests/base/rbac installed."""
    say = _terminal(request.config)
    binaries = request.config.stash.get(_BINARIES, None) or ensure_binaries(progress=say)
    cp = ControlPlane(binaries, progress=say)
    cp.start()
    try:
        started = time.monotonic()
        install_crds(cp, REPO_ROOT / "crds", say)
        install_operator_rbac(cp, REPO_ROOT / "manifests" / "base" / "rbac")
        write_operator_kubeconfig(cp, cp.workdir / "operator.kubeconfig")
        say(f"[cluster] CRDs and operator RBAC installed in {time.monotonic() - started:.1f}s")
        yield cp
    finally:
        pids = cp.all_pids
        cp.stop()  # raises if a component survived
        left = process.wait_gone(pids, timeout=5)
        assert not left, f"control-plane processes left behind: {left}"


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: ControlPlane) -> Path:
    """Kubeconfig of the operator's ServiceAccount (TokenRequest token, not admin)."""
    return control_plane.workdir / "operator.kubeconfig"


def _api_client(kubeconfig: Path) -> client.ApiClient:
    # Always from an explicit file: never the process-wide default configuration.
    return config.new_client_from_config(config_file=str(kubeconfig), persist_config=False)


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    """Admin (system:masters) ApiClient; e.g. ``client.CoreV1Api(kube).list_node()``."""
    api = _api_client(control_plane.admin_kubeconfig)
    yield api
    api.close()


@pytest.fixture(scope="session")
def operator_kube(operator_kubeconfig: Path) -> Iterator[client.ApiClient]:
    """ApiClient with exactly the operator's RBAC (to check what it may and may not do)."""
    api = _api_client(operator_kubeconfig)
    yield api
    api.close()


@pytest.fixture
def operator_client(operator_kubeconfig: Path) -> Kube:
    """The operator's own async API client, with the operator's ServiceAccount token (the
    test closes it)."""
    return Kube(credentials.load(str(operator_kubeconfig)), identity="integration-tests")


@pytest.fixture(scope="session")
def admin_rest(control_plane: ControlPlane) -> Rest:
    """The harness's small JSON client as admin (camelCase dicts in and out)."""
    return Rest.from_kubeconfig(control_plane.admin_kubeconfig)


@pytest.fixture
def namespace(request: pytest.FixtureRequest, admin_rest: Rest) -> Iterator[str]:
    """A fresh namespace enforcing the restricted Pod Security Standard; deleted after the test."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    admin_rest.create(
        "/api/v1/namespaces",
        {
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "modelwerk.dev/test": "true",
                },
            }
        },
    )
    # Pods are only admitted once the ServiceAccount controller has created `default`.
    deadline = time.monotonic() + 30
    while admin_rest.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default") is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"ServiceAccount {name}/default was not created within 30s")
        time.sleep(0.05)
    yield name
    # Not awaited: the namespace controller (and the stand-in's reaper) finish it in the background.
    admin_rest.delete(f"/api/v1/namespaces/{name}", {"propagationPolicy": "Background"})


@pytest.fixture(scope="session")
def s3(control_plane: ControlPlane) -> Iterator[S3Server]:
    """A real S3-compatible server (versitygw, hack/s3) on a free 127.0.0.1 port, with random
    root credentials; one per session, tests create buckets of their own."""
    server = S3Server(control_plane.workdir / "s3")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres(control_plane: ControlPlane) -> Iterator[PostgresServer]:
    """A real PostgreSQL 15 (Debian's binaries, hack/postgres) on a free 127.0.0.1 port: a
    fresh cluster with a random superuser password; tests create databases of their own."""
    with running_postgres(control_plane.workdir / "postgres") as server:
        yield server


@pytest.fixture(scope="session")
def _standin_node(control_plane: ControlPlane, admin_rest: Rest) -> Iterator[StandInNode]:
    node = StandInNode(admin_rest, control_plane.workdir / "node")
    node.register()
    yield node
    node.close()


@pytest.fixture
def node(_standin_node: StandInNode) -> Iterator[StandInNode]:
    """The kubelet stand-in (one Node per session); the test's auto drivers stop after it."""
    yield _standin_node
    _standin_node.stop_auto()


@contextlib.contextmanager
def running_operator(
    kubeconfig: Path, request: pytest.FixtureRequest, env: dict[str, str] | None = None
) -> Iterator[InProcessOperator]:
    """An in-process operator with ``env`` on top of the defaults, stopped afterwards; its log
    is printed with the test's failure."""
    op = InProcessOperator(kubeconfig, env=env)
    op.start()
    try:
        yield op
    finally:
        op.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(op.output[-20000:], file=sys.stderr)  # kopf's log, shown with the failure


@pytest.fixture
def operator_with(
    operator_kubeconfig: Path, request: pytest.FixtureRequest
) -> Callable[[dict[str, str]], contextlib.AbstractContextManager[InProcessOperator]]:
    """``with operator_with({"MODELWERK_…": …}) as op:`` an operator with settings of its own."""
    return functools.partial(running_operator, operator_kubeconfig, request)


@pytest.fixture
def operator(
    operator_kubeconfig: Path, request: pytest.FixtureRequest
) -> Iterator[InProcessOperator]:
    """The operator (``kopf run -m modelwerk.handlers``) in-process, with its own RBAC.

    ``operator.restart()`` restarts it; ``operator.output`` is its log.
    """
    with running_operator(operator_kubeconfig, request) as op:
        yield op
