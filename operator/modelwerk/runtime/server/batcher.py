"""Micro-batching: merge concurrent requests into one call executed off the event loop.

A forest's ``predict`` costs about the same for 1 or 64 rows, so the server's throughput comes
from predicting many requests at once. One worker thread runs batches one after another; while
a batch runs, new requests queue up and become the next batch.

Dispatching the moment the thread is free splits a steady load into two halves that take turns
(half the clients wait in the queue while the other half's answers travel), so every predict
call carries only half of the concurrent requests. Instead the batcher aims for as many
requests as the last round had (the previous batch plus whatever queued up while it ran) and
waits for the answered clients to come back, but never longer than ``max_delay`` after the
thread became free. A lone client (last round: one request) is never kept waiting, and neither
is a batch when nobody else is on the way: both would only add latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class BatcherClosed(Exception):
    """The server is shutting down; the request was not run."""


@dataclass(slots=True)
class _Item(Generic[T, R]):
    payload: T
    future: asyncio.Future[R]
    enqueued: float = field(default=0.0)


class MicroBatcher(Generic[T, R]):
    """Queue payloads; ``run`` gets a list of them and returns one result per payload, in order.

    ``run`` executes in a dedicated thread. If a merged batch fails, each of its payloads is
    retried alone, so one bad request cannot fail the requests it was batched with.
    """

    def __init__(
        self,
        run: Callable[[Sequence[T]], Sequence[R]],
        max_batch_size: int,
        max_delay_s: float,
        name: str = "predict",
    ) -> None:
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._pending: deque[_Item[T, R]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._closed = False
        self._current: list[_Item[T, R]] = []
        self._target = 1  # requests the last round had: what the next batch waits for
        self._free_at = 0.0  # when the worker thread last became free
        self.arriving = 0
        """Requests being read or decoded that will call submit() soon (kept by the caller)."""
        self.batches = 0
        """Calls of ``run`` made so far (merged batches, not counting isolation retries)."""

    def _start(self) -> None:
        # Lazily, in whichever loop serves the first request (in-process test clients run no
        # ASGI lifespan, uvicorn does; both end up here).
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="micro-batcher")

    async def submit(self, payload: T) -> R:
        if self._closed:
            raise BatcherClosed("the server is shutting down")
        if self._task is None:
            self._start()
        loop = asyncio.get_running_loop()
        item: _Item[T, R] = _Item(payload, loop.create_future(), loop.time())
        self._pending.append(item)
        assert self._wakeup is not None
        self._wakeup.set()
        return await item.future

    async def _collect(self) -> list[_Item[T, R]]:
        assert self._wakeup is not None
        while not self._pending:
            self._wakeup.clear()
            await self._wakeup.wait()
        loop = asyncio.get_running_loop()
        batch = [self._pending.popleft()]
        # max_delay counts from when this request could have run at the earliest
        deadline = max(batch[0].enqueued, self._free_at) + self.max_delay_s
        while len(batch) < self.max_batch_size:
            if self._pending:
                batch.append(self._pending.popleft())
                continue
            if self.arriving <= 0 and len(batch) >= self._target:
                # Let tasks that are ready right now (requests already received) run once.
                await asyncio.sleep(0)
                if self._pending:
                    continue
                if self.arriving <= 0:
                    break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = self._current = await self._collect()
            payloads = [i.payload for i in batch]
            self.batches += 1
            try:
                results = await loop.run_in_executor(self._executor, self._run, payloads)
                outcomes: list[tuple[bool, Any]] = [(True, r) for r in results]
            except Exception as exc:
                if len(batch) == 1:
                    outcomes = [(False, exc)]
                else:
                    outcomes = await self._isolate(payloads)
            self._free_at = loop.time()
            self._target = min(self.max_batch_size, len(batch) + len(self._pending))
            for item, (ok, value) in zip(batch, outcomes, strict=True):
                if item.future.done():  # the caller went away
                    continue
                if ok:
                    item.future.set_result(value)
                else:
                    item.future.set_exception(value)
            self._current = []

    async def _isolate(self, payloads: list[T]) -> list[tuple[bool, Any]]:
        loop = asyncio.get_running_loop()
        outcomes: list[tuple[bool, Any]] = []
        for payload in payloads:
            try:
                result = await loop.run_in_executor(self._executor, self._run, [payload])
                outcomes.append((True, result[0]))
            except Exception as exc:
                outcomes.append((False, exc))
        return outcomes

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for item in [*self._current, *self._pending]:
            if not item.future.done():
                item.future.set_exception(BatcherClosed("the server is shutting down"))
        self._pending.clear()
        self._executor.shutdown(wait=True)
