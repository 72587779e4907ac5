"""The work queue: one reconcile per key at a time, events coalesce, failures back off."""

import asyncio
from collections.abc import Hashable

from modelwerk.handlers.workqueue import WorkQueue


def _queue(reconcile, **kw):  # type: ignore[no-untyped-def]
    options = {"workers": 4, "resync_seconds": 60.0, "max_backoff_seconds": 60.0} | kw
    return WorkQueue(reconcile, **options)


async def test_events_for_a_busy_key_collapse_into_one_more_pass() -> None:
    calls: list[Hashable] = []
    gate = asyncio.Event()
    running = 0
    max_running = 0

    async def reconcile(key: Hashable) -> float | None:
        nonlocal running, max_running
        running += 1
        max_running = max(max_running, running)
        calls.append(key)
        await gate.wait()
        running -= 1
        return 60.0

    queue = _queue(reconcile)
    queue.start()
    queue.add("a")
    await asyncio.sleep(0.01)
    for _ in range(10):
        queue.add("a")  # arrives while "a" is being reconciled
    gate.set()
    await asyncio.sleep(0.05)
    await queue.stop()
    assert calls == ["a", "a"]
    assert max_running == 1


async def test_distinct_keys_run_concurrently() -> None:
    started: set[Hashable] = set()
    both = asyncio.Event()

    async def reconcile(key: Hashable) -> float | None:
        started.add(key)
        if len(started) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 1)
        return None

    queue = _queue(reconcile)
    queue.start()
    queue.add("a")
    queue.add("b")
    await asyncio.wait_for(both.wait(), 1)
    await queue.stop()


async def test_failures_back_off_instead_of_spinning() -> None:
    attempts = 0

    async def reconcile(key: Hashable) -> float | None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("API server says no")

    queue = _queue(reconcile, max_backoff_seconds=60.0)
    queue.start()
    queue.add("a")
    await asyncio.sleep(0.3)
    await queue.stop()
    assert attempts == 1  # the first retry waits 1 s


async def test_requeue_after_schedules_the_next_pass() -> None:
    calls = 0

    async def reconcile(key: Hashable) -> float | None:
        nonlocal calls
        calls += 1
        return 0.05 if calls < 3 else None

    queue = _queue(reconcile)
    queue.start()
    queue.add("a")
    await asyncio.sleep(0.4)
    await queue.stop()
    assert calls == 3
    assert len(queue) == 0


async def test_a_paused_queue_collects_keys_and_runs_them_once_resumed() -> None:
    calls: list[Hashable] = []
    done = asyncio.Event()

    async def reconcile(key: Hashable) -> float | None:
        calls.append(key)
        if len(calls) == 2:
            done.set()
        return None

    queue = _queue(reconcile, paused=True)
    queue.start()
    for key in ("a", "b", "a"):
        queue.add(key)
    await asyncio.sleep(0.05)
    assert calls == [] and len(queue) == 2 and queue.paused
    queue.resume()
    await asyncio.wait_for(done.wait(), 1)
    await queue.stop()
    assert sorted(calls) == ["a", "b"]  # type: ignore[type-var]


async def test_pausing_cancels_reconciles_in_flight_and_reruns_them_after_resume() -> None:
    started = asyncio.Event()
    cancelled = 0
    finished: list[Hashable] = []

    async def reconcile(key: Hashable) -> float | None:
        nonlocal cancelled
        started.set()
        if not finished and cancelled == 0:
            try:
                await asyncio.sleep(60)  # a reconcile waiting on the API server
            except asyncio.CancelledError:
                cancelled += 1
                raise
        finished.append(key)
        return None

    queue = _queue(reconcile)
    queue.start()
    queue.add("a")
    await asyncio.wait_for(started.wait(), 1)
    await asyncio.wait_for(queue.pause(), 1)  # returns only once the reconcile has ended
    assert cancelled == 1 and finished == []
    await asyncio.sleep(0.05)
    assert finished == [] and len(queue) == 1  # still wanted, not run while paused
    queue.resume()
    await asyncio.sleep(0.05)
    await queue.stop()
    assert finished == ["a"]
