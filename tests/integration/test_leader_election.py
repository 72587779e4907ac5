"""Two operator replicas on the real control plane: one leads, the other only watches.

Each replica is a real ``modelwerk run`` process under the operator's ServiceAccount and
RBAC, with a token of its own; the API server's audit log (every write by a ServiceAccount
of modelwerk-system) says which replica wrote what. Timing is the production default:
lease 15 s, renew deadline 10 s, retry period 2 s. Hand-over times are measured and printed
(docs/reliability.md has the figures); the assertions on them are deliberately loose.
"""

from __future__ import annotations

import sys
import time
import urllib.error
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelwerk.kube.client import Kube
from modelwerk.kube.lease import lease_record, observe_lease, write_lease
from modelwerk.logic.leader import Action, Candidate, ElectionTiming, next_lease
from tests.cluster.controlplane import ControlPlane
from tests.cluster.replica import Replica
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until

LEASE = "/apis/coordination.k8s.io/v1/namespaces/modelwerk-system/leases/modelwerk-operator"
LEASE_DURATION, RETRY_PERIOD = 15.0, 2.0  # the settings' defaults, which the replicas use


def dataset(rest: Rest, namespace: str, name: str) -> None:
    rest.create(
        f"/apis/modelwerk.dev/v1alpha1/namespaces/{namespace}/datasets",
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": name},
            "spec": {"source": {"builtin": "iris"}, "target": "target"},
        },
    )


def reconciled(rest: Rest, namespace: str, name: str) -> bool:
    path = f"/apis/modelwerk.dev/v1alpha1/namespaces/{namespace}/datasets/{name}"
    return rest.get(path).get("status", {}).get("observedGeneration") == 1


def writes_by(cp: ControlPlane, replica: Replica) -> list[str]:
    """Every write the API server received with this replica's token, as readable lines."""
    found = []
    for event in cp.audit_events():
        extra: Any = event.get("user", {}).get("extra", {})  # type: ignore[union-attr]
        if replica.credential_id not in extra.get("authentication.kubernetes.io/credential-id", []):
            continue
        ref: Any = event.get("objectRef", {})
        if ref.get("resource") == "selfsubjectaccessreviews":
            continue  # a question, not a write (the harness checks each new token with one)
        resource = ref.get("resource", "") + (
            f"/{ref['subresource']}" if ref.get("subresource") else ""
        )
        where = f"{ref.get('namespace', '')}/{ref.get('name', '')}"
        code = event.get("responseStatus", {}).get("code")  # type: ignore[union-attr]
        found.append(f"{event['verb']} {resource} {where} -> {code}")
    return found


def leading(replica: Replica) -> bool:
    try:
        return replica.leading()
    except (urllib.error.URLError, ConnectionError):
        return False  # not serving /metrics yet, or gone


def holder(rest: Rest) -> str:
    return str(rest.get(LEASE)["spec"].get("holderIdentity") or "")


def renewals(rest: Rest, count: int) -> None:
    """Wait until the leader renewed the Lease ``count`` more times: proof that election
    rounds (the standby's too, at the same period) ran meanwhile, without sleeping."""
    seen = [rest.get(LEASE)["spec"]["renewTime"]]

    def renewed() -> bool:
        latest = rest.get(LEASE)["spec"]["renewTime"]
        if latest != seen[-1]:
            seen.append(latest)
        return len(seen) > count

    wait_until(renewed, timeout=count * (RETRY_PERIOD + 5), what=f"{count} renewals")


def one_leader(replicas: list[Replica]) -> Replica | None:
    leaders = [r for r in replicas if leading(r)]
    assert len(leaders) <= 1, f"two leaders at once: {[r.name for r in leaders]}"
    return leaders[0] if leaders else None


@pytest.fixture
def replicas(
    control_plane: ControlPlane, admin_rest: Rest, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], Replica]]:
    """Starts replicas by name; stops them (and removes the Lease) after the test."""
    started: list[Replica] = []
    if admin_rest.get_or_none(LEASE) is not None:
        admin_rest.delete(LEASE)  # start without a holder left by an earlier test

    def start(name: str) -> Replica:
        replica = Replica(control_plane, name)
        replica.start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        if replica.alive():
            replica.thaw()  # a frozen process cannot act on SIGTERM
            replica.terminate()
    if admin_rest.get_or_none(LEASE) is not None:
        admin_rest.delete(LEASE)
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for replica in started:
            print(f"----- replica {replica.name} -----\n{replica.log[-8000:]}", file=sys.stderr)


def report(capsys: pytest.CaptureFixture[str], message: str) -> None:
    with capsys.disabled():
        print(f"\n[leader election] {message}", file=sys.stderr)


def test_exactly_one_replica_leads_and_the_standby_writes_nothing(
    control_plane: ControlPlane,
    admin_rest: Rest,
    namespace: str,
    replicas: Callable[[str], Replica],
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = replicas("replica-a"), replicas("replica-b")  # racing for a Lease nobody holds
    leader = wait_until(lambda: one_leader([a, b]), timeout=60, what="a leader")
    standby = b if leader is a else a
    assert holder(admin_rest).startswith(f"{leader.name}_")
    # Both watch: the standby's queue fills, but it runs nothing.
    for name in ("d1", "d2", "d3"):
        dataset(admin_rest, namespace, name)
    for name in ("d1", "d2", "d3"):
        wait_until(lambda n=name: reconciled(admin_rest, namespace, n), what=f"{name} reconciled")
    wait_until(
        lambda: standby.metrics().get("modelwerk_workqueue_depth", 0) >= 3,
        what="the standby to have queued the Datasets it watched",
    )
    renewals(admin_rest, 2)  # more election rounds while the leader holds on
    assert one_leader([a, b]) is leader
    assert standby.reconciles() == 0
    assert leader.reconciles() >= 3
    # The API server's own record: the leader wrote status, children and its Lease; the
    # standby wrote nothing at all (its election rounds only read the Lease).
    leader_writes = writes_by(control_plane, leader)
    assert any(f"patch datasets/status {namespace}/d1" in w for w in leader_writes), leader_writes
    assert any("leases modelwerk-system/modelwerk-operator" in w for w in leader_writes)
    # Both may have read "no Lease" and sent a create: the API server lets one through and
    # refuses the other (409), which is how the race is decided. That refused create, before
    # any Lease existed, is the only request the standby may have sent; once the Lease named
    # the leader, it wrote nothing at all.
    standby_writes = writes_by(control_plane, standby)
    assert standby_writes in ([], [LOST_CREATE]), standby_writes
    race = "lost the race to create it (409)" if standby_writes else "found it held"
    report(capsys, f"the standby {race}")
    assert "Leader election round failed" not in standby.log  # losing is not an error
    assert holder(admin_rest).startswith(f"{leader.name}_")


LOST_CREATE = "create leases modelwerk-system/modelwerk-operator -> 409"


async def test_a_replica_that_loses_the_race_to_create_the_lease_stands_by(
    control_plane: ControlPlane, admin_rest: Rest, operator_client: Kube
) -> None:
    """The race of the test above, made certain: two replicas both read that there is no
    Lease and both create one. The second create is refused; the loser reports "someone
    else won" (not an error, and without retrying), and its next round stands by."""
    namespace, name = "modelwerk-system", "modelwerk-operator"
    timing = ElectionTiming(lease_duration=15, renew_deadline=10, retry_period=2)
    wall = datetime.now(UTC)
    if admin_rest.get_or_none(LEASE) is not None:
        admin_rest.delete(LEASE)
    try:
        assert await observe_lease(operator_client, namespace, name) is None
        first = next_lease(Candidate("first"), None, timing, now=0.0, wall=wall)
        second = next_lease(Candidate("second"), None, timing, now=0.0, wall=wall)
        assert first.write is not None and second.write is not None  # both decided to create
        creates = len(_lease_creates(control_plane))
        assert await write_lease(operator_client, namespace, name, first.write, None)
        assert await write_lease(operator_client, namespace, name, second.write, None) is None
        assert _lease_creates(control_plane)[creates:] == [201, 409]  # sent once, refused once
        # The loser's next round reads the Lease and stands by.
        lease = lease_record(await observe_lease(operator_client, namespace, name))
        after = next_lease(second.candidate, lease, timing, now=1.0, wall=wall)
        assert after.action is Action.STANDBY and after.write is None, after
        assert not after.candidate.leading(timing, 1.0)
    finally:
        await operator_client.close()
        if admin_rest.get_or_none(LEASE) is not None:
            admin_rest.delete(LEASE)


def _lease_creates(cp: ControlPlane) -> list[int]:
    return [
        e["responseStatus"]["code"]  # type: ignore[index]
        for e in cp.audit_events()
        if e["verb"] == "create" and e.get("objectRef", {}).get("resource") == "leases"  # type: ignore[union-attr]
    ]


def leader_then_standby(replicas: Callable[[str], Replica]) -> tuple[Replica, Replica]:
    """replica-a started and leading, then replica-b started and standing by."""
    a = replicas("replica-a")
    wait_until(lambda: leading(a), timeout=60, what="replica-a to lead")
    b = replicas("replica-b")
    wait_until(lambda: b.metrics().get("modelwerk_leader") == 0, what="replica-b to stand by")
    return a, b


def test_a_crashed_leader_is_replaced_within_the_lease_duration(
    control_plane: ControlPlane,
    admin_rest: Rest,
    namespace: str,
    replicas: Callable[[str], Replica],
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = leader_then_standby(replicas)
    transitions = admin_rest.get(LEASE)["spec"]["leaseTransitions"]

    a.kill()  # no cleanup, no release: the Lease has to expire
    killed = time.monotonic()
    wait_until(lambda: leading(b), timeout=3 * LEASE_DURATION, interval=0.05, what="hand-over")
    handover = time.monotonic() - killed
    report(capsys, f"crash hand-over: {handover:.1f}s (lease {LEASE_DURATION:.0f}s)")

    lease = admin_rest.get(LEASE)["spec"]
    assert lease["holderIdentity"].startswith("replica-b_")
    assert lease["leaseTransitions"] == transitions + 1
    # Not before the lease could have expired (a's last renewal was at most a retry period
    # before the kill), and not much later than lease + retry period.
    assert LEASE_DURATION - 2 * RETRY_PERIOD <= handover < 2 * (LEASE_DURATION + RETRY_PERIOD)
    # The new leader does the work.
    dataset(admin_rest, namespace, "after-crash")
    wait_until(lambda: reconciled(admin_rest, namespace, "after-crash"), what="reconciled")
    assert any("datasets/status" in w for w in writes_by(control_plane, b))


def test_a_graceful_shutdown_hands_over_at_the_next_round(
    control_plane: ControlPlane,
    admin_rest: Rest,
    namespace: str,
    replicas: Callable[[str], Replica],
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = leader_then_standby(replicas)

    stopping = time.monotonic()
    assert a.terminate() == 0  # SIGTERM, as the kubelet sends on a rolling update
    stopped = time.monotonic() - stopping
    wait_until(lambda: leading(b), timeout=LEASE_DURATION, interval=0.05, what="hand-over")
    handover = time.monotonic() - stopping
    report(
        capsys,
        f"graceful hand-over: {handover:.1f}s from SIGTERM ({stopped:.1f}s of it the old "
        f"leader shutting down; retry period {RETRY_PERIOD:.0f}s)",
    )
    assert "Released Lease modelwerk-system/modelwerk-operator" in a.log
    assert handover < LEASE_DURATION  # released, not expired
    dataset(admin_rest, namespace, "after-handover")
    wait_until(lambda: reconciled(admin_rest, namespace, "after-handover"), what="reconciled")


def test_a_leader_cut_off_past_its_lease_never_acts_again(
    control_plane: ControlPlane,
    admin_rest: Rest,
    namespace: str,
    replicas: Callable[[str], Replica],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The hard case: the leader is frozen mid-flight (SIGSTOP, like a long GC pause or a
    partition), the standby takes over, and the old leader resumes with work queued and
    timers due. Its renew deadline has passed, so it must not write a thing."""
    a, b = leader_then_standby(replicas)
    dataset(admin_rest, namespace, "before")
    wait_until(lambda: reconciled(admin_rest, namespace, "before"), what="reconciled by a")

    a.freeze()
    frozen = time.monotonic()
    wait_until(lambda: leading(b), timeout=3 * LEASE_DURATION, interval=0.05, what="takeover")
    report(capsys, f"takeover from a frozen leader: {time.monotonic() - frozen:.1f}s")
    # Work arrives while a is frozen; its watch delivers it the moment it resumes.
    for name in ("during-1", "during-2"):
        dataset(admin_rest, namespace, name)
    for name in ("during-1", "during-2"):
        wait_until(lambda n=name: reconciled(admin_rest, namespace, n), what=f"{name} by b")
    writes_before = writes_by(control_plane, a)

    a.thaw()
    wait_until(lambda: a.metrics().get("modelwerk_leader") == 0, what="a to know it lost")
    dataset(admin_rest, namespace, "after")
    wait_until(lambda: reconciled(admin_rest, namespace, "after"), what="after, by b")
    renewals(admin_rest, 2)  # a's queue and election rounds have run meanwhile
    assert writes_by(control_plane, a) == writes_before
    assert leading(b) and not leading(a)
    assert holder(admin_rest).startswith("replica-b_")
    assert "Stopped leading as replica-a" in a.log


ROLE_BINDING = (
    "/apis/rbac.authorization.k8s.io/v1/namespaces/modelwerk-system/rolebindings/"
    "modelwerk-operator-leader-election"
)


def test_a_leader_that_cannot_renew_stops_while_its_lease_is_still_valid(
    control_plane: ControlPlane,
    admin_rest: Rest,
    replicas: Callable[[str], Replica],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The leader keeps running but its renewals fail (here: its Lease permissions are
    revoked). It must stop acting at its renew deadline, while the Lease it last wrote is
    still valid for everyone else, so no one can have taken over yet."""
    a, b = leader_then_standby(replicas)
    binding = admin_rest.get(ROLE_BINDING)
    admin_rest.delete(ROLE_BINDING)
    try:
        revoked = time.monotonic()
        wait_until(lambda: not leading(a), timeout=3 * LEASE_DURATION, interval=0.05, what="stop")
        stopped_after = time.monotonic() - revoked
        lease = admin_rest.get(LEASE)["spec"]
        valid_until = datetime.fromisoformat(lease["renewTime"]) + timedelta(
            seconds=lease["leaseDurationSeconds"]
        )
        margin = (valid_until - datetime.now(UTC)).total_seconds()
        report(
            capsys,
            f"renewals refused: leader stopped {stopped_after:.1f}s after the revocation, "
            f"{margin:.1f}s before its lease would have expired",
        )
        assert lease["holderIdentity"].startswith("replica-a_")
        assert margin > 0, "the leader acted after its lease could have been taken over"
        assert not leading(b)
        assert "Stopped leading as replica-a" in a.log
        assert "not renewed within the renew deadline" in a.log
    finally:
        meta = binding["metadata"]
        admin_rest.create(
            ROLE_BINDING.rsplit("/", 1)[0],
            {
                **binding,
                "metadata": {k: meta[k] for k in ("name", "namespace", "labels") if k in meta},
            },
        )
    # With its permissions back, one of them leads again (a renews what still names it, or
    # b takes the expired Lease).
    wait_until(lambda: one_leader([a, b]), timeout=3 * LEASE_DURATION, what="a leader again")
