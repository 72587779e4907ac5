"""Conflicts, throttling and server errors, provoked on the real API server.

* 409: a writer with a stale resourceVersion gets a real Conflict; the operator's status
  writes (server-side apply) are unaffected and never put back, or take over, a condition
  another field manager owns.
* 429: API Priority and Fairness throttles the operator's ServiceAccount (a priority level
  with no seats of its own that rejects instead of queuing); the client retries until served.
* 500: a validating webhook that cannot be reached (the classic outage of a cluster add-on)
  fails the operator's status writes until it is removed; the write is retried and lands.

Nothing here is faked: every error comes from kube-apiserver itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modelwerk.api.v1alpha1 import Dataset
from modelwerk.kube.apply import apply_plan
from modelwerk.kube.client import Kube
from modelwerk.kube.lease import observe_lease, write_lease
from modelwerk.kube.resources import DATASETS
from modelwerk.logic.leader import LeaseRecord
from modelwerk.logic.plan import Plan
from modelwerk.logic.status import with_ready
from modelwerk.metrics import REGISTRY
from tests.cluster.controlplane import ControlPlane, free_port
from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.rest import Rest, RestError
from tests.cluster.wait import wait_until

GROUP = "/apis/modelwerk.dev/v1alpha1"
AUDITED = "example.com/Audited"


def path(namespace: str, name: str = "", sub: str = "") -> str:
    return f"{GROUP}/namespaces/{namespace}/datasets" + (f"/{name}" if name else "") + sub


def create_dataset(rest: Rest, namespace: str, name: str) -> dict[str, Any]:
    return rest.create(
        path(namespace),
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": name},
            "spec": {"source": {"builtin": "iris"}, "target": "target"},
        },
    )


def audited(message: str) -> dict[str, Any]:
    return {
        "type": AUDITED,
        "status": "True",
        "reason": "Checked",
        "message": message,
        "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def auditor_applies(rest: Rest, namespace: str, name: str, message: str) -> dict[str, Any]:
    """Another controller's server-side apply of its own condition (without force)."""
    return rest.request(
        "PATCH",
        path(namespace, name, "/status"),
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": name},
            "status": {"conditions": [audited(message)]},
        },
        query={"fieldManager": "example-auditor"},
        content_type="application/apply-patch+yaml",
    )


def condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    conditions = body.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == type_), {})


def status_owners(body: dict[str, Any], type_: str) -> set[str]:
    """Field managers owning the condition ``type_`` in the status."""
    key = "k:" + json.dumps({"type": type_}, separators=(",", ":"))
    return {
        entry["manager"]
        for entry in body["metadata"].get("managedFields", [])
        if key in entry.get("fieldsV1", {}).get("f:status", {}).get("f:conditions", {})
    }


def generation_observed(rest: Rest, namespace: str, name: str, generation: int) -> bool:
    return rest.get(path(namespace, name)).get("status", {}).get("observedGeneration") == generation


def bump(rest: Rest, namespace: str, name: str, seconds: int) -> int:
    """A harmless spec change: a new generation the operator has to report on."""
    body = rest.merge_patch(path(namespace, name), {"spec": {"activeDeadlineSeconds": seconds}})
    return int(body["metadata"]["generation"])


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_another_managers_condition_survives_operator_status_writes(
    admin_rest: Rest, namespace: str, operator: InProcessOperator
) -> None:
    create_dataset(admin_rest, namespace, "d")
    wait_until(lambda: generation_observed(admin_rest, namespace, "d", 1), what="first status")
    auditor_applies(admin_rest, namespace, "d", "checked v1")

    generation = bump(admin_rest, namespace, "d", 901)
    wait_until(lambda: generation_observed(admin_rest, namespace, "d", generation), what="status")

    body = admin_rest.get(path(namespace, "d"))
    assert condition(body, AUDITED)["message"] == "checked v1"
    assert condition(body, "Ready"), "the operator's own condition is there too"
    # The operator applied its status without taking the auditor's condition over...
    assert status_owners(body, AUDITED) == {"example-auditor"}
    assert "modelwerk-operator" in status_owners(body, "Ready")
    # ...so the auditor can still change it without a conflict (no force needed).
    auditor_applies(admin_rest, namespace, "d", "checked v2")
    generation = bump(admin_rest, namespace, "d", 902)
    wait_until(lambda: generation_observed(admin_rest, namespace, "d", generation), what="status")
    assert condition(admin_rest.get(path(namespace, "d")), AUDITED)["message"] == "checked v2"


async def test_a_stale_read_never_puts_back_another_managers_condition(
    admin_rest: Rest, namespace: str, operator_client: Kube
) -> None:
    """The operator decides from a read that is already outdated when it writes (as every
    controller does now and then); the field another manager changed meanwhile stays."""
    create_dataset(admin_rest, namespace, "d")
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        fresh = Dataset.from_k8s(admin_rest.get(path(namespace, "d")))
        first = with_ready(
            fresh.status, "Unknown", "Pending", "first", phase="Pending", generation=1, now=now
        )
        await apply_plan(operator_client, fresh, Plan(status=first), now=now)
        auditor_applies(admin_rest, namespace, "d", "checked v1")

        stale = Dataset.from_k8s(admin_rest.get(path(namespace, "d")))
        auditor_applies(admin_rest, namespace, "d", "checked v2")  # after the operator's read
        second = with_ready(
            stale.status, "Unknown", "Pending", "second", phase="Pending", generation=1, now=now
        )
        assert any(c.type == AUDITED for c in second.conditions)  # carried along from the read
        await apply_plan(operator_client, stale, Plan(status=second), now=now)
    finally:
        await operator_client.close()

    body = admin_rest.get(path(namespace, "d"))
    assert body["status"]["message"] == "second"
    assert condition(body, AUDITED)["message"] == "checked v2"
    assert status_owners(body, AUDITED) == {"example-auditor"}


async def test_a_write_with_a_stale_resource_version_loses_and_is_not_retried(
    control_plane: ControlPlane, admin_rest: Rest, operator_client: Kube
) -> None:
    """The operator's one write with a precondition is the leader election Lease: a replica
    whose copy is outdated must lose at once (409) and decide again from a fresh read."""
    namespace, name = "modelwerk-system", "modelwerk-operator"
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"

    def lease_updates() -> list[int]:
        return [
            e["responseStatus"]["code"]  # type: ignore[index]
            for e in control_plane.audit_events()
            if e["verb"] == "update" and e.get("objectRef", {}).get("resource") == "leases"  # type: ignore[union-attr]
        ]

    record = LeaseRecord(holder="conflict-test", lease_duration_seconds=15)
    try:
        if await observe_lease(operator_client, namespace, name) is None:
            free = LeaseRecord(lease_duration_seconds=1)
            assert await write_lease(operator_client, namespace, name, free, None)
        stale = await observe_lease(operator_client, namespace, name)
        admin_rest.merge_patch(lease_path, {"metadata": {"annotations": {"touched": "yes"}}})
        before = lease_updates()
        retries = sample("modelwerk_api_retries_total", code="409")
        assert await write_lease(operator_client, namespace, name, record, stale) is None
    finally:
        await operator_client.close()
    assert lease_updates()[len(before) :] == [409]  # sent once, refused once
    assert sample("modelwerk_api_retries_total", code="409") == retries
    assert admin_rest.get(lease_path)["spec"].get("holderIdentity") != "conflict-test"


def test_a_concurrent_status_writer_conflicts_while_the_operator_carries_on(
    admin_rest: Rest, namespace: str, operator: InProcessOperator
) -> None:
    """A classic read-modify-write controller (PUT with resourceVersion) and the operator
    write the same status: the other writer meets real 409s, the operator none."""
    create_dataset(admin_rest, namespace, "d")
    wait_until(lambda: generation_observed(admin_rest, namespace, "d", 1), what="first status")
    conflicts = 0
    for round_ in range(1, 4):
        read = admin_rest.get(path(namespace, "d"))  # the other writer reads...
        generation = bump(admin_rest, namespace, "d", 900 + round_)
        wait_until(  # ...the operator writes the status meanwhile...
            lambda g=generation: generation_observed(admin_rest, namespace, "d", g),
            what="the operator's status",
        )
        body = read
        while True:  # ...and the writer's update of its stale copy conflicts; it re-reads.
            status = body.setdefault("status", {})
            others = [c for c in status.get("conditions", []) if c["type"] != AUDITED]
            status["conditions"] = [*others, audited(f"round {round_}")]
            try:
                admin_rest.request(
                    "PUT", path(namespace, "d", "/status"), body, query={"fieldManager": "rmw"}
                )
                break
            except RestError as e:
                if e.status != 409:
                    raise
                conflicts += 1
                body = admin_rest.get(path(namespace, "d"))
    assert conflicts == 3  # one per round: the operator had written in between every time
    generation = bump(admin_rest, namespace, "d", 999)
    wait_until(lambda: generation_observed(admin_rest, namespace, "d", generation), what="status")
    body = admin_rest.get(path(namespace, "d"))
    assert condition(body, AUDITED)["message"] == "round 3"
    failures = [line for line in operator.output.splitlines() if "failed (attempt" in line]
    assert not [line for line in failures if f"namespace='{namespace}'" in line], failures


# ----------------------------------------------------------------------------- 429

JAIL = "modelwerk-test-jail"


@pytest.fixture
def throttled(admin_rest: Rest, control_plane: ControlPlane, namespace: str) -> Iterator[str]:
    """The operator's requests for Datasets in ``namespace`` go to a priority level with no
    seats of its own and no queue: one runs at a time, the rest get 429 at once."""
    flowcontrol = "/apis/flowcontrol.apiserver.k8s.io/v1"
    admin_rest.create(
        f"{flowcontrol}/prioritylevelconfigurations",
        {
            "metadata": {"name": JAIL},
            "spec": {
                "type": "Limited",
                "limited": {
                    "nominalConcurrencyShares": 0,
                    "lendablePercent": 0,
                    "borrowingLimitPercent": 0,
                    "limitResponse": {"type": "Reject"},
                },
            },
        },
    )
    admin_rest.create(
        f"{flowcontrol}/flowschemas",
        {
            "metadata": {"name": JAIL},
            "spec": {
                "priorityLevelConfiguration": {"name": JAIL},
                "matchingPrecedence": 500,
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [
                    {
                        "subjects": [
                            {
                                "kind": "ServiceAccount",
                                "serviceAccount": {
                                    "name": "modelwerk-operator",
                                    "namespace": "modelwerk-system",
                                },
                            }
                        ],
                        "resourceRules": [
                            {
                                "verbs": ["*"],
                                "apiGroups": ["modelwerk.dev"],
                                "resources": ["datasets"],
                                "namespaces": [namespace],
                            }
                        ],
                    }
                ],
            },
        },
    )
    wait_until(
        lambda: apf_metric(control_plane, "apiserver_flowcontrol_nominal_limit_seats") is not None,
        what="the API server to load the priority level",
    )
    yield JAIL
    admin_rest.delete(f"{flowcontrol}/flowschemas/{JAIL}")
    admin_rest.delete(f"{flowcontrol}/prioritylevelconfigurations/{JAIL}")


def apf_metric(cp: ControlPlane, name: str) -> float | None:
    """Sum of the API server's ``name`` samples for the jail's priority level."""
    total = None
    for line in cp.kubectl("get", "--raw", "/metrics").splitlines():
        if line.startswith(name + "{") and f'priority_level="{JAIL}"' in line:
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def datasets_cache_behind(
    rest: Rest, namespace: str, ahead: int
) -> tuple[dict[str, str], Callable[[], None]]:
    """Query parameters for a Dataset list the API server cannot answer yet: it waits up to
    3 s for its cache to reach a resourceVersion ``ahead`` writes in the future, then says
    504 "Too large resource version" with Retry-After (a real, transient 5xx). The returned
    function makes those writes, after which the same list is answered at once. ``ahead``
    must be far enough that the cluster's own writes do not get there first."""
    configmap = f"/api/v1/namespaces/{namespace}/configmaps"
    rest.create(configmap, {"metadata": {"name": "clock"}})
    current = int(rest.get(path(namespace))["metadata"]["resourceVersion"])
    params = {"resourceVersion": str(current + ahead), "resourceVersionMatch": "NotOlderThan"}

    def catch_up() -> None:
        for tick in range(ahead):
            rest.merge_patch(f"{configmap}/clock", {"data": {"tick": str(tick)}})

    return params, catch_up


async def until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """wait_until without blocking the event loop the client under test runs on."""
    await asyncio.to_thread(wait_until, check, timeout=timeout, interval=0.05, what=what)


async def test_throttled_requests_are_retried_until_served(
    control_plane: ControlPlane,
    admin_rest: Rest,
    namespace: str,
    throttled: str,
    operator_kubeconfig: Path,
    operator_client: Kube,
) -> None:
    create_dataset(admin_rest, namespace, "d")
    # Far ahead: no amount of the cluster's own writes lets the blocker through early.
    params, _ = datasets_cache_behind(admin_rest, namespace, ahead=100_000)
    # Another request of the operator's occupies the jail's only place meanwhile: a list
    # that waits 3 s for the API server's cache, then fails with 504.
    operator_rest = Rest.from_kubeconfig(operator_kubeconfig)

    def occupy() -> None:
        with pytest.raises(RestError, match="Too large resource version"):
            operator_rest.get(path(namespace), **params)

    blocker = asyncio.create_task(asyncio.to_thread(occupy))
    await until(
        lambda: apf_metric(control_plane, "apiserver_flowcontrol_current_executing_requests") == 1,
        what="the blocking request to execute",
    )
    rejected = apf_metric(control_plane, "apiserver_flowcontrol_rejected_requests_total") or 0.0
    retries = sample("modelwerk_api_retries_total", code="429")
    try:
        request = asyncio.create_task(operator_client.get(DATASETS, namespace, "d"))
        await until(
            lambda: sample("modelwerk_api_retries_total", code="429") > retries,
            what="the client to be throttled",
        )
        assert not request.done()
        # Once the blocker's 3 s are up its place is free, and a later retry (after
        # Retry-After: 1, three times) is served.
        body = await asyncio.wait_for(request, 30)
        await asyncio.wait_for(blocker, 30)
    finally:
        await operator_client.close()
    assert body is not None and body["metadata"]["name"] == "d"
    refused = apf_metric(control_plane, "apiserver_flowcontrol_rejected_requests_total")
    assert refused is not None and refused - rejected >= 1
    # Every refusal the API server counted was one retry of the client (Retry-After: 1).
    assert sample("modelwerk_api_retries_total", code="429") - retries == refused - rejected


async def test_a_transient_504_is_retried_until_served(
    admin_rest: Rest, namespace: str, operator_client: Kube
) -> None:
    params, catch_up = datasets_cache_behind(admin_rest, namespace, ahead=300)
    retries = sample("modelwerk_api_retries_total", code="504")
    try:
        request = asyncio.create_task(
            operator_client.request("GET", DATASETS.path(namespace), params=params)
        )
        await until(
            lambda: sample("modelwerk_api_retries_total", code="504") > retries,
            what="a first 504",
        )
        catch_up()
        listing = await asyncio.wait_for(request, 30)
    finally:
        await operator_client.close()
    assert listing["kind"] == "DatasetList"
    assert sample("modelwerk_api_retries_total", code="504") - retries >= 1


# ----------------------------------------------------------------------------- 500


WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


def install_webhook_down(admin_rest: Rest, namespace: str) -> str:
    """A validating webhook for Dataset status updates in ``namespace`` whose server is down."""
    name = f"modelwerk-test-down-{namespace}"
    admin_rest.create(
        WEBHOOKS,
        {
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": "down.example.com",
                    # Nothing listens there: the API server's call is refused.
                    "clientConfig": {"url": f"https://127.0.0.1:{free_port()}/validate"},
                    "rules": [
                        {
                            "apiGroups": ["modelwerk.dev"],
                            "apiVersions": ["v1alpha1"],
                            "operations": ["UPDATE"],
                            "resources": ["datasets/status"],
                            "scope": "Namespaced",
                        }
                    ],
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": namespace}
                    },
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 2,
                }
            ],
        },
    )
    return name


def test_status_writes_failing_with_500_are_retried_until_they_land(
    control_plane: ControlPlane, admin_rest: Rest, namespace: str, operator: InProcessOperator
) -> None:
    create_dataset(admin_rest, namespace, "probe")
    wait_until(lambda: generation_observed(admin_rest, namespace, "probe", 1), what="probe")
    webhook = install_webhook_down(admin_rest, namespace)
    try:
        wait_until(lambda: webhook_called(admin_rest, namespace), what="the webhook to be called")
        retries = sample("modelwerk_api_retries_total", code="500")
        create_dataset(admin_rest, namespace, "d")

        def status_writes() -> list[int]:
            return [
                e["responseStatus"]["code"]  # type: ignore[index]
                for e in control_plane.audit_events()
                if e.get("objectRef", {}).get("subresource") == "status"  # type: ignore[union-attr]
                and e.get("objectRef", {}).get("name") == "d"  # type: ignore[union-attr]
                and e.get("objectRef", {}).get("namespace") == namespace  # type: ignore[union-attr]
            ]

        # One reconcile sends its status write 4 times (3 retries) before it gives up.
        wait_until(lambda: len(status_writes()) >= 4, timeout=60, what="four refused writes")
        assert set(status_writes()) == {500}
        assert sample("modelwerk_api_retries_total", code="500") - retries >= 3
        assert not admin_rest.get(path(namespace, "d")).get("status", {}).get("observedGeneration")
    finally:
        admin_rest.delete(f"{WEBHOOKS}/{webhook}")
    # The work queue retries the reconcile with backoff; once the webhook is gone it lands.
    wait_until(
        lambda: generation_observed(admin_rest, namespace, "d", 1),
        timeout=60,
        what="the status to land once the webhook is gone",
    )


def webhook_called(admin_rest: Rest, namespace: str) -> bool:
    """Whether the API server calls the webhook yet: a dry-run status update of an object
    that exists fails then, and changes nothing either way."""
    try:
        admin_rest.request(
            "PATCH",
            path(namespace, "probe", "/status"),
            {"status": {"message": "probe"}},
            query={"dryRun": "All"},
            content_type="application/merge-patch+json",
        )
    except RestError as e:
        return e.status == 500
    return False
