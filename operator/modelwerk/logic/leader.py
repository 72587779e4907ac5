"""Leader election over a coordination.k8s.io/v1 Lease: who may act, decided from what one
candidate has seen of the Lease and when.

Several operator replicas watch the same objects; only the holder of the Lease reconciles.
The rules follow client-go's leader election:

* A Lease that does not exist, or that its holder released (empty ``holderIdentity``), is
  taken at once.
* A Lease held by someone else is taken over only after this candidate has seen the *same*
  record, unchanged, for its ``leaseDurationSeconds``, measured on the candidate's own
  monotonic clock. The ``renewTime`` written in the Lease is never compared with the local
  clock, so clock skew between nodes cannot shorten a lease.
* The holder renews every ``retry_period``. It may act only until ``renew_deadline`` after
  the moment it decided its last successful write (taken *before* the write was sent).
  Others count a lease from when they first see the renewed record, which is later still,
  so the holder stops acting at least ``lease_duration - renew_deadline`` before anyone can
  take over: that margin absorbs differences in clock rate and writes already on the wire.
* Every write carries the ``resourceVersion`` that was read: when two candidates race for
  an expired Lease, the API server accepts one write and answers 409 to the other.

Times are seconds of a monotonic clock (``now``); ``wall`` is only written into the Lease for
people and tools that read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class ElectionTiming:
    """How long a lease lasts and how often it is renewed (client-go's defaults: 15/10/2)."""

    lease_duration: int = 15
    """Seconds a standby waits, after the Lease last changed, before taking it over."""
    renew_deadline: float = 10.0
    """Seconds the leader keeps acting without a successful renewal."""
    retry_period: float = 2.0
    """Seconds between attempts to renew (leader) or to acquire (standby)."""

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period} / {self.renew_deadline} / {self.lease_duration}"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """The spec of a Lease, as leader election reads and writes it."""

    holder: str = ""
    """``holderIdentity``; empty when nobody holds the Lease (never held, or released)."""
    lease_duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    """``leaseTransitions``: how many times the holder changed."""

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> LeaseRecord:
        """
        >>> LeaseRecord.from_spec({"holderIdentity": "a", "leaseDurationSeconds": 15,
        ...                        "renewTime": "2026-01-01T00:00:00.250000Z"}).renew_time
        datetime.datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=datetime.timezone.utc)
        """
        return cls(
            holder=spec.get("holderIdentity") or "",
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=_parse(spec.get("acquireTime")),
            renew_time=_parse(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = _micro_time(self.acquire_time)
        if self.renew_time is not None:
            spec["renewTime"] = _micro_time(self.renew_time)
        return spec


@dataclass(frozen=True)
class Candidate:
    """What one replica knows: the last record it saw, since when, and its own last renewal."""

    identity: str
    seen: LeaseRecord | None = None
    seen_at: float = 0.0
    """When ``seen`` was first observed, in monotonic seconds."""
    renewed_at: float | None = None
    """When this replica decided its last successful acquire or renew; None: not leading."""

    def leading(self, timing: ElectionTiming, now: float) -> bool:
        """Whether this replica may act at ``now``.

        >>> t = ElectionTiming(lease_duration=15, renew_deadline=10, retry_period=2)
        >>> c = Candidate("a", renewed_at=100.0)
        >>> c.leading(t, 109.9), c.leading(t, 110.0), Candidate("a").leading(t, 100.0)
        (True, False, False)
        """
        return self.renewed_at is not None and now < self.renewed_at + timing.renew_deadline

    def observed(self, record: LeaseRecord | None, now: float) -> Candidate:
        """This candidate after reading ``record``: the clock restarts only when it changed."""
        if record == self.seen and self.seen is not None:
            return self
        return replace(self, seen=record, seen_at=now)

    def won(self, written: LeaseRecord, decided_at: float) -> Candidate:
        """After the API server accepted ``written`` (an acquire or a renewal)."""
        return replace(self, seen=written, seen_at=decided_at, renewed_at=decided_at)

    def stepped_down(self) -> Candidate:
        return replace(self, renewed_at=None)


class Action(StrEnum):
    ACQUIRE = "acquire"
    """Write ``Decision.write``: create the Lease if there was none, else replace it."""
    RENEW = "renew"
    """This replica holds the Lease: write the renewed record."""
    STANDBY = "standby"
    """Someone else holds a valid Lease: write nothing, look again after the retry period."""


@dataclass(frozen=True)
class Decision:
    action: Action
    candidate: Candidate
    """The candidate after this observation (stepped down if the Lease names someone else)."""
    write: LeaseRecord | None
    """The record to write with the observed resourceVersion; None for standby."""
    reason: str


def next_lease(
    candidate: Candidate,
    observed: LeaseRecord | None,
    timing: ElectionTiming,
    *,
    now: float,
    wall: datetime,
) -> Decision:
    """Decide one round of leader election from the Lease as read (None: there is none).

    >>> t = ElectionTiming(lease_duration=15, renew_deadline=10, retry_period=2)
    >>> wall = datetime(2026, 1, 1, tzinfo=UTC)
    >>> other = LeaseRecord(holder="b", lease_duration_seconds=15, transitions=3)
    >>> first = next_lease(Candidate("a"), other, t, now=100.0, wall=wall)
    >>> first.action, first.reason
    (<Action.STANDBY: 'standby'>, 'b holds the lease (seen unchanged for 0.0s of 15s)')
    >>> later = next_lease(first.candidate, other, t, now=115.0, wall=wall)
    >>> later.action, later.write.holder, later.write.transitions
    (<Action.ACQUIRE: 'acquire'>, 'a', 4)
    """
    me = candidate.identity
    was_leading = candidate.renewed_at is not None
    candidate = candidate.observed(observed, now)
    if observed is None:
        return Decision(
            Action.ACQUIRE, candidate, _taken(None, me, timing, wall), "there is no lease yet"
        )
    if observed.holder == me:
        renewed = replace(observed, renew_time=wall, lease_duration_seconds=timing.lease_duration)
        return Decision(Action.RENEW, candidate, renewed, "this replica holds the lease")
    if was_leading:
        # The Lease names someone else: whatever this replica believed, it is not the leader.
        candidate = candidate.stepped_down()
    if not observed.holder:
        return Decision(
            Action.ACQUIRE, candidate, _taken(observed, me, timing, wall), "the lease is free"
        )
    duration = observed.lease_duration_seconds or timing.lease_duration
    unchanged_for = now - candidate.seen_at
    if unchanged_for >= duration:
        return Decision(
            Action.ACQUIRE,
            candidate,
            _taken(observed, me, timing, wall),
            f"{observed.holder} did not renew for {unchanged_for:.1f}s (lease {duration}s)",
        )
    return Decision(
        Action.STANDBY,
        candidate,
        None,
        f"{observed.holder} holds the lease (seen unchanged for {unchanged_for:.1f}s of {duration}s)",
    )


def released(record: LeaseRecord, wall: datetime) -> LeaseRecord:
    """The record a leader writes on a graceful shutdown, so a standby takes over at once.

    >>> r = released(LeaseRecord("a", 15, transitions=2), datetime(2026, 1, 1, tzinfo=UTC))
    >>> r.holder, r.lease_duration_seconds, r.transitions
    ('', 1, 2)
    """
    return LeaseRecord(
        holder="",
        lease_duration_seconds=1,
        acquire_time=wall,
        renew_time=wall,
        transitions=record.transitions,
    )


def _taken(
    previous: LeaseRecord | None, me: str, timing: ElectionTiming, wall: datetime
) -> LeaseRecord:
    transitions = 0
    if previous is not None:
        transitions = previous.transitions + (1 if previous.holder != me else 0)
    return LeaseRecord(
        holder=me,
        lease_duration_seconds=timing.lease_duration,
        acquire_time=wall,
        renew_time=wall,
        transitions=transitions,
    )


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _micro_time(value: datetime) -> str:
    """metav1.MicroTime: RFC 3339 in UTC with microseconds."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
