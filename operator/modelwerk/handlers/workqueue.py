"""A deduplicating work queue: at most one reconcile per object at a time, never a hot loop.

Events only say "look at this object again"; many events for one object while it is queued
or being reconciled collapse into one more pass. A reconcile that fails is retried with
exponential backoff, one that asks to be requeued is scheduled for then, and every object
is revisited at the resync interval, so nothing depends on not missing an event.

A paused queue (a standby replica) keeps collecting keys but runs no reconcile; pausing
cancels the reconciles in flight, which run again, from a fresh read, once resumed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from modelwerk.metrics import QUEUE_DEPTH

logger = logging.getLogger(__name__)

Reconcile = Callable[[Hashable], Coroutine[Any, Any, float | None]]
"""Reconciles one key; returns seconds until it wants to run again, or None when gone."""


class WorkQueue:
    def __init__(
        self,
        reconcile: Reconcile,
        *,
        workers: int,
        resync_seconds: float,
        max_backoff_seconds: float,
        paused: bool = False,
    ) -> None:
        self._reconcile = reconcile
        self._workers = workers
        self._resync = resync_seconds
        self._max_backoff = max_backoff_seconds
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._queued: set[Hashable] = set()
        self._running: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._failures: dict[Hashable, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: dict[Hashable, asyncio.Task[float | None]] = {}
        self._active = asyncio.Event()
        if not paused:
            self._active.set()
        self._stopping = False

    def __len__(self) -> int:
        return len(self._queued) + len(self._running)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._stopping = True
        # Cancel until every worker is done: a reconcile that completes just as it is
        # cancelled can swallow the cancellation (asyncio.wait_for does in 3.11).
        while pending := [task for task in self._tasks if not task.done()]:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)
        self._tasks = []

    @property
    def paused(self) -> bool:
        return not self._active.is_set()

    def resume(self) -> None:
        """Run reconciles again, starting with every key collected while paused."""
        self._active.set()

    async def pause(self) -> None:
        """Start no reconcile; cancel those in flight and return once they have ended."""
        self._active.clear()
        # As in stop(): a reconcile may swallow one cancellation, so cancel until it is done.
        while pending := [task for task in self._inflight.values() if not task.done()]:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)

    def add(self, key: Hashable) -> None:
        """Reconcile ``key`` soon; a no-op if it is already waiting."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._running:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)
            QUEUE_DEPTH.set(len(self._queued))

    def add_after(self, key: Hashable, delay: float) -> None:
        """Reconcile ``key`` in ``delay`` seconds unless something sooner is scheduled."""
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        when = loop.time() + delay
        if existing is not None and existing.when() <= when:
            return
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def forget(self, key: Hashable) -> None:
        """The object is gone: drop its timers and backoff."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def _work(self) -> None:
        while not self._stopping:
            await self._active.wait()
            key = await self._queue.get()
            if not self._active.is_set():  # paused while this worker waited for a key
                self._queue.put_nowait(key)
                continue
            self._queued.discard(key)
            QUEUE_DEPTH.set(len(self._queued))
            self._running.add(key)
            task = asyncio.create_task(self._reconcile(key))
            self._inflight[key] = task
            try:
                requeue = await task
            except asyncio.CancelledError:
                self._inflight.pop(key, None)
                task.cancel()
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the queue is stopping
                # Only the reconcile was cancelled (the queue paused): run it again later.
                self._running.discard(key)
                self._dirty.discard(key)
                self.add(key)
                continue
            except Exception:
                self._inflight.pop(key, None)
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                backoff = min(self._max_backoff, 0.5 * 2 ** min(failures, 20))
                logger.exception(
                    "Reconcile of %s failed (attempt %d); retrying in %.1fs", key, failures, backoff
                )
                self._running.discard(key)
                self._dirty.discard(key)
                self.add_after(key, backoff)
                continue
            self._inflight.pop(key, None)
            self._failures.pop(key, None)
            self._running.discard(key)
            if requeue is None:
                self._dirty.discard(key)
                self.forget(key)
            elif key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            else:
                self.add_after(key, min(requeue, self._resync))
