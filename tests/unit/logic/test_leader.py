"""Leader election decisions: one round from (candidate, observed Lease, now), as tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from modelwerk.logic.leader import (
    Action,
    Candidate,
    ElectionTiming,
    LeaseRecord,
    next_lease,
    released,
)

TIMING = ElectionTiming(lease_duration=15, renew_deadline=10, retry_period=2)
WALL = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)
EARLIER = WALL - timedelta(minutes=5)


def held_by(holder: str, *, transitions: int = 3, duration: int = 15) -> LeaseRecord:
    return LeaseRecord(
        holder=holder,
        lease_duration_seconds=duration,
        acquire_time=EARLIER,
        renew_time=EARLIER,
        transitions=transitions,
    )


FREE = replace(held_by(""), lease_duration_seconds=1)


@pytest.mark.parametrize(
    ("case", "candidate", "observed", "now", "action", "holder", "transitions", "leading"),
    [
        # No Lease yet: create it, as the first holder.
        ("absent", Candidate("a"), None, 100.0, Action.ACQUIRE, "a", 0, False),
        # Released by its holder on shutdown: taken at once, one more transition.
        ("released", Candidate("a"), FREE, 100.0, Action.ACQUIRE, "a", 4, False),
        # Held by someone this candidate has just started watching: wait a full lease.
        (
            "held, first look",
            Candidate("a"),
            held_by("b"),
            100.0,
            Action.STANDBY,
            None,
            None,
            False,
        ),
        # Seen unchanged for less than the lease: still valid.
        (
            "held, 14.9s unchanged",
            Candidate("a", seen=held_by("b"), seen_at=100.0),
            held_by("b"),
            114.9,
            Action.STANDBY,
            None,
            None,
            False,
        ),
        # Seen unchanged for the whole lease: the holder is gone, take over.
        (
            "held, 15s unchanged",
            Candidate("a", seen=held_by("b"), seen_at=100.0),
            held_by("b"),
            115.0,
            Action.ACQUIRE,
            "a",
            4,
            False,
        ),
        # The holder's own (shorter) leaseDurationSeconds counts, not ours.
        (
            "held with a 5s lease",
            Candidate("a", seen=held_by("b", duration=5), seen_at=100.0),
            held_by("b", duration=5),
            105.0,
            Action.ACQUIRE,
            "a",
            4,
            False,
        ),
        # A renewal (the record changed) restarts the wait, however long we watched.
        (
            "held, just renewed",
            Candidate("a", seen=held_by("b"), seen_at=100.0),
            replace(held_by("b"), renew_time=WALL),
            200.0,
            Action.STANDBY,
            None,
            None,
            False,
        ),
        # Ours: renew, keeping acquireTime and the transition count.
        (
            "ours",
            Candidate("a", seen=held_by("a"), seen_at=100.0, renewed_at=100.0),
            held_by("a"),
            102.0,
            Action.RENEW,
            "a",
            3,
            True,
        ),
        # Ours by name though this replica had stepped down (the API server was unreachable
        # past the renew deadline, nobody took over): renewing takes it back, no transition.
        (
            "ours, after stepping down",
            Candidate("a", seen=held_by("a"), seen_at=100.0),
            held_by("a"),
            130.0,
            Action.RENEW,
            "a",
            3,
            False,
        ),
        # We thought we led, but someone else holds it now: step down and stand by.
        (
            "taken over",
            Candidate("a", seen=held_by("a"), seen_at=100.0, renewed_at=100.0),
            held_by("b", transitions=4),
            103.0,
            Action.STANDBY,
            None,
            None,
            False,
        ),
    ],
)
def test_one_round(
    case: str,
    candidate: Candidate,
    observed: LeaseRecord | None,
    now: float,
    action: Action,
    holder: str | None,
    transitions: int | None,
    leading: bool,
) -> None:
    decision = next_lease(candidate, observed, TIMING, now=now, wall=WALL)
    assert decision.action is action, decision.reason
    if holder is None:
        assert decision.write is None
    else:
        assert decision.write is not None
        assert decision.write.holder == holder
        assert decision.write.transitions == transitions
        assert decision.write.renew_time == WALL
        assert decision.write.lease_duration_seconds == TIMING.lease_duration
    assert decision.candidate.leading(TIMING, now) is leading


def test_acquire_stamps_acquire_time_and_renew_keeps_it() -> None:
    acquired = next_lease(Candidate("a"), FREE, TIMING, now=0.0, wall=WALL).write
    assert acquired is not None and acquired.acquire_time == WALL
    later = WALL + timedelta(seconds=2)
    renewed = next_lease(Candidate("a"), acquired, TIMING, now=2.0, wall=later).write
    assert renewed is not None
    assert (renewed.acquire_time, renewed.renew_time) == (WALL, later)


def test_leading_ends_at_the_renew_deadline_counted_from_the_decision() -> None:
    decision = next_lease(Candidate("a"), None, TIMING, now=50.0, wall=WALL)
    assert decision.write is not None
    leader = decision.candidate.won(decision.write, decided_at=50.0)
    assert leader.leading(TIMING, 59.99)
    assert not leader.leading(TIMING, 60.0)


def test_the_leader_stops_before_anyone_can_take_over() -> None:
    """Whatever a standby saw, it takes over no earlier than the leader stopped acting."""
    leader = Candidate("a")
    d = next_lease(leader, None, TIMING, now=0.0, wall=WALL)
    assert d.write is not None
    leader = d.candidate.won(d.write, decided_at=0.0)
    # The standby reads the record the moment it is written (the earliest it can).
    standby = next_lease(Candidate("b"), d.write, TIMING, now=0.0, wall=WALL).candidate
    takeover = next(
        t / 10
        for t in range(0, 1000)
        if next_lease(standby, d.write, TIMING, now=t / 10, wall=WALL).action is Action.ACQUIRE
    )
    last_act = max(t / 10 for t in range(0, 1000) if leader.leading(TIMING, t / 10))
    assert last_act < takeover
    assert takeover - last_act >= TIMING.lease_duration - TIMING.renew_deadline - 0.1


def test_a_change_of_holder_restarts_the_clock() -> None:
    seen = Candidate("c", seen=held_by("a"), seen_at=0.0)
    decision = next_lease(seen, held_by("b", transitions=4), TIMING, now=14.0, wall=WALL)
    assert decision.candidate.seen_at == 14.0
    again = next_lease(decision.candidate, held_by("b", transitions=4), TIMING, now=28.0, wall=WALL)
    assert again.action is Action.STANDBY
    last = next_lease(again.candidate, held_by("b", transitions=4), TIMING, now=29.0, wall=WALL)
    assert last.action is Action.ACQUIRE


def test_release_frees_the_lease_and_keeps_the_count() -> None:
    record = released(held_by("a", transitions=7), WALL)
    assert record.holder == "" and record.transitions == 7
    assert record.renew_time == WALL and record.lease_duration_seconds == 1
    assert next_lease(Candidate("b"), record, TIMING, now=0.0, wall=WALL).action is Action.ACQUIRE


def test_spec_round_trip_in_micro_time() -> None:
    record = held_by("a")
    spec = replace(record, renew_time=WALL).to_spec()
    assert spec == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "leaseTransitions": 3,
        "acquireTime": "2026-11-22T11:55:00.123456Z",
        "renewTime": "2026-11-22T12:00:00.123456Z",
    }
    assert LeaseRecord.from_spec(spec) == replace(record, renew_time=WALL)
    assert LeaseRecord.from_spec({}) == LeaseRecord()


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"), [(10, 10, 2), (15, 10, 10), (15, 10, 0), (5, 10, 2)]
)
def test_timing_must_leave_a_margin(duration: int, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        ElectionTiming(lease_duration=duration, renew_deadline=deadline, retry_period=retry)
