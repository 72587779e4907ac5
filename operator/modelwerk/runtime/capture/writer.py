"""Batched Parquet writes off the request path, with a bounded buffer.

The request path only ever calls :meth:`PartitionedWriter.offer`: an append under a lock, or
a drop when the buffer is full. Never a wait, never an exception. One background thread per
writer turns what was offered into Parquet files, every ``flush_seconds`` or as soon as
``file_rows`` rows are waiting, one file per UTC hour the rows belong to.

Q: What happens when the store is slow or down?
A: A write that fails puts its rows back at the head of the buffer and the thread retries with
   a growing pause (at most ``flush_seconds``), so rows that were offered are written late
   rather than lost. Meanwhile the buffer fills; once ``capacity_rows`` are waiting, new rows
   are dropped and counted (reason ``full``). A slow store only makes the thread slower: the
   buffer absorbs what arrives meanwhile. Files already written are never touched again.

Q: And at shutdown?
A: :meth:`close` writes what is buffered, retrying until its deadline; whatever is still
   unwritten then is counted as dropped (reason ``shutdown``).

Q: Why can an hour's file be written twice?
A: It cannot: a file's name carries the process's pid, a random token drawn at start and a
   sequence number, and each batch of rows is written once; after a failed write the rows are
   retried under a new name. Rows whose encoding fails (a bug, not the store) are dropped with
   reason ``encode`` instead of blocking the buffer for ever.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, Protocol, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from modelwerk.runtime.capture import layout
from modelwerk.runtime.capture.store import Store

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


class Piece(Protocol):
    """What the request path offers: some rows made at one time."""

    @property
    def time(self) -> float: ...

    @property
    def rows(self) -> int: ...


P = TypeVar("P", bound=Piece)


class Observer(Protocol):
    """Where a writer reports what happens (the server's Prometheus metrics)."""

    def written(self, rows: int, files: int) -> None: ...

    def dropped(self, rows: int, reason: str) -> None: ...

    def failed(self) -> None: ...

    def state(self, queued_rows: int, healthy: bool) -> None: ...


class _Quiet:
    def written(self, rows: int, files: int) -> None:
        pass

    def dropped(self, rows: int, reason: str) -> None:
        pass

    def failed(self) -> None:
        pass

    def state(self, queued_rows: int, healthy: bool) -> None:
        pass


class PartitionedWriter(Generic[P]):
    """Writes pieces as ``<prefix>/date=…/hour=…/<pod>-<pid>-<boot>-<seq>.parquet``.

    ``encode`` turns pieces (all of one hour) into one Arrow table; it runs on the writer's
    thread.
    """

    def __init__(
        self,
        store: Store,
        prefix: str,
        pod: str,
        encode: Callable[[Sequence[P]], pa.Table],
        *,
        flush_seconds: float,
        file_rows: int,
        capacity_rows: int,
        observer: Observer | None = None,
        name: str = "capture",
    ) -> None:
        self.store = store
        self.prefix = prefix
        self._pod = pod
        self._encode = encode
        self.flush_seconds = flush_seconds
        self.file_rows = max(1, file_rows)
        self.capacity_rows = max(1, capacity_rows)
        self._observer: Observer = observer or _Quiet()
        self._pieces: deque[P] = deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._closing = False
        self._wake = False
        self._deadline = 0.0
        self._boot = os.urandom(4).hex()
        self._seq = 0
        self.healthy = True
        self._thread = threading.Thread(target=self._run, name=f"modelwerk-{name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ request path
    def offer(self, piece: P) -> bool:
        """Buffer ``piece``; False (and counted) when the buffer is full or closed."""
        rows = piece.rows
        with self._cond:
            accepted = not self._closing and self._queued + rows <= self.capacity_rows
            if accepted:
                self._pieces.append(piece)
                self._queued += rows
                if self._queued >= self.file_rows:
                    self._cond.notify()
        if not accepted:
            self._observer.dropped(rows, "full")
        return accepted

    @property
    def queued_rows(self) -> int:
        return self._queued

    # ------------------------------------------------------------ lifecycle
    def flush(self, timeout: float = 10.0) -> bool:
        """Ask for a write now and wait until the buffer is empty (tests, benchmarks)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._queued == 0:
                return True
            with self._cond:
                self._wake = True
                self._cond.notify()
            time.sleep(0.01)
        return self._queued == 0

    def close(self, timeout: float = 10.0) -> None:
        """Write what is buffered (retrying until ``timeout``), then stop the thread."""
        self.stop(timeout)
        self.join(timeout)

    def stop(self, timeout: float) -> None:
        """Start closing: the thread writes what is buffered until ``timeout``, then ends."""
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout + 1.0)

    # ------------------------------------------------------------ the thread
    def _run(self) -> None:
        backoff = 0.0
        last = time.monotonic()
        while True:
            with self._cond:
                due = last + (backoff or self.flush_seconds)
                while not (self._closing or self._wake):
                    if not backoff and self._queued >= self.file_rows:
                        break
                    left = due - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                self._wake = False
                batch = list(self._pieces)
                self._pieces.clear()
                closing = self._closing
            last = time.monotonic()
            failed = self._write_all(batch) if batch else []
            if failed:
                backoff = min(max(2 * backoff, 0.5), MAX_BACKOFF, self.flush_seconds)
                with self._cond:
                    self._pieces.extendleft(reversed(failed))
            else:
                backoff = 0.0
            self._observer.state(self._queued, self.healthy)
            if closing and (not failed or time.monotonic() >= self._deadline):
                self._drop_rest()
                return
            if closing:
                time.sleep(max(0.0, min(backoff, self._deadline - time.monotonic())))

    def _drop_rest(self) -> None:
        with self._cond:
            rest = list(self._pieces)
            self._pieces.clear()
            self._queued = 0
        if rest:
            rows = sum(p.rows for p in rest)
            log.warning("Dropped %d buffered rows for %s at shutdown", rows, self.prefix)
            self._observer.dropped(rows, "shutdown")
        self._observer.state(0, self.healthy)

    def _write_all(self, batch: list[P]) -> list[P]:
        """Write ``batch`` one file per hour (and per ``file_rows``); the pieces not written."""
        by_hour: dict[datetime, list[P]] = defaultdict(list)
        for piece in batch:
            by_hour[layout.hour_of(piece.time)].append(piece)
        failed: list[P] = []
        for hour, pieces in sorted(by_hour.items()):
            for chunk in _chunks(pieces, self.file_rows):
                rows = sum(p.rows for p in chunk)
                try:
                    data = _parquet(self._encode(chunk))
                except Exception:
                    log.exception("Could not encode %d rows for %s", rows, self.prefix)
                    self._release(rows)
                    self._observer.dropped(rows, "encode")
                    continue
                if failed:  # the store just failed: keep the order, do not hammer it
                    failed.extend(chunk)
                    continue
                name = layout.file_name(self._pod, os.getpid(), self._boot, self._seq)
                rel = f"{self.prefix}/{layout.partition(hour)}/{name}"
                try:
                    self.store.write(rel, data)
                except Exception as exc:
                    if self.healthy:
                        log.warning("Could not write %s: %s", self.store.uri(rel), exc)
                    self.healthy = False
                    self._observer.failed()
                    failed.extend(chunk)
                    continue
                self._seq += 1
                if not self.healthy:
                    log.info("Wrote %s again after a failure", self.store.uri(rel))
                self.healthy = True
                self._release(rows)
                self._observer.written(rows, 1)
        return failed

    def _release(self, rows: int) -> None:
        with self._cond:
            self._queued -= rows


def _chunks(pieces: list[P], rows: int) -> list[list[P]]:
    out: list[list[P]] = [[]]
    count = 0
    for piece in pieces:
        if out[-1] and count + piece.rows > rows:
            out.append([])
            count = 0
        out[-1].append(piece)
        count += piece.rows
    return out


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()
