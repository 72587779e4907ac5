"""Model artifacts are never overwritten: ``models/<model>/<sha256>/`` is written once.

Covered elsewhere, not repeated here: one directory for two identical runs
(test_trainer.py::test_identical_runs_publish_the_same_artifact_once), dataset versions never
rewritten (test_data_version.py::test_versions_are_content_addressed_and_never_overwritten), the
server refusing bytes whose sha256 differs from the expected one before unpickling
(tests/unit/server/test_loading.py::test_tampered_artifact_is_refused).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from modelwerk.runtime import publish, storage
from modelwerk.runtime.artifacts import COMPILED_FILE, MODEL_CARD_FILE, MODEL_FILE
from modelwerk.runtime.data import job as data_job
from modelwerk.runtime.trainer import job

from .helpers import dataset, training_job


def _train(root: str, n_estimators: int) -> dict[str, Any]:
    data = data_job.validate(dataset(builtin="iris"), root).result
    assert data["valid"], data
    outcome = job.run(
        training_job(
            estimator={"name": "RandomForestClassifier", "params": {"n_estimators": n_estimators}}
        ),
        job.DatasetInput(
            name="ds",
            version=data["version"],
            snapshot_uri=data["snapshotUri"],
            target="target",
            profile_uri=data["profileUri"],
        ),
        root,
    )
    assert outcome.exit_code == 0, outcome.result
    return outcome.result


def _fingerprint(directory: Path) -> dict[str, tuple[int, int, bytes]]:
    """(inode, mtime in ns, bytes) of every file: a rewrite changes at least one of them."""
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(directory.iterdir())
    }


def test_republishing_the_same_model_leaves_every_file_untouched(root: str) -> None:
    first = _train(root, 10)
    directory = Path(storage.to_local(first["artifact"]["uri"])).parent
    before = _fingerprint(directory)
    assert set(before) == {MODEL_FILE, COMPILED_FILE, MODEL_CARD_FILE}
    again = _train(root, 10)
    assert again["artifact"] == first["artifact"]
    assert _fingerprint(directory) == before
    # The second run's staging copy is gone: nothing but the one published directory.
    assert [p.name for p in directory.parent.iterdir()] == [directory.name]


def test_different_bytes_get_a_different_path_and_the_first_is_kept(root: str) -> None:
    first = _train(root, 10)
    first_dir = Path(storage.to_local(first["artifact"]["uri"])).parent
    before = _fingerprint(first_dir)
    second = _train(root, 11)
    second_dir = Path(storage.to_local(second["artifact"]["uri"])).parent
    assert second["artifact"]["sha256"] != first["artifact"]["sha256"]
    assert second_dir != first_dir and second_dir.parent == first_dir.parent
    assert _fingerprint(first_dir) == before
    # Each address is the sha256 of the bytes stored at it.
    for directory in (first_dir, second_dir):
        digest = hashlib.sha256((directory / MODEL_FILE).read_bytes()).hexdigest()
        assert directory.name == digest


def _staged(parent: str, content: bytes) -> str:
    staging = publish.staging_dir(parent)
    for name in (MODEL_FILE, MODEL_CARD_FILE):
        with storage.open_uri(storage.join(staging, name), "wb") as handle:
            handle.write(content)
    return staging


@pytest.mark.parametrize("store", ["local", "object store"])
def test_a_commit_onto_a_published_directory_keeps_the_first(tmp_path: Path, store: str) -> None:
    # A concurrent writer that published first, or a staged copy that differs only in its
    # card: either way the existing directory wins and the staged copy is removed.
    # fsspec's in-memory filesystem stands in for an object store (no directories, no rename).
    parent = (
        str(tmp_path / "models" / "m") if store == "local" else f"memory://{tmp_path.name}/models/m"
    )
    final = storage.join(parent, "a" * 64)
    assert publish.commit(_staged(parent, b"first"), final, MODEL_CARD_FILE) is True
    loser = _staged(parent, b"second")
    assert publish.commit(loser, final, MODEL_CARD_FILE) is False
    for name in (MODEL_FILE, MODEL_CARD_FILE):
        with storage.open_uri(storage.join(final, name), "rb") as handle:
            assert handle.read() == b"first"
    assert not storage.exists(loser)
    fs, path = storage.fs_and_path(parent)
    assert [publish.posix_basename(p) for p in fs.ls(path, detail=False)] == ["a" * 64]


def test_a_half_written_directory_is_not_taken_for_a_published_one(tmp_path: Path) -> None:
    # A directory at the address without its marker (the card) was not made by commit(): it
    # is neither reused as if complete nor overwritten; publishing fails loudly instead.
    parent = str(tmp_path / "models" / "m")
    final = Path(parent) / ("b" * 64)
    final.mkdir(parents=True)
    (final / MODEL_FILE).write_bytes(b"partial")
    with pytest.raises(publish.PublishError, match="cannot publish"):
        publish.commit(_staged(parent, b"whole"), str(final), MODEL_CARD_FILE)
    assert (final / MODEL_FILE).read_bytes() == b"partial"
    assert sorted(os.listdir(parent)) == ["b" * 64]
