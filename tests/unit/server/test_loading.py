"""The artifact is verified before it is unpickled; anything wrong stops the server starting."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelwerk.runtime.artifacts import MODEL_CARD_FILE, MODEL_FILE
from modelwerk.runtime.server import cli
from modelwerk.runtime.server.model import LoadedModel, ModelLoadError, load_model
from modelwerk.runtime.server.settings import ServerSettings

from .helpers import Artifact


@pytest.fixture
def copy(iris: Artifact, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(iris.directory, target)
    return target


def _args(iris: Artifact, directory: Path, **extra: str) -> list[str]:
    args = ["--model-uri", str(directory / MODEL_FILE), "--sha256", iris.sha256, "--name", "iris"]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    return args


def test_load_verifies_and_warms_up(iris: Artifact) -> None:
    model = load_model(iris.settings())
    assert isinstance(model, LoadedModel)
    assert model.columns == list(iris.frame.columns) and model.classes == [0, 1, 2]
    assert model.profile is not None and model.version == "v1"
    assert load_model(iris.settings(version=None)).version == iris.sha256[:12]


def test_tampered_artifact_is_refused(
    iris: Artifact, copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytearray((copy / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / MODEL_FILE).write_bytes(bytes(data))
    import joblib

    loaded = []
    monkeypatch.setattr(joblib, "load", lambda *a, **k: loaded.append(a))  # must never be reached
    with pytest.raises(
        ModelLoadError, match=r"refusing to load .* its sha256 is [0-9a-f]{64}, expected"
    ):
        load_model(iris.settings(model_uri=str(copy / MODEL_FILE)))
    assert cli.main(_args(iris, copy)) == 1
    assert "refusing to load" in capsys.readouterr().err
    assert loaded == []


def test_missing_artifact_is_refused(
    iris: Artifact, copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / MODEL_FILE).unlink()
    assert cli.main(_args(iris, copy)) == 1
    assert "model artifact not found" in capsys.readouterr().err


def test_sha_is_required(iris: Artifact, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ModelLoadError, match="no expected sha256"):
        load_model(iris.settings(sha256=None))
    assert cli.main(["--model-uri", iris.model_uri, "--name", "iris"]) == 1
    assert "no expected sha256" in capsys.readouterr().err


def test_card_of_another_artifact_is_refused(
    iris: Artifact, diabetes: Artifact, copy: Path
) -> None:
    shutil.copy(diabetes.directory / MODEL_CARD_FILE, copy / MODEL_CARD_FILE)
    with pytest.raises(ModelLoadError, match="describes artifact"):
        load_model(iris.settings(model_uri=str(copy / MODEL_FILE)))


def test_missing_card_and_profile(iris: Artifact, copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="profile not found"):
        load_model(
            iris.settings(model_uri=str(copy / MODEL_FILE), profile_uri=str(tmp_path / "nope"))
        )
    (copy / MODEL_CARD_FILE).unlink()
    with pytest.raises(ModelLoadError, match="model card not found"):
        load_model(iris.settings(model_uri=str(copy / MODEL_FILE)))


def test_invalid_settings_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--model-uri", "x", "--name", "iris", "--sha256", "abc"]) == 2
    assert "sha256" in capsys.readouterr().err


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELWERK_SERVER_MODEL_URI", "pvc://models/iris/abc/model.joblib")
    monkeypatch.setenv("MODELWERK_SERVER_MODEL_NAME", "iris")
    monkeypatch.setenv("MODELWERK_SERVER_MAX_BATCH_SIZE", "8")
    settings = ServerSettings()  # type: ignore[call-arg]
    assert settings.max_batch_size == 8 and settings.port == 8080
    assert settings.resolved_card_uri == "pvc://models/iris/abc/model-card.json"
    env = settings.to_env()
    assert (
        env["MODELWERK_SERVER_MAX_BATCH_SIZE"] == "8"
        and env["MODELWERK_SERVER_DRIFT_ENABLED"] == "true"
    )
    assert (
        ServerSettings(**{k.removeprefix("MODELWERK_SERVER_").lower(): v for k, v in env.items()})
        == settings
    )


def test_drift_threshold_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(
        ["--drift-threshold", "0.25", "--drift-false-alarm", "0.001", "--drift-min-rows", "80"]
    )
    assert (args.drift_threshold, args.drift_false_alarm, args.drift_min_rows) == (0.25, 0.001, 80)
    assert parser.parse_args([]).drift_threshold is None
    base = {"model_uri": "m.joblib", "model_name": "iris"}
    settings = ServerSettings(**base, drift_threshold=0.25, drift_false_alarm=0.001)  # type: ignore[arg-type]
    env = settings.to_env()
    assert env["MODELWERK_SERVER_DRIFT_THRESHOLD"] == "0.25"
    assert env["MODELWERK_SERVER_DRIFT_FALSE_ALARM"] == "0.001"
    plain = ServerSettings(**base)  # type: ignore[arg-type]
    assert (plain.drift_threshold, plain.drift_false_alarm) == (None, 0.01)
    assert "MODELWERK_SERVER_DRIFT_THRESHOLD" not in plain.to_env()
    monkeypatch.setenv("MODELWERK_SERVER_DRIFT_THRESHOLD", "0.1")
    assert ServerSettings(**base).drift_threshold == 0.1  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "flags",
    [["--drift-threshold", "0"], ["--drift-false-alarm", "0.5"], ["--drift-threshold", "x"]],
)
def test_invalid_drift_flags_are_refused(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--model-uri", "m", "--name", "iris", *flags]
    if flags[-1] == "x":
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
    else:
        assert cli.main(argv) == 2
    assert "drift" in capsys.readouterr().err
