"""Dataset versions: the canonical encoding, stability, sensitivity, and immutable storage."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelwerk.runtime import storage
from modelwerk.runtime.data import job, load, snapshot

from .helpers import dataset, write_csv

IRIS_VERSION = "sha256:c1a0ce89470a580ffd0e07e41eb8847458003fc6af69021d615686e75ee47a32"


def test_canonical_encoding_is_pinned() -> None:
    # The encoding defines every version ever published: changing it must be deliberate.
    frame = pd.DataFrame(
        {
            "i": [1, -2],
            "f": [0.1, float("nan")],
            "b": [True, False],
            "s": pd.Series(['x"y', None], dtype="object"),
            "n": pd.Series([7, None], dtype="Int64"),
        }
    )
    header = (
        b'{"canonical":"modelwerk/v1","rows":2,"columns":[["i","integer"],["f","float"],'
        b'["b","boolean"],["s","string"],["n","integer"]]}\n'
    )
    assert b"".join(snapshot.canonical_chunks(frame)) == b"".join(
        [
            header,
            b"i\x01\x01" + struct.pack("<qq", 1, -2),
            b"f" + struct.pack("<d", 0.1) + bytes.fromhex("000000000000f87f"),
            b"b\x01\x00",
            b't["x\\"y",null]',
            b"i\x01\x00" + struct.pack("<qq", 7, 0),
        ]
    )
    iris = (
        "sha256:"
        + hashlib.sha256(b"".join(snapshot.canonical_chunks(load.load_builtin("iris")))).hexdigest()
    )
    assert snapshot.version_of(load.load_builtin("iris")) == iris == IRIS_VERSION


def test_text_blocks_hold_any_cell() -> None:
    frame = pd.DataFrame(
        {
            "when": pd.to_datetime(["2024-01-02 03:04:05", None]),
            "mixed": pd.Series([np.inf, 3], dtype="object"),
            "cat": pd.Series(["b", "a"], dtype="category"),
        }
    )
    blocks = b"".join(snapshot.canonical_chunks(frame)).split(b"\n", 1)[1]
    assert blocks == b't["2024-01-02T03:04:05",null]t["Infinity",3]t["b","a"]'


def test_every_missing_float_encodes_alike() -> None:
    nan_kinds = pd.DataFrame({"f": pd.Series([np.nan, -np.nan, None], dtype="float64")})
    nullable = pd.DataFrame({"f": pd.Series([pd.NA, np.nan, None], dtype="Float64")})
    assert snapshot.version_of(nan_kinds) == snapshot.version_of(nullable)


def test_same_content_same_version_across_reads_and_formats(tmp_path: Path) -> None:
    frame = load.load_builtin("wine")
    assert snapshot.version_of(frame) == snapshot.version_of(load.load_builtin("wine"))
    frame.to_parquet(tmp_path / "w.parquet", index=False)
    frame.to_csv(tmp_path / "w.csv", index=False)
    from_csv = load.load_uri(f"file://{tmp_path}/w.csv")
    from_parquet = load.load_uri(f"file://{tmp_path}/w.parquet")
    assert snapshot.version_of(from_parquet) == snapshot.version_of(frame)
    assert snapshot.version_of(from_csv) == snapshot.version_of(frame)


def test_object_and_string_dtypes_hash_alike() -> None:
    as_object = pd.DataFrame({"s": pd.Series(["a", None], dtype="object")})
    as_string = pd.DataFrame({"s": pd.Series(["a", None], dtype="string")})
    assert snapshot.version_of(as_object) == snapshot.version_of(as_string)


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.assign(a=[1, 2, 4]),  # one cell
        lambda f: f.iloc[[1, 0, 2]].reset_index(drop=True),  # row order
        lambda f: f.rename(columns={"a": "A"}),  # a column name
        lambda f: f[["b", "a"]],  # column order
        lambda f: f.assign(a=[1.0, 2.0, 3.0]),  # the logical type
        lambda f: f.iloc[:2],  # a row fewer
    ],
)
def test_any_change_gives_a_new_version(change: object) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert callable(change)
    assert snapshot.version_of(change(frame)) != snapshot.version_of(frame)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.floats(allow_nan=False, width=64), min_size=1, max_size=20),
    st.data(),
)
def test_changing_any_float_cell_changes_the_version(
    values: list[float], data: st.DataObject
) -> None:
    frame = pd.DataFrame({"x": values})
    index = data.draw(st.integers(0, len(values) - 1))
    new = data.draw(st.floats(allow_nan=False).filter(lambda v: repr(v) != repr(values[index])))
    changed = frame.copy()
    changed.loc[index, "x"] = new
    assert snapshot.version_of(changed) != snapshot.version_of(frame)


def test_snapshot_reads_back_as_the_same_version(tmp_path: Path, root: str) -> None:
    uri = write_csv(tmp_path, "n,x,s,b,target\n1,0.5,a,true,0\n2,,b,false,1\n3,1e-9,,true,0\n")
    result = job.validate(dataset(uri=uri), root).result
    assert result["valid"], result
    stored = snapshot.read(result["snapshotUri"])
    assert snapshot.version_of(stored) == result["version"]


def test_versions_are_content_addressed_and_never_overwritten(tmp_path: Path, root: str) -> None:
    first = job.validate(dataset(builtin="iris"), root).result
    profile = storage.to_local(first["profileUri"])
    before = os.stat(profile).st_mtime_ns
    again = job.validate(dataset(builtin="iris"), root).result
    assert again["version"] == first["version"]
    assert (again["snapshotUri"], again["profileUri"]) == (
        first["snapshotUri"],
        first["profileUri"],
    )
    assert os.stat(profile).st_mtime_ns == before
    # A changed source is a new directory next to the old one, which stays.
    frame = load.load_builtin("iris")
    frame.loc[0, "sepal length (cm)"] = 9.9
    frame.to_csv(tmp_path / "iris.csv", index=False)
    changed = job.validate(dataset(uri=f"file://{tmp_path}/iris.csv"), root).result
    assert changed["version"] != first["version"]
    versions = sorted(p.name for p in (Path(root) / "datasets" / "ds").iterdir())
    assert versions == sorted([first["version"][7:], changed["version"][7:]])
    assert os.path.exists(storage.to_local(first["snapshotUri"]))


def test_no_staging_directories_are_left_behind(root: str) -> None:
    job.validate(dataset(builtin="iris"), root)
    job.validate(dataset(builtin="iris"), root)
    assert [
        p.name for p in (Path(root) / "datasets" / "ds").iterdir() if p.name.startswith(".")
    ] == []


def test_the_version_ignores_the_index() -> None:
    frame = pd.DataFrame({"a": np.arange(3)})
    assert snapshot.version_of(frame) == snapshot.version_of(frame.set_axis([7, 8, 9]))
