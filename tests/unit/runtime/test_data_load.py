"""Loading sources: bundled datasets, csv/parquet URIs, and refusing what cannot be read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from modelwerk.api.v1alpha1.dataset import DatasetSource
from modelwerk.runtime import publish
from modelwerk.runtime.data import job, load

from .helpers import dataset, write_csv

BUILTIN_SHAPES = {
    "iris": (150, 5),
    "wine": (178, 14),
    "breast_cancer": (569, 31),
    "diabetes": (442, 11),
    "digits": (1797, 65),
}


@pytest.mark.parametrize(("name", "shape"), BUILTIN_SHAPES.items())
def test_builtin_datasets_load_with_a_target_column(name: str, shape: tuple[int, int]) -> None:
    frame = load.load_builtin(name)
    assert frame.shape == shape
    assert frame.columns[-1] == "target"
    assert isinstance(frame.index, pd.RangeIndex)
    assert all(isinstance(c, str) for c in frame.columns)


def test_unknown_builtin_is_unreadable() -> None:
    with pytest.raises(load.Unreadable, match="unknown builtin"):
        load.load_builtin("mnist")


def test_csv_and_parquet_uris_read_the_same_frame(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.5, 2.0, None], "c": ["a", "b", "a"], "n": [1, 2, 3]})
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    frame.to_csv(tmp_path / "d.csv", index=False)
    from_parquet = load.load_uri(f"file://{tmp_path}/d.parquet")
    from_csv = load.load_uri(f"file://{tmp_path}/d.csv")
    pd.testing.assert_frame_equal(from_parquet, from_csv, check_dtype=False)
    assert from_csv["n"].tolist() == [1, 2, 3]


def test_compressed_csv_by_extension(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1, 2]}).to_csv(tmp_path / "d.csv.gz", index=False, compression="gzip")
    assert load.load_uri(f"file://{tmp_path}/d.csv.gz")["a"].tolist() == [1, 2]


def test_explicit_format_overrides_an_unknown_extension(tmp_path: Path) -> None:
    uri = write_csv(tmp_path, "a\n1\n", name="data.txt")
    with pytest.raises(load.Unreadable, match=r"set source\.format"):
        load.load_uri(uri)
    assert load.load_uri(uri, "csv")["a"].tolist() == [1]


def test_pvc_uris_resolve_under_the_mount_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELWERK_PVC_ROOT", str(tmp_path))
    (tmp_path / "claim").mkdir()
    write_csv(tmp_path / "claim", "a\n7\n")
    assert load.load_uri("pvc://claim/data.csv")["a"].tolist() == [7]


@pytest.mark.parametrize(
    "uri",
    [
        "file:///tmp/data/../../etc/passwd.csv",
        "pvc://claim/../other/data.csv",
        "pvc://claim/a/../../x.csv",
        "s3://bucket/../x.csv",
        "not-a-uri.csv",
    ],
)
def test_path_traversal_and_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(load.Unreadable):
        load.load_uri(uri)


def test_the_api_refuses_traversal_too() -> None:
    with pytest.raises(ValidationError, match=r"\.\."):
        DatasetSource(uri="file:///data/../etc/x.csv")


@pytest.mark.parametrize("name", ["../evil", ".hidden", "a/b", ""])
def test_names_that_would_escape_the_store_are_refused(name: str, root: str) -> None:
    with pytest.raises(publish.PublishError):
        publish.segment(name)
    outcome = job.validate(dataset(name=name, builtin="iris"), root)
    assert outcome.exit_code == job.EXIT_BAD_INPUT
    assert outcome.result["reason"] == "InvalidInput"


def test_missing_file_is_unreadable_not_a_crash(tmp_path: Path, root: str) -> None:
    outcome = job.validate(dataset(uri=f"file://{tmp_path}/absent.csv"), root)
    assert outcome.exit_code == job.EXIT_UNREADABLE
    assert outcome.result["valid"] is False
    assert outcome.result["reason"] == "Unreadable"
    assert "absent.csv" in outcome.result["error"]


def test_corrupt_parquet_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(load.Unreadable, match="cannot read"):
        load.load_uri(f"file://{tmp_path}/bad.parquet")


def test_a_named_parquet_index_is_kept_as_a_column(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2]}, index=pd.Index([10, 20], name="id"))
    frame.to_parquet(tmp_path / "d.parquet")
    loaded = load.load_uri(f"file://{tmp_path}/d.parquet")
    assert list(loaded.columns) == ["id", "a"]
