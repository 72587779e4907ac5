"""The verification pod's MLflow tag is a side job: whatever happens to it, the verdict on the
artifact and the exit code stay what the artifact alone decides."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest

from modelwerk.runtime import verify, version_tags


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def artifact(tmp_path: Path) -> tuple[str, str]:
    path = tmp_path / "model.joblib"
    path.write_bytes(b"model bytes")
    return path.as_uri(), hashlib.sha256(b"model bytes").hexdigest()


def _run(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, dict[str, object]]:
    monkeypatch.setattr(version_tags, "PAUSE_SECONDS", 0.0)
    monkeypatch.delenv("MODELWERK_TERMINATION_MESSAGE_PATH", raising=False)
    code = verify.main(argv)
    result: dict[str, object] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return code, result


def _tag_args(port: int) -> list[str]:
    return [
        "--mlflow-tracking-uri", f"http://127.0.0.1:{port}",
        "--mlflow-run-id", "r" * 32,
        "--model-version", "churn-v3",
        "--model-version-number", "3",
    ]  # fmt: skip


def test_an_unreachable_tracker_is_reported_and_the_artifact_still_verified(
    artifact: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-must-not-leak")
    uri, sha = artifact
    code, result = _run(
        ["--uri", uri, "--sha256", sha, *_tag_args(_closed_port())], capsys, monkeypatch
    )
    assert code == verify.EXIT_OK and result["ok"] is True and result["sha256"] == sha
    tracking = result["tracking"]
    assert isinstance(tracking, dict)
    assert tracking["tagged"] is False and tracking["reason"] == "TrackingUnavailable"
    assert "cannot reach http://127.0.0.1:" in str(tracking["error"])
    assert "tok-must-not-leak" not in json.dumps(result)


def test_a_refused_artifact_keeps_its_verdict_with_the_tag_report(
    artifact: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri, _ = artifact
    code, result = _run(
        ["--uri", uri, "--sha256", "0" * 64, *_tag_args(_closed_port())], capsys, monkeypatch
    )
    assert code == verify.EXIT_REFUSED and result["reason"] == "HashMismatch"
    assert result["tracking"]["tagged"] is False  # type: ignore[index]


def test_tag_arguments_come_all_together(
    artifact: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    uri, sha = artifact
    with pytest.raises(SystemExit):
        verify.main(["--uri", uri, "--sha256", sha, "--mlflow-run-id", "r1"])
    assert "go together" in capsys.readouterr().err
