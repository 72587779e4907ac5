"""The capture store on an object store's client: s3fs against moto's S3 server (a unit
stand-in; the integration tier runs the same paths against a real server, versitygw).

What matters here is s3fs's own behaviour, which a local filesystem does not have: it keeps
a directory's listing, so a reader that listed a partition once must still see the files
another process writes into it later.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import s3fs

from modelwerk.runtime.capture.store import Store

moto_server = pytest.importorskip("moto.server")

KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    for name, value in {**KEYS, "AWS_ENDPOINT_URL": url, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    try:
        yield url
    finally:
        server.stop()


def _other_process(endpoint: str) -> s3fs.S3FileSystem:
    """A client of its own, as a serving pod's is: nothing it does touches the reader's."""
    return s3fs.S3FileSystem(
        key=KEYS["AWS_ACCESS_KEY_ID"],
        secret=KEYS["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=endpoint,
        skip_instance_cache=True,
    )


def test_a_reader_sees_files_written_into_a_partition_it_listed_before(endpoint: str) -> None:
    writer_fs = _other_process(endpoint)
    writer_fs.mkdir("bucket")
    writer = Store("s3://bucket/root", fs=writer_fs)
    reader = Store("s3://bucket/root")  # resolved from the environment, as the aggregator does
    partition = "captures/ns/dep/v1/date=2026-05-04/hour=12"
    writer.write(f"{partition}/a.parquet", b"one")
    assert reader.files(partition) == ["a.parquet"]
    assert reader.dirs("captures/ns/dep") == ["v1"]
    writer.write(f"{partition}/b.parquet", b"two")
    writer.write("captures/ns/dep/v2/date=2026-05-04/hour=12/c.parquet", b"three")
    assert sorted(reader.files(partition)) == ["a.parquet", "b.parquet"]
    assert sorted(reader.dirs("captures/ns/dep")) == ["v1", "v2"]
    with reader.open(f"{partition}/b.parquet") as handle:
        assert handle.read() == b"two"
    assert reader.files("captures/ns/dep/v3") == []


def test_a_restarted_aggregator_reads_an_experiment_back_from_the_object_store(
    endpoint: str,
) -> None:
    """The read back of tests/unit/capture/test_aggregator.py, through s3fs: five hours of an
    experiment, an aggregator that ran all along and one started at the end agree."""
    from modelwerk.runtime.monitor.aggregator import Aggregator

    from .test_aggregator import NOW, Clock, experiment_arms, run_experiment, settings

    _other_process(endpoint).mkdir("experiments")  # moto keeps buckets across servers
    start = NOW - 5 * 3600
    run_experiment(Store("s3://experiments/root", fs=_other_process(endpoint)), start, 5)
    clock = Clock(start)
    live = Aggregator(settings(), Store("s3://experiments/root"), clock)
    while clock.t < NOW:
        clock.t += 600
        live.tick()
    expected = experiment_arms(live, start)
    assert expected["a"][1] == expected["b"][1] == 600
    restarted = Aggregator(settings(), Store("s3://experiments/root"), Clock(NOW))
    restarted.tick()
    assert not restarted.current().to_json(start)["experiment"]["complete"]
    restarted.read_back(start)
    snap = restarted.tick()
    assert snap.store_error is None and snap.to_json(start)["experiment"]["complete"]
    assert experiment_arms(restarted, start) == expected
