"""The server refuses an artifact written by another scikit-learn minor version, before
unpickling it, unless the mismatch is explicitly allowed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sklearn

from modelwerk.runtime.artifacts import MODEL_CARD_FILE, MODEL_FILE, ModelCard
from modelwerk.runtime.server import cli
from modelwerk.runtime.server.compatibility import (
    EXIT_INCOMPATIBLE,
    MARKER,
    IncompatibleModel,
    minor,
)
from modelwerk.runtime.server.model import LoadedModel, load_model

from .helpers import Artifact


def _written_by(iris: Artifact, tmp_path: Path, version: str) -> Path:
    """A copy of the iris artifact whose card says it was written by scikit-learn ``version``."""
    target = tmp_path / "model"
    shutil.copytree(iris.directory, target)
    card = ModelCard.model_validate_json((target / MODEL_CARD_FILE).read_text())
    artifact = card.artifact.model_copy(update={"framework_version": version})
    changed = card.model_copy(update={"artifact": artifact})
    (target / MODEL_CARD_FILE).write_text(changed.model_dump_json(by_alias=True))
    return target


def _other_minor() -> str:
    major, minor_ = minor(sklearn.__version__) or (1, 0)
    return f"{major}.{minor_ - 1 if minor_ else minor_ + 1}.0"


def test_another_minor_version_is_refused_before_unpickling(
    iris: Artifact,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    directory = _written_by(iris, tmp_path, _other_minor())
    import joblib

    loaded: list[object] = []
    monkeypatch.setattr(joblib, "load", lambda *a, **k: loaded.append(a))  # never reached
    settings = iris.settings(model_uri=str(directory / MODEL_FILE))
    with pytest.raises(
        IncompatibleModel, match=rf"scikit-learn {_other_minor()} .* {sklearn.__version__}"
    ):
        load_model(settings)
    args = ["--model-uri", str(directory / MODEL_FILE), "--sha256", iris.sha256, "--name", "iris"]
    assert cli.main(args) == EXIT_INCOMPATIBLE
    err = capsys.readouterr().err
    assert MARKER in err and "allowVersionMismatch" in err
    assert loaded == []


def test_the_mismatch_can_be_allowed(
    iris: Artifact, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = _written_by(iris, tmp_path, _other_minor())
    settings = iris.settings(model_uri=str(directory / MODEL_FILE), allow_version_mismatch=True)
    assert isinstance(load_model(settings), LoadedModel)
    assert "allowed by allowVersionMismatch" in caplog.text


def test_a_patch_release_is_compatible(iris: Artifact, tmp_path: Path) -> None:
    major, minor_ = minor(sklearn.__version__) or (1, 0)
    directory = _written_by(iris, tmp_path, f"{major}.{minor_}.99")
    assert isinstance(load_model(iris.settings(model_uri=str(directory / MODEL_FILE))), LoadedModel)


@pytest.mark.parametrize("version", ["", "dev", "1"])
def test_an_unreadable_version_is_refused(iris: Artifact, tmp_path: Path, version: str) -> None:
    directory = _written_by(iris, tmp_path, version)
    with pytest.raises(IncompatibleModel):
        load_model(iris.settings(model_uri=str(directory / MODEL_FILE)))
