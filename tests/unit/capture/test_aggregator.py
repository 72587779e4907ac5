"""The aggregator (``modelwerk monitor``) over a real store written by the real writers."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelwerk.runtime.capture import layout
from modelwerk.runtime.capture.records import (
    LabelBatch,
    PredictionBatch,
    PredictionEncoder,
    encode_labels,
)
from modelwerk.runtime.capture.store import Store
from modelwerk.runtime.capture.writer import PartitionedWriter
from modelwerk.runtime.monitor.aggregator import Aggregator
from modelwerk.runtime.monitor.http import serve
from modelwerk.runtime.monitor.settings import MonitorSettings

from .fs import ControlledFS

NOW = datetime(2026, 5, 4, 12, 30, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def settings(**extra: object) -> MonitorSettings:
    values: dict[str, object] = {
        "namespace": "ml",
        "deployment": "iris",
        "window_seconds": 3600,
        "horizon_seconds": 3600,
        "grace_seconds": 60,
        "retention_days": 7,
    }
    values.update(extra)
    return MonitorSettings(**values)  # type: ignore[arg-type]


def write_predictions(
    store: Store,
    version: str,
    pod: str,
    t: float,
    ids: list[str],
    pred: list[int],
    arm: str | None = None,
    units: list[str] | None = None,
) -> None:
    encoder = PredictionEncoder(
        model="iris", version=version, track="blue", pod=pod, task="classification",
        columns=["a"], datatypes=["FP64"], classes=[0, 1, 2],
    )  # fmt: skip
    writer: PartitionedWriter[PredictionBatch] = PartitionedWriter(
        store, layout.captures_prefix("ml", "iris", version), pod, encoder,
        flush_seconds=60, file_rows=10_000, capacity_rows=100_000,
    )  # fmt: skip
    writer.offer(
        PredictionBatch(
            time=t,
            request_ids=ids,
            counts=[1] * len(ids),
            prediction=np.array(pred),
            probabilities=None,
            x=np.zeros((len(ids), 1)),
            sampled=[False] * len(ids),
            arms=[arm] * len(ids) if arm else None,
            units=list(units) if units is not None else None,
        )
    )
    writer.close()


def write_labels(store: Store, pod: str, t: float, ids: list[str], values: list[int]) -> None:
    writer: PartitionedWriter[LabelBatch] = PartitionedWriter(
        store, layout.labels_prefix("ml", "iris"), pod,
        lambda b: encode_labels("classification", pod, b),
        flush_seconds=60, file_rows=10_000, capacity_rows=100_000,
    )  # fmt: skip
    writer.offer(LabelBatch(t, ids, [0] * len(ids), [str(v) for v in values], [None] * len(ids)))
    writer.close()


def fill(store: Store) -> None:
    """Two versions on four pods; labels through other pods than the predictions."""
    for p in range(4):
        ids = [f"p{p}-{i}" for i in range(50)]
        write_predictions(store, "v1" if p < 3 else "v2", f"pod-{p}", NOW - 600, ids, [1] * 50)
        truth = [1] * 40 + [0] * 10 if p < 3 else [1] * 25 + [2] * 25
        write_labels(store, f"pod-{(p + 1) % 4}", NOW - 300, ids, truth)


def test_figures_per_version_from_every_pod(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    fill(store)
    snap = Aggregator(settings(), store, Clock(NOW)).tick()
    doc = snap.to_json()
    by = {v["version"]: v for v in doc["versions"]}
    assert by["v1"]["matched"] == 150 and by["v1"]["accuracy"] == pytest.approx(120 / 150)
    assert by["v2"]["matched"] == 50 and by["v2"]["accuracy"] == pytest.approx(0.5)
    assert doc["labels"] == {
        "received": 200, "matched": 200, "unmatched": 0, "pending": 0, "duplicates": 0,
    }  # fmt: skip
    assert doc["store"]["ok"] and doc["ready"]


def test_a_restarted_aggregator_arrives_at_the_same_figures(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    clock = Clock(NOW - 900)
    live = Aggregator(settings(), store, clock)
    live.tick()
    fill(store)
    for step in range(4):  # reads incrementally as files appear
        clock.t = NOW + step
        live.tick()
    write_labels(store, "pod-0", NOW, ["unknown-id"], [1])
    clock.t = NOW + 5
    live.tick()
    clock.t = NOW + 120
    before = live.tick().to_json()
    assert before["labels"]["unmatched"] == 1
    restarted = Aggregator(settings(), store, Clock(NOW + 120)).tick().to_json()
    assert restarted["versions"] == before["versions"]
    assert restarted["labels"]["matched"] == before["labels"]["matched"]
    assert restarted["labels"]["pending"] == 1, "an unknown id waits out its grace again"


def test_files_are_read_once(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    fill(store)
    aggregator = Aggregator(settings(), store, Clock(NOW))
    aggregator.tick()
    read = dict(aggregator.snapshot.files_read)
    aggregator.tick()
    assert aggregator.snapshot.files_read == read
    assert aggregator.snapshot.versions[0].matched == 150, "nothing was counted twice"


def test_a_store_outage_keeps_the_last_figures_and_says_so(
    controlled: tuple[Store, ControlledFS],
) -> None:
    store, fs = controlled
    fill(store)
    clock = Clock(NOW)
    aggregator = Aggregator(settings(), store, clock)
    aggregator.tick()
    fs.down = True
    clock.t += 10
    snap = aggregator.tick()
    assert snap.store_error is not None and "unreachable" in snap.store_error
    assert snap.to_json()["store"]["ok"] is False and snap.store_errors == 1
    assert sum(v.matched for v in snap.versions) == 200
    fs.down = False
    clock.t += 10
    assert aggregator.tick().store_error is None


def test_a_damaged_file_is_skipped(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    fill(store)
    hour = layout.partition(layout.hour_of(NOW - 600))
    bad = tmp_path / layout.captures_prefix("ml", "iris", "v1") / hour / "junk.parquet"
    bad.write_bytes(b"not parquet at all")
    snap = Aggregator(settings(), store, Clock(NOW)).tick()
    assert snap.store_error is None
    assert sum(v.matched for v in snap.versions) == 200


def test_retention_deletes_whole_partitions_older_than_the_limit(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    old = NOW - 8 * 86400
    boundary = NOW - 7 * 86400 - 3600  # the boundary day, an hour before the cutoff
    for t in (old, boundary, NOW - 60):
        write_predictions(store, "v1", "pod-0", t, [f"{t}"], [1])
        write_labels(store, "pod-0", t, [f"{t}"], [1])
    snap = Aggregator(settings(retention_days=7), store, Clock(NOW)).tick()
    left = sorted(str(p.relative_to(tmp_path).parent) for p in tmp_path.rglob("*.parquet"))
    keep = layout.partition(layout.hour_of(NOW - 60))
    assert left == [
        f"captures/ml/iris/v1/{keep}",
        f"labels/ml/iris/{keep}",
    ]
    assert snap.deleted_partitions == 4


def test_live_and_metrics_endpoints(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    fill(store)
    aggregator = Aggregator(settings(), store, Clock(NOW))
    aggregator.tick()
    server = serve(aggregator, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/live", timeout=5) as response:
            doc = json.loads(response.read())
        assert {v["version"] for v in doc["versions"]} == {"v1", "v2"}
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            text = response.read().decode()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        key = ("modelwerk_live_accuracy", (("arm", ""), ("version", "v1")))
        assert samples[key] == pytest.approx(0.8)
        assert samples[("modelwerk_live_labels", (("result", "matched"),))] == 200
        assert samples[("modelwerk_live_store_healthy", ())] == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_window_moves_on(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    fill(store)
    clock = Clock(NOW)
    aggregator = Aggregator(settings(), store, clock)
    aggregator.tick()
    clock.t = NOW + timedelta(hours=1).total_seconds()
    snap = aggregator.tick()
    assert snap.versions == [] and snap.labels.received == 0


def test_experiment_arms_from_every_pod_since_the_start(tmp_path: Path) -> None:
    """Two pods per arm; each label goes to a pod of *either* arm, never the one that
    predicted: the join still counts every label for the arm that served it."""
    store = Store(str(tmp_path))
    start = NOW - 1800
    write_predictions(store, "v1", "pod-x", start - 120, ["before"], [1])  # stable, earlier
    write_labels(store, "pod-x", start - 60, ["before"], [1])
    for p in range(4):
        arm, version = ("a", "v1") if p < 2 else ("b", "v2")
        ids = [f"p{p}-{i}" for i in range(50)]
        write_predictions(store, version, f"pod-{p}", start + 60 * p, ids, [1] * 50, arm)
        truth = [1] * 30 + [0] * 20 if arm == "a" else [1] * 45 + [0] * 5
        write_labels(store, f"pod-{(p + 1) % 4}", start + 600, ids, truth)
    aggregator = Aggregator(settings(window_seconds=600), store, Clock(NOW))
    snap = aggregator.tick()
    assert snap.to_json()["versions"] == []  # the labels are older than the window
    doc = snap.to_json(since=start)
    by = {(a["version"], a["arm"]): a for a in doc["experiment"]["arms"]}
    assert set(by) == {("v1", "a"), ("v2", "b")}
    assert (by[("v1", "a")]["matched"], by[("v1", "a")]["correct"]) == (100, 60)
    assert (by[("v2", "b")]["matched"], by[("v2", "b")]["correct"]) == (100, 90)
    # the arms' minutes after a later start only
    later = {
        (a["version"], a["arm"]): a["matched"]
        for a in snap.to_json(since=start + 120)["experiment"]["arms"]
    }
    assert later == {("v1", "a"): 0, ("v2", "b"): 100}
    server = serve(aggregator, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/live"
    try:
        with urllib.request.urlopen(f"{base}?since={start}", timeout=5) as response:
            assert json.loads(response.read())["experiment"] == doc["experiment"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}?since=yesterday", timeout=5)
        assert refused.value.code == 400
        assert "since must be seconds since the epoch" in refused.value.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_experiment(store: Store, start: float, hours: int) -> None:
    """An A/B test over ``hours``: every ten minutes each arm serves its sticky users (some
    come back), and their labels arrive five minutes later through a pod of the other arm."""
    rng = np.random.default_rng(11)
    for step in range(hours * 6):
        t = start + 600 * step + 30
        for arm, version, accuracy in (("a", "v1", 0.7), ("b", "v2", 0.8)):
            users = [f"{arm}-user-{u}" for u in rng.integers(0, 400, 20)]
            ids = [f"{arm}-{step}-{i}" for i in range(20)]
            write_predictions(store, version, f"pod-{arm}", t, ids, [1] * 20, arm, users)
            truth = (rng.random(20) < accuracy).astype(int).tolist()
            write_labels(store, f"pod-{'b' if arm == 'a' else 'a'}", t + 300, ids, truth)


def experiment_arms(aggregator: Aggregator, since: float) -> dict[str, tuple[int, int, int]]:
    doc = aggregator.current().to_json(since)["experiment"]
    return {a["arm"]: (a["units"], a["matched"], a["correct"]) for a in doc["arms"]}


def test_a_restarted_aggregator_reads_an_experiment_back_to_its_start(tmp_path: Path) -> None:
    """Five hours of an experiment with a one-hour window and horizon: an aggregator that ran
    all along and one started at the end count the same units and outcomes once the latter
    was asked about the experiment's start."""
    store = Store(str(tmp_path))
    start = NOW - 5 * 3600
    run_experiment(store, start, 5)
    clock = Clock(start)
    live = Aggregator(settings(), store, clock)
    while clock.t < NOW:
        clock.t += 600
        live.tick()
    expected = experiment_arms(live, start)
    assert live.current().to_json(start)["experiment"]["complete"]
    assert expected["a"][1] == expected["b"][1] == 30 * 20  # every label of five hours
    assert 0 < expected["a"][0] <= 400 and 0 < expected["b"][0] <= 400

    restarted = Aggregator(settings(), store, Clock(NOW))
    restarted.tick()
    first = restarted.current().to_json(start)["experiment"]
    assert not first["complete"], "the first round read only the last two hours"
    assert experiment_arms(restarted, start) != expected
    restarted.read_back(start)  # what GET /live?since=<start> does
    restarted.tick()
    assert restarted.current().to_json(start)["experiment"]["complete"]
    assert experiment_arms(restarted, start) == expected
    # the window's figures are those of the aggregator that ran all along, too
    assert restarted.current().to_json()["versions"] == live.current().to_json()["versions"]
    restarted.read_back(start + 60)  # covered already: nothing is read again
    assert restarted._read_back is None
    # an experiment older than retention is complete from what retention kept
    ancient = NOW - 30 * 86400
    assert not restarted.current().to_json(ancient)["experiment"]["complete"]
    restarted.read_back(ancient)
    restarted.tick()
    assert restarted.current().to_json(ancient)["experiment"]["complete"]
    assert experiment_arms(restarted, start) == expected


def test_units_and_paired_outcomes_over_http(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    ids = [f"r{i}" for i in range(6)]
    write_predictions(store, "v1", "pod-a", NOW - 600, ids, [1, 1, 1, 0, 0, 1], "a",
                      ["u1", "u1", "u2", "u3", "u3", "u3"])  # fmt: skip
    write_predictions(store, "v2", "pod-s", NOW - 600, ids, [1, 0, 1, 1, 0, 1])  # the shadow
    write_labels(store, "pod-s", NOW - 300, ids, [1] * 6)
    aggregator = Aggregator(settings(), store, Clock(NOW))
    aggregator.tick()
    server = serve(aggregator, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/live"
    try:
        with urllib.request.urlopen(f"{base}?since={NOW - 3600}", timeout=5) as response:
            doc = json.loads(response.read())
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert doc["pairs"] == [
        {"first": "v1", "second": "v2", "bothRight": 3, "firstOnly": 1, "secondOnly": 1,
         "bothWrong": 1},
    ]  # fmt: skip
    (arm,) = doc["experiment"]["arms"]
    assert (arm["arm"], arm["units"], arm["matched"]) == ("a", 3, 6)
    assert doc["experiment"]["unitRate"] == 1.0 and doc["experiment"]["complete"]


def test_units_are_counted_once_every_writer_has_flushed_them(tmp_path: Path) -> None:
    """Writers flush on their own schedules: units first seen within the grace are left out
    of both arms alike until then, so one arm's later flush cannot fake a mismatch."""
    store = Store(str(tmp_path))
    start = NOW - 600
    write_predictions(store, "v1", "pod-a", start + 10, ["a1", "a2"], [1, 1], "a", ["u1", "u2"])
    write_predictions(store, "v2", "pod-b", NOW - 30, ["b1"], [1], "b", ["u3"])
    write_predictions(store, "v1", "pod-a", NOW - 20, ["a3"], [1], "a", ["u1"])  # u1 again
    clock = Clock(NOW)
    aggregator = Aggregator(settings(grace_seconds=60), store, clock)
    aggregator.tick()

    def units() -> dict[str, int]:
        doc = aggregator.current().to_json(start)["experiment"]
        return {a["arm"]: a["units"] for a in doc["arms"]}

    assert units() == {"a": 2, "b": 0}  # u3 is 30 s old: within the grace
    clock.t = NOW + 31
    aggregator.tick()
    assert units() == {"a": 2, "b": 1}
