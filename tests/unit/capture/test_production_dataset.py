"""Production Datasets from real captures: predictions and labels written by the serving pods'
own writer to a real S3 server (versitygw), materialised by the validation code, trained on.

The store is versitygw (``tests/cluster/s3.py``), the client s3fs configured from the
environment exactly as in a pod; the captures are iris rows predicted by a model that is
wrong for one class, so that the labels (the truth) differ from the predictions.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.builders.dataset import ProductionContext
from modelwerk.runtime.capture import layout
from modelwerk.runtime.capture.records import (
    LabelBatch,
    PredictionBatch,
    PredictionEncoder,
    encode_labels,
)
from modelwerk.runtime.capture.store import Store
from modelwerk.runtime.capture.writer import PartitionedWriter
from modelwerk.runtime.data import job, load, production, snapshot
from modelwerk.runtime.trainer import job as trainer_job
from tests.cluster.s3 import S3Server, running_s3

BUCKET = "artifacts"
ROOT = f"s3://{BUCKET}/mw"
NOW = datetime(2026, 5, 4, 12, 30, tzinfo=UTC)
IRIS = load.load_builtin("iris")
COLUMNS = [c for c in IRIS.columns if c != "target"]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3(tmp_path_factory.mktemp("s3"), buckets=(BUCKET,)) as server:
        yield server


@pytest.fixture
def store(s3: S3Server, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Store:
    """The artifact store of one test: its own prefix of the bucket, reached as a pod does."""
    env = {**s3.credentials, "AWS_ENDPOINT_URL": s3.endpoint, "AWS_DEFAULT_REGION": s3.region}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Store(f"{ROOT}/{request.node.name}")


def capture(
    store: Store,
    rows: range,
    *,
    version: str = "iris-v1",
    when: datetime = NOW - timedelta(minutes=30),
    labelled: bool = True,
    sampled: bool = True,
) -> None:
    """Serve iris rows ``rows`` (one request each) and post their true class, through the
    serving pods' writers."""
    pod = f"pod-{version}"
    encoder = PredictionEncoder(
        model="iris", version=version, track="blue", pod=pod, task="classification",
        columns=COLUMNS, datatypes=["FP64"] * len(COLUMNS), classes=[0, 1, 2],
    )  # fmt: skip
    writer: PartitionedWriter[PredictionBatch] = PartitionedWriter(
        store, layout.captures_prefix("ml", "iris", version), pod, encoder,
        flush_seconds=60, file_rows=10_000, capacity_rows=100_000,
    )  # fmt: skip
    ids = [f"{version}-{i}" for i in rows]
    x = IRIS.loc[list(rows), COLUMNS].to_numpy(dtype=np.float64)
    truth = IRIS.loc[list(rows), "target"].to_numpy()
    wrong = np.where(truth == 2, 1, truth)  # the model confuses virginica with versicolor
    for k, rid in enumerate(ids):
        writer.offer(
            PredictionBatch(
                time=when.timestamp() + k, request_ids=[rid], counts=[1],
                prediction=wrong[k : k + 1], probabilities=None, x=x[k : k + 1],
                sampled=[sampled],
            )
        )  # fmt: skip
    writer.close()
    assert writer.healthy
    if not labelled:
        return
    labels: PartitionedWriter[LabelBatch] = PartitionedWriter(
        store, layout.labels_prefix("ml", "iris"), f"{pod}-feedback",
        lambda b: encode_labels("classification", f"{pod}-feedback", b),
        flush_seconds=60, file_rows=10_000, capacity_rows=100_000,
    )  # fmt: skip
    labels.offer(
        LabelBatch(
            when.timestamp() + len(ids) + 5,
            ids,
            [0] * len(ids),
            [str(int(t)) for t in truth],
            [None] * len(ids),
        )
    )
    labels.close()


def production_dataset(**source: Any) -> Dataset:
    return Dataset.from_k8s(
        {
            "metadata": {"name": "recent", "namespace": "ml"},
            "spec": {
                "target": "target",
                "source": {"production": {"deployment": "iris", "minLabelledRows": 10, **source}},
            },
        }
    )


def base_version(store: Store) -> production.Base:
    base = Dataset.from_k8s(
        {"metadata": {"name": "iris", "namespace": "ml"}, "spec": {"source": {"builtin": "iris"}}}
    )
    outcome = job.validate(base, store.root)
    assert outcome.valid, outcome.result
    return production.Base("iris", outcome.result["version"], outcome.result["snapshotUri"])


def test_labelled_rows_become_a_validated_version_with_their_provenance(store: Store) -> None:
    capture(store, range(0, 60))
    capture(store, range(60, 80), labelled=False)  # predictions nobody labelled
    capture(store, range(80, 100), sampled=False)  # labelled, but the inputs were not kept
    outcome = job.validate(production_dataset(), store.root, production.Context(NOW))
    assert outcome.valid, outcome.result
    result = outcome.result
    assert (result["rows"], result["columns"]) == (60, 5)
    frame = snapshot.read(result["snapshotUri"])
    assert list(frame.columns) == [*COLUMNS, "target"]
    # The rows are the served inputs with the true labels, typed as the labels spell them.
    expected = IRIS.loc[0:59].reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    assert frame["target"].dtype == np.int64
    assert snapshot.version_of(frame) == result["version"]
    prov = result["provenance"]["production"]
    assert prov["rows"] == prov["labelledRows"] == 60
    assert prov["modelVersions"] == ["iris-v1"]
    assert prov["end"] == NOW.isoformat()
    assert prov["start"] == (NOW - timedelta(hours=24)).isoformat()


def test_the_same_rows_give_the_same_version_and_new_labels_a_new_one(store: Store) -> None:
    capture(store, range(0, 40))
    ds = production_dataset()
    first = job.validate(ds, store.root, production.Context(NOW))
    again = job.validate(ds, store.root, production.Context(NOW + timedelta(minutes=5)))
    assert first.valid and again.valid
    assert again.result["version"] == first.result["version"]
    assert again.result["snapshotUri"] == first.result["snapshotUri"]
    capture(store, range(40, 50), when=NOW + timedelta(minutes=1))
    newer = job.validate(ds, store.root, production.Context(NOW + timedelta(minutes=10)))
    assert newer.result["rows"] == 50 and newer.result["version"] != first.result["version"]
    # The older snapshot is still there, unchanged.
    assert (
        snapshot.version_of(snapshot.read(first.result["snapshotUri"])) == first.result["version"]
    )


def test_window_last_rows_and_model_version_select_rows(store: Store) -> None:
    capture(store, range(0, 30), when=NOW - timedelta(hours=30))  # outside the last 24 hours
    capture(store, range(30, 60), version="iris-v1")
    capture(store, range(60, 100), version="iris-v2", when=NOW - timedelta(minutes=10))
    ctx = production.Context(NOW)
    everything = job.validate(production_dataset(), store.root, ctx).result
    assert everything["rows"] == 70
    assert everything["provenance"]["production"]["modelVersions"] == ["iris-v1", "iris-v2"]
    v2 = job.validate(production_dataset(modelVersion="iris-v2"), store.root, ctx).result
    assert v2["rows"] == 40 and v2["provenance"]["production"]["modelVersions"] == ["iris-v2"]
    newest = job.validate(production_dataset(window={"lastRows": 25}), store.root, ctx).result
    frame = snapshot.read(newest["snapshotUri"])
    pd.testing.assert_frame_equal(frame, IRIS.loc[75:99].reset_index(drop=True), check_dtype=False)
    assert newest["provenance"]["production"] == {
        **newest["provenance"]["production"], "rows": 25, "labelledRows": 70,
    }  # fmt: skip
    fixed = {
        "start": (NOW - timedelta(hours=31)).isoformat(),
        "end": (NOW - timedelta(hours=29)).isoformat(),
    }
    old = job.validate(production_dataset(window=fixed), store.root, ctx).result
    assert old["rows"] == 30


def test_too_few_labelled_rows_publish_nothing_and_say_how_many(store: Store) -> None:
    capture(store, range(0, 8))
    capture(store, range(8, 40), labelled=False)
    outcome = job.validate(production_dataset(), store.root, production.Context(NOW))
    assert outcome.exit_code == job.EXIT_VERDICT and not outcome.valid
    result = outcome.result
    assert result["reason"] == "InsufficientLabels"
    assert (result["labelledRows"], result["requiredRows"]) == (8, 10)
    assert "8 labelled production rows" in result["message"]
    assert not store.dirs("datasets")  # no snapshot written


def test_base_plus_production_rows_are_aligned_to_the_base(store: Store) -> None:
    base = base_version(store)
    capture(store, range(0, 30))
    ds = production_dataset(base={"name": "iris"})
    outcome = job.validate(ds, store.root, production.Context(NOW, base))
    assert outcome.valid, outcome.result
    frame = snapshot.read(outcome.result["snapshotUri"])
    assert len(frame) == 150 + 30
    expected = pd.concat([IRIS, IRIS.loc[0:29]], ignore_index=True)
    pd.testing.assert_frame_equal(frame, expected)  # the base's column order and dtypes
    prov = outcome.result["provenance"]
    assert prov["base"] == {"dataset": "iris", "version": base.version, "rows": 150}
    assert prov["production"]["rows"] == 30


def test_a_base_snapshot_changed_in_the_store_is_refused(store: Store) -> None:
    base = base_version(store)
    capture(store, range(0, 30))
    tampered = IRIS.head(10)
    rel = base.snapshot_uri.removeprefix(store.root + "/")
    store.write(rel, tampered.to_parquet(index=False))
    outcome = job.validate(
        production_dataset(base={"name": "iris"}), store.root, production.Context(NOW, base)
    )
    assert outcome.result["reason"] == "Unreadable"
    assert "changed in the store" in outcome.result["error"]


def test_labels_that_do_not_fit_the_base_target_are_a_clear_error(store: Store) -> None:
    base = base_version(store)
    capture(store, range(0, 12))
    labels: PartitionedWriter[LabelBatch] = PartitionedWriter(
        store, layout.labels_prefix("ml", "iris"), "p",
        lambda b: encode_labels("classification", "p", b),
        flush_seconds=60, file_rows=10_000, capacity_rows=100_000,
    )  # fmt: skip
    # Earlier labels of other requests do not matter; a second label of a row is ignored,
    # so relabel fresh requests with text.
    capture(store, range(12, 24), labelled=False, version="iris-v3")
    labels.offer(
        LabelBatch(
            (NOW - timedelta(minutes=1)).timestamp(), [f"iris-v3-{i}" for i in range(12, 24)],
            [0] * 12, ["setosa"] * 12, [None] * 12,
        )
    )  # fmt: skip
    labels.close()
    outcome = job.validate(
        production_dataset(base={"name": "iris"}), store.root, production.Context(NOW, base)
    )
    assert outcome.result["reason"] == "Unreadable"
    assert "'target'" in outcome.result["error"] and "setosa" in outcome.result["error"]


def test_the_context_the_operator_writes_is_what_the_pod_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = Dataset.from_k8s(
        {
            "metadata": {"name": "iris"},
            "spec": {"source": {"builtin": "iris"}},
            "status": {
                "phase": "Ready",
                "version": "sha256:" + "a" * 64,
                "snapshotUri": "s3://b/x",
            },
        }
    )
    monkeypatch.setenv(production.CONTEXT_ENV, ProductionContext(NOW, base).to_env())
    assert production.Context.from_env() == production.Context(
        NOW, production.Base("iris", "sha256:" + "a" * 64, "s3://b/x")
    )
    monkeypatch.setenv(production.CONTEXT_ENV, "{}")
    with pytest.raises(ValueError, match="MODELWERK_PRODUCTION is not valid"):
        production.Context.from_env()


def test_a_past_version_is_trained_on_again_with_the_same_artifact(store: Store) -> None:
    """Reproducibility on the store: after the Dataset moved on, its first version is still
    readable, training on it is repeatable byte for byte, and differs from the newer one."""
    base = base_version(store)
    capture(store, range(0, 40))
    ds = production_dataset(base={"name": "iris"})
    old = job.validate(ds, store.root, production.Context(NOW, base)).result
    capture(store, range(100, 150), when=NOW + timedelta(minutes=5))
    new = job.validate(ds, store.root, production.Context(NOW + timedelta(hours=1), base)).result
    assert old["version"] != new["version"] and (old["rows"], new["rows"]) == (190, 240)

    def train(result: dict[str, Any]) -> dict[str, Any]:
        data = trainer_job.DatasetInput(
            name="recent",
            version=result["version"],
            snapshot_uri=result["snapshotUri"],
            target="target",
            profile_uri=result["profileUri"],
        )
        tj = TrainingJob.model_validate(
            {
                "kind": "TrainingJob",
                "metadata": {"name": "tj", "namespace": "ml", "uid": "u-1"},
                "spec": {
                    "datasetRef": {"name": "recent", "version": result["version"]},
                    "model": {"name": "iris-classifier"},
                    "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 15}},
                },
            }
        )
        outcome = trainer_job.run(tj, data, store.root)
        assert outcome.exit_code == 0, outcome.result
        assert outcome.result["datasetVersion"] == result["version"]
        return outcome.result

    first, again, newer = train(old), train(old), train(new)
    assert first["artifact"]["sha256"] == again["artifact"]["sha256"]
    assert newer["artifact"]["sha256"] != first["artifact"]["sha256"]
    assert {"scikit-learn", "numpy"} <= set(first["environment"]["libraries"])
