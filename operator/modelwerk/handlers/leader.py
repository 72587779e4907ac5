"""Leader election glue: one round per retry period, and the work queue runs only while leading.

A standby replica watches like the leader (kopf's watches fill its queue) but its queue is
paused and its API client is fenced, so it writes nothing: no status, no children, no
events. It turns leader when ``logic.leader`` says so and its write to the Lease succeeds,
and stops acting (queue paused, reconciles in flight cancelled, writes refused) the moment
its renew deadline passes without a successful renewal, even while a request to the API
server hangs. A graceful shutdown releases the Lease so a standby takes over at its next
round instead of waiting for the lease to expire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from modelwerk.handlers.workqueue import WorkQueue
from modelwerk.kube.client import Body, Kube
from modelwerk.kube.lease import lease_record, observe_lease, write_lease
from modelwerk.logic.leader import Action, Candidate, ElectionTiming, next_lease, released
from modelwerk.metrics import LEADER

logger = logging.getLogger(__name__)

_RELEASE_TIMEOUT = 5.0


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        queue: WorkQueue,
        *,
        namespace: str,
        name: str,
        identity: str,
        timing: ElectionTiming,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._queue = queue
        self._namespace = namespace
        self._name = name
        self._timing = timing
        self._clock = clock
        self._candidate = Candidate(identity)
        self._lease: Body | None = None
        self._acting = False
        self._task: asyncio.Task[None] | None = None
        self._last_error = ""

    @property
    def identity(self) -> str:
        return self._candidate.identity

    def may_act(self) -> bool:
        """Whether this replica holds a lease whose renew deadline has not passed (the fence)."""
        return self._candidate.leading(self._timing, self._clock())

    def start(self) -> None:
        LEADER.set(0)
        self._task = asyncio.create_task(self._run(), name="leader-election")

    async def stop(self) -> None:
        """Stop electing; stop acting; give the Lease up if this replica holds it."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._candidate = self._candidate.stepped_down()
        await self._sync(why="shutting down")
        try:  # only if the Lease, read afresh, still names this replica
            async with asyncio.timeout(_RELEASE_TIMEOUT):
                await self._release()
        except Exception as exc:  # the lease then simply expires
            logger.warning("Could not release Lease %s: %s", self._name, exc)

    async def _run(self) -> None:
        while True:
            # First: a replica that was frozen or starved past its deadline steps down
            # before anything else of its runs.
            await self._sync()
            try:
                async with asyncio.timeout(self._round_budget()):
                    await self._round()
                self._last_error = ""
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                if message != self._last_error:  # once per kind of trouble, not every round
                    logger.warning("Leader election round failed: %s", message)
                self._last_error = message
            await self._sync()
            await asyncio.sleep(self._pause())

    def _round_budget(self) -> float:
        """A round never outlasts the renew deadline: stepping down must not wait for it."""
        renewed_at = self._candidate.renewed_at
        if renewed_at is None or not self.may_act():
            return self._timing.renew_deadline
        return renewed_at + self._timing.renew_deadline - self._clock()

    def _pause(self) -> float:
        pause = self._timing.retry_period
        renewed_at = self._candidate.renewed_at
        if renewed_at is not None and self.may_act():  # wake up at the deadline if sooner
            pause = min(pause, renewed_at + self._timing.renew_deadline - self._clock())
        return max(0.0, pause)

    async def _round(self) -> None:
        now = self._clock()
        wall = datetime.now(UTC)
        lease = await observe_lease(self._kube, self._namespace, self._name)
        decision = next_lease(
            self._candidate, lease_record(lease), self._timing, now=now, wall=wall
        )
        self._candidate = decision.candidate
        self._lease = lease
        if decision.write is None:
            return
        written = await write_lease(self._kube, self._namespace, self._name, decision.write, lease)
        if written is None:
            logger.debug("Lease %s was written by another replica first", self._name)
            return
        self._lease = written
        self._candidate = self._candidate.won(decision.write, decided_at=now)
        if decision.action is Action.ACQUIRE:
            logger.info(
                "Acquired Lease %s/%s as %s (%s)",
                self._namespace,
                self._name,
                self.identity,
                decision.reason,
            )

    async def _sync(self, why: str | None = None) -> None:
        """Make the queue and the metric follow what the fence says."""
        leading = self.may_act()
        if leading and not self._acting:
            self._acting = True
            LEADER.set(1)
            self._queue.resume()
            logger.info("Started leading as %s", self.identity)
        elif not leading and self._acting:
            self._acting = False
            LEADER.set(0)
            await self._queue.pause()
            if why is not None:
                logger.info("Stopped leading as %s: %s", self.identity, why)
                return
            holder = self._candidate.seen.holder if self._candidate.seen else ""
            why = (
                f"{holder} holds the lease"
                if holder and holder != self.identity
                else "the lease was not renewed within the renew deadline"
            )
            logger.warning("Stopped leading as %s: %s", self.identity, why)

    async def _release(self) -> None:
        lease = await observe_lease(self._kube, self._namespace, self._name)
        record = lease_record(lease)
        if record is None or record.holder != self.identity:
            return
        if await write_lease(
            self._kube, self._namespace, self._name, released(record, datetime.now(UTC)), lease
        ):
            logger.info("Released Lease %s/%s", self._namespace, self._name)
