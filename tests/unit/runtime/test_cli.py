"""`modelwerk data validate` and `modelwerk train` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelwerk.cli import main
from modelwerk.runtime.artifacts import TERMINATION_MESSAGE_LIMIT

DATASET: dict[str, Any] = {
    "apiVersion": "modelwerk.dev/v1alpha1",
    "kind": "Dataset",
    "metadata": {"name": "iris", "namespace": "team"},
    "spec": {"source": {"builtin": "iris"}, "target": "target"},
}
TRAINING_JOB: dict[str, Any] = {
    "apiVersion": "modelwerk.dev/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "iris-rf", "namespace": "team"},
    "spec": {
        "datasetRef": {"name": "iris"},
        "model": {"name": "iris-classifier"},
        "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 10}},
        "gates": [{"metric": "accuracy", "threshold": 0.8}],
    },
}


def termination(log: Path) -> dict[str, Any]:
    text = log.read_text()
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def dump(path: Path, *objects: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump_all(objects))
    return str(path)


def with_gate(threshold: float) -> dict[str, Any]:
    spec = {**TRAINING_JOB["spec"], "gates": [{"metric": "accuracy", "threshold": threshold}]}
    return {**TRAINING_JOB, "spec": spec}


# --- data validate -------------------------------------------------------------------------


def test_validate_in_the_pod(
    monkeypatch: pytest.MonkeyPatch,
    isolated_env: Path,
    root: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MODELWERK_DATASET", json.dumps(DATASET))
    monkeypatch.setenv("MODELWERK_ARTIFACT_ROOT", root)
    assert main(["data", "validate"]) == 0
    result = termination(isolated_env)
    assert result["valid"] is True and result["rows"] == 150
    assert json.loads(capsys.readouterr().out) == result


def test_validate_reports_invalid_data_with_exit_zero(
    monkeypatch: pytest.MonkeyPatch, isolated_env: Path, root: str
) -> None:
    columns = [{"name": f"missing_{i:03d}", "type": "float"} for i in range(300)]
    body = {**DATASET, "spec": {**DATASET["spec"], "schema": {"columns": columns}}}
    monkeypatch.setenv("MODELWERK_DATASET", json.dumps(body))
    monkeypatch.setenv("MODELWERK_ARTIFACT_ROOT", root)
    assert main(["data", "validate"]) == 0
    result = termination(isolated_env)  # 300 violations still fit in 4 KiB
    assert result["valid"] is False
    assert result["violationCount"] == 300
    assert result["violationsTruncated"] is True
    assert 0 < len(result["violations"]) < 300
    assert result["version"].startswith("sha256:")


def test_validate_unreadable_source_exits_2(
    monkeypatch: pytest.MonkeyPatch, isolated_env: Path, root: str, tmp_path: Path
) -> None:
    body = {**DATASET, "spec": {"source": {"uri": f"file://{tmp_path}/none.csv"}}}
    monkeypatch.setenv("MODELWERK_DATASET", json.dumps(body))
    monkeypatch.setenv("MODELWERK_ARTIFACT_ROOT", root)
    assert main(["data", "validate"]) == 2
    result = termination(isolated_env)
    assert (result["valid"], result["reason"]) == (False, "Unreadable")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({}, "MODELWERK_DATASET is not set"),
        ({"MODELWERK_DATASET": "{not json"}, "not valid JSON"),
        ({"MODELWERK_DATASET": json.dumps({**DATASET, "spec": {"source": {}}})}, "not a valid"),
        ({"MODELWERK_DATASET": json.dumps(DATASET)}, "MODELWERK_ARTIFACT_ROOT is not set"),
    ],
)
def test_validate_bad_input_exits_3(
    monkeypatch: pytest.MonkeyPatch, isolated_env: Path, env: dict[str, str], fragment: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["data", "validate"]) == 3
    result = termination(isolated_env)
    assert result["reason"] == "InvalidInput" and fragment in result["error"]


def test_validate_from_a_file_defaults_the_root_locally(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["data", "validate", "-f", dump(tmp_path / "ds.yaml", DATASET)]) == 0
    assert (tmp_path / ".modelwerk-artifacts" / "datasets" / "iris").is_dir()


def test_bad_arguments_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "frobnicate"]) == 3
    assert main(["train", "--bogus"]) == 3
    assert main(["data", "--help"]) == 0
    assert main(["train", "--help"]) == 0
    assert "--local" in capsys.readouterr().out


# --- train ---------------------------------------------------------------------------------


def test_local_mode_prints_metrics_and_gates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tj = dump(tmp_path / "tj.yaml", TRAINING_JOB)
    ds = dump(tmp_path / "ds.yaml", DATASET)
    root = tmp_path / "store"
    assert main(["train", "-f", tj, "--dataset", ds, "--local", "--artifact-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "PASS" in out and "REJECTED" not in out
    assert "iris-classifier" in out
    (model_dir,) = (root / "models" / "iris-classifier").iterdir()
    assert {p.name for p in model_dir.iterdir()} == {
        "model.joblib",
        "model.onnx",
        "model-card.json",
    }


def test_local_mode_fails_on_a_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    both = dump(tmp_path / "both.yaml", with_gate(1.01), DATASET)  # one file, both objects
    assert main(["train", "-f", both, "--local"]) == 4
    out = capsys.readouterr().out
    assert "FAIL" in out and "REJECTED: 1 gate(s) failed: accuracy >= 1.01" in out
    assert (tmp_path / ".modelwerk-artifacts" / "models" / "iris-classifier").is_dir()


def test_local_mode_stops_on_invalid_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = {"columns": [{"name": "petal width (cm)", "type": "float", "max": 1}]}
    ds = dump(tmp_path / "ds.yaml", {**DATASET, "spec": {**DATASET["spec"], "schema": schema}})
    tj = dump(tmp_path / "tj.yaml", TRAINING_JOB)
    code = main(["train", "-f", tj, "--dataset", ds, "--local", "--artifact-root", str(tmp_path)])
    assert code == 2
    assert "max" in capsys.readouterr().out
    assert not (tmp_path / "models").exists()


def test_local_mode_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--local"]) == 3


def test_train_in_the_pod(monkeypatch: pytest.MonkeyPatch, isolated_env: Path, root: str) -> None:
    monkeypatch.setenv("MODELWERK_DATASET", json.dumps(DATASET))
    monkeypatch.setenv("MODELWERK_ARTIFACT_ROOT", root)
    assert main(["data", "validate"]) == 0
    validated = termination(isolated_env)
    monkeypatch.setenv("MODELWERK_TRAININGJOB", json.dumps(with_gate(1.01)))
    monkeypatch.setenv("MODELWERK_DATASET_NAME", "iris")
    monkeypatch.setenv("MODELWERK_DATASET_VERSION", validated["version"])
    monkeypatch.setenv("MODELWERK_DATASET_SNAPSHOT_URI", validated["snapshotUri"])
    monkeypatch.setenv("MODELWERK_DATASET_PROFILE_URI", validated["profileUri"])
    monkeypatch.setenv("MODELWERK_DATASET_TARGET", "target")
    assert main(["train"]) == 0  # a failed gate is the operator's call in the pod
    result = termination(isolated_env)
    assert result["ok"] is True and result["gatesPassed"] is False
    assert result["artifact"]["uri"].startswith("file://")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({}, "MODELWERK_TRAININGJOB is not set"),
        ({"MODELWERK_TRAININGJOB": json.dumps(TRAINING_JOB)}, "not set: MODELWERK_DATASET_NAME"),
        (
            {
                "MODELWERK_TRAININGJOB": json.dumps(
                    {
                        **TRAINING_JOB,
                        "spec": {**TRAINING_JOB["spec"], "estimator": {"name": "os.system"}},
                    }
                )
            },
            "estimator.name",
        ),
    ],
)
def test_train_bad_input_exits_3(
    monkeypatch: pytest.MonkeyPatch, isolated_env: Path, env: dict[str, str], fragment: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["train"]) == 3
    result = termination(isolated_env)
    assert (result["ok"], result["reason"]) == (False, "InvalidInput")
    assert fragment in result["error"]
