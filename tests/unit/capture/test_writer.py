"""The capture writer against a real filesystem that can be slowed down or taken down."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from modelwerk.runtime.capture.store import Store
from modelwerk.runtime.capture.writer import PartitionedWriter

from .fs import ControlledFS

T0 = datetime(2026, 3, 1, 9, 59, 58, tzinfo=UTC).timestamp()


@dataclass
class Piece:
    time: float
    ids: list[int]

    @property
    def rows(self) -> int:
        return len(self.ids)


def encode(pieces: list[Piece]) -> pa.Table:
    return pa.table(
        {
            "id": pa.array([i for p in pieces for i in p.ids], pa.int64()),
            "time": pa.array([p.time for p in pieces for _ in p.ids], pa.float64()),
        }
    )


@dataclass
class Seen:
    """The writer's reports, as the server's metrics would count them."""

    written: int = 0
    files: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    failures: int = 0
    healthy: list[bool] = field(default_factory=list)

    def written_(self, rows: int, files: int) -> None:
        self.written += rows
        self.files += files


class Observer:
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def written(self, rows: int, files: int) -> None:
        self.seen.written_(rows, files)

    def dropped(self, rows: int, reason: str) -> None:
        self.seen.dropped[reason] += rows

    def failed(self) -> None:
        self.seen.failures += 1

    def state(self, queued_rows: int, healthy: bool) -> None:
        self.seen.healthy.append(healthy)


def writer(
    store: Store, seen: Seen, *, flush: float = 0.05, file_rows: int = 1000, capacity: int = 10_000
) -> PartitionedWriter[Piece]:
    return PartitionedWriter(
        store,
        "captures/ns/dep/v1",
        "pod-a",
        encode,
        flush_seconds=flush,
        file_rows=file_rows,
        capacity_rows=capacity,
        observer=Observer(seen),
    )


def ids_in(root: Path) -> list[int]:
    path = root / "captures/ns/dep/v1"
    if not path.exists():
        return []
    table = ds.dataset(path, partitioning="hive", format="parquet").to_table()
    return sorted(table.column("id").to_pylist())


def test_rows_are_written_per_hour_partition_and_file_size(
    controlled: tuple[Store, ControlledFS],
) -> None:
    store, _ = controlled
    seen = Seen()
    w = writer(store, seen, flush=30, file_rows=4)
    # Two seconds before 10:00 and two after: two hours; 6 rows in the second hour at most 4
    # per file.
    assert w.offer(Piece(T0, [1, 2]))
    assert w.offer(Piece(T0 + 4, [3, 4, 5]))
    assert w.offer(Piece(T0 + 5, [6, 7, 8]))
    assert w.flush(5)
    w.close()
    root = Path(store.base) / "captures/ns/dep/v1"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))
    assert [f.rsplit("/", 1)[0] for f in files] == [
        "date=2026-03-01/hour=09",
        "date=2026-03-01/hour=10",
        "date=2026-03-01/hour=10",
    ]
    assert all(f.rsplit("/", 1)[1].startswith("pod-a-") for f in files)
    assert ids_in(Path(store.base)) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert seen.written == 8 and seen.files == 3
    assert not list(root.rglob(".tmp-*")), "no staging file is left behind"


def test_a_full_buffer_drops_and_counts_instead_of_waiting(
    controlled: tuple[Store, ControlledFS],
) -> None:
    store, fs = controlled
    seen = Seen()
    fs.delay = 1.0  # every write takes a second: the buffer fills meanwhile
    w = writer(store, seen, flush=0.01, capacity=10)
    accepted = 0
    slowest = 0.0
    for i in range(50):
        started = time.perf_counter()
        accepted += w.offer(Piece(T0, [i]))
        slowest = max(slowest, time.perf_counter() - started)
        time.sleep(0.002)
    assert slowest < 0.05, "offering never waits for the store"
    assert accepted <= 20 and seen.dropped["full"] == 50 - accepted
    fs.delay = 0
    assert w.flush(10)
    w.close()
    assert len(ids_in(Path(store.base))) == accepted, "every accepted row is written"


def test_an_outage_loses_no_accepted_row_and_recovers(
    controlled: tuple[Store, ControlledFS],
) -> None:
    store, fs = controlled
    seen = Seen()
    w = writer(store, seen, flush=0.02, capacity=100)
    assert w.offer(Piece(T0, [0, 1]))
    assert w.flush(5)  # written before the outage
    fs.down = True
    accepted = [i for i in range(2, 200) if w.offer(Piece(T0, [i]))]
    time.sleep(0.3)
    assert seen.failures > 0 and not w.healthy
    assert len(accepted) == 100 and seen.dropped["full"] == 98
    before = ids_in_local(store)
    assert before == [0, 1], "the flushed file is untouched by the outage"
    fs.down = False
    assert w.flush(10)
    assert w.healthy
    w.close()
    assert ids_in(Path(store.base)) == [0, 1, *accepted]
    assert seen.healthy[-1] is True


def ids_in_local(store: Store) -> list[int]:
    return ids_in(Path(store.base))


def test_close_writes_what_is_buffered(controlled: tuple[Store, ControlledFS]) -> None:
    store, _ = controlled
    seen = Seen()
    w = writer(store, seen, flush=3600)  # would not flush for an hour on its own
    for i in range(10):
        w.offer(Piece(T0, [i]))
    w.close(timeout=5)
    assert ids_in(Path(store.base)) == list(range(10))
    assert not w.offer(Piece(T0, [99])), "a closed writer takes nothing more"
    assert seen.dropped["full"] == 1


def test_close_with_the_store_down_counts_what_it_could_not_write(
    controlled: tuple[Store, ControlledFS],
) -> None:
    store, fs = controlled
    seen = Seen()
    w = writer(store, seen, flush=3600)
    for i in range(7):
        w.offer(Piece(T0, [i]))
    fs.down = True
    started = time.monotonic()
    w.close(timeout=0.5)
    assert time.monotonic() - started < 3
    assert seen.dropped["shutdown"] == 7 and seen.written == 0


def test_rows_that_cannot_be_encoded_are_dropped_not_retried(
    controlled: tuple[Store, ControlledFS],
) -> None:
    store, _ = controlled
    seen = Seen()

    def broken(pieces: list[Piece]) -> pa.Table:
        if any(p.ids == [13] for p in pieces):
            raise ValueError("not encodable")
        return encode(pieces)

    w = PartitionedWriter(
        store, "captures/ns/dep/v1", "pod-a", broken, flush_seconds=0.02, file_rows=1,
        capacity_rows=100, observer=Observer(seen),
    )  # fmt: skip
    for i in (12, 13, 14):
        w.offer(Piece(T0, [i]))
    assert w.flush(5)
    w.close()
    assert ids_in(Path(store.base)) == [12, 14]
    assert seen.dropped["encode"] == 1
