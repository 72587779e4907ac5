"""The README's "Production data" snippets run, on files the real writers produced."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from modelwerk.runtime.capture import layout
from modelwerk.runtime.capture.records import (
    LabelBatch,
    PredictionBatch,
    PredictionEncoder,
    encode_labels,
)
from modelwerk.runtime.capture.store import Store
from modelwerk.runtime.capture.writer import PartitionedWriter

README = Path(__file__).resolve().parents[3] / "README.md"
README_ROOT = "/mnt/modelwerk-artifacts"
COLUMNS = ["sepal length (cm)", "petal length (cm)"]


def _section() -> str:
    text = README.read_text()
    start = text.index("## Production data")
    return text[start : text.index("\n## ", start + 1)]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(), flags=re.S)


def _write(store: Store, version: str, hour: int, truth_agrees: float) -> tuple[int, int]:
    """50 predictions of ``version`` in that hour, each labelled; some labels disagree."""
    rng = np.random.default_rng(hour)
    t = datetime(2026, 5, 4, hour, 30, tzinfo=UTC).timestamp()
    ids = [f"{version}-{hour}-{i}" for i in range(50)]
    pred = rng.integers(0, 3, 50)
    agree = rng.random(50) < truth_agrees
    truth = np.where(agree, pred, (pred + 1) % 3)
    encoder = PredictionEncoder(
        model="iris-classifier", version=version, track="blue", pod="iris-blue-x",
        task="classification", columns=COLUMNS, datatypes=["FP64", "FP64"], classes=[0, 1, 2],
    )  # fmt: skip
    common: dict[str, Any] = {"flush_seconds": 60, "file_rows": 1000, "capacity_rows": 10_000}
    captures: PartitionedWriter[PredictionBatch] = PartitionedWriter(
        store, layout.captures_prefix("modelwerk-demo", "iris", version), "iris-blue-x", encoder,
        **common,
    )  # fmt: skip
    captures.offer(
        PredictionBatch(
            time=t,
            request_ids=ids,
            counts=[1] * 50,
            prediction=pred,
            probabilities=None,
            x=rng.random((50, 2)),
            sampled=[i % 2 == 0 for i in range(50)],
        )
    )
    captures.close()
    labels: PartitionedWriter[LabelBatch] = PartitionedWriter(
        store, layout.labels_prefix("modelwerk-demo", "iris"), "iris-green-y",
        lambda b: encode_labels("classification", "iris-green-y", b), **common,
    )  # fmt: skip
    labels.offer(LabelBatch(t + 60, ids, [0] * 50, [str(v) for v in truth], [None] * 50))
    # a late second label for the first row: the first one counts
    labels.offer(LabelBatch(t + 120, ids[:1], [0], [str((truth[0] + 1) % 3)], [None]))
    labels.close()
    return int(agree.sum()), 50


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = Store(str(tmp_path))
    expected = {}
    for version, agrees in (("iris-classifier-v1", 0.9), ("iris-classifier-v2", 0.6)):
        right = total = 0
        for hour in (9, 10, 11):
            r, n = _write(root, version, hour, agrees)
            right, total = right + r, total + n
        expected[version] = (right, total)
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    return tmp_path


def test_the_pandas_snippet(store: Path) -> None:
    (code,) = _blocks("python")
    scope: dict[str, Any] = {}
    exec(code.replace(README_ROOT, str(store)), scope)  # the README's own code
    captures, inputs = scope["captures"], scope["inputs"]
    assert len(captures) == 100, "hours 9 and 10 of v1, not 11"
    assert set(captures["version"]) == {"iris-classifier-v1"}
    assert list(inputs.columns) == COLUMNS and len(inputs) == 50


def test_the_duckdb_snippet(store: Path) -> None:
    (query,) = _blocks("sql")
    rows = duckdb.sql(query.replace(README_ROOT, str(store))).fetchall()
    expected = json.loads((store / "expected.json").read_text())
    assert [r[0] for r in rows] == ["iris-classifier-v1", "iris-classifier-v2"]
    for version, labelled, accuracy in rows:
        right, total = expected[version]
        assert labelled == total and accuracy == pytest.approx(right / total)
