"""Bring your own trainer in-process: the restricted loader, prepare's split, the upload, and
the evaluation that grades a model it did not train."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from modelwerk.runtime.byo import evaluate, safe_load, steps
from modelwerk.runtime.trainer import job, train

from .helpers import training_job
from .test_trainer import iris_csv, validated

__all__ = ["iris_csv"]

TRAINER = {"image": "example/trainer:1", "task": "classification"}


def dumped(obj: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


class _RunsCode:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("true",))


@pytest.mark.parametrize(
    ("obj", "named"),
    [
        (_RunsCode(), "posix.system"),
        (np.log1p, "numpy.log1p"),
        (pd.read_pickle, "pandas.read_pickle"),
        (eval, "builtins.eval"),
    ],
    ids=["os.system", "ufunc", "pandas-function", "eval"],
)
def test_the_loader_refuses_anything_but_model_classes(obj: Any, named: str) -> None:
    with pytest.raises(safe_load.UnsafeModel, match=named.replace(".", r"\.")):
        safe_load.loads(dumped(obj))


def test_the_loader_reads_allowlisted_models_of_every_kind() -> None:
    from lightgbm import LGBMClassifier
    from sklearn.datasets import load_iris
    from sklearn.ensemble import StackingClassifier
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import SplineTransformer
    from xgboost import XGBClassifier

    x, y = load_iris(return_X_y=True, as_frame=True)
    models = [
        make_pipeline(
            SelectKBest(f_classif, k=3), SplineTransformer(), LogisticRegression(max_iter=5000)
        ),
        StackingClassifier([("lr", LogisticRegression(max_iter=5000))], cv=3),
        XGBClassifier(n_estimators=3, n_jobs=1),
        LGBMClassifier(n_estimators=3, n_jobs=1, verbose=-1),
    ]
    for model in models:
        model.fit(x, y)
        loaded = safe_load.loads(dumped(model))
        assert (loaded.predict(x) == model.predict(x)).all(), type(model).__name__


def test_the_loader_checks_the_hash_first(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(dumped(_RunsCode()))
    with pytest.raises(safe_load.UnsafeModel, match="has sha256"):
        safe_load.load_verified(str(path), "0" * 64)


def test_prepare_hands_out_exactly_the_training_part(
    root: str, iris_csv: str, tmp_path: Path
) -> None:
    data = validated(root, uri=iris_csv, format="csv")
    tj = training_job(trainer=TRAINER, split={"testSize": 0.2, "seed": 3})
    result = steps.prepare(tj, data, tmp_path / "input")
    handed = pd.read_parquet(tmp_path / "input" / steps.TRAIN_FILE)
    assert result == {"ok": True, "rows": 120, "columns": 4}
    frame = job.load(data)
    columns = [c for c in frame.columns if c != "target"]
    x_train, x_test, _, _ = train.split(frame[columns], frame["target"], "classification", tj.spec)
    assert len(handed) == len(x_train) == 120 and len(x_test) == 30
    pd.testing.assert_frame_equal(handed[columns], x_train.reset_index(drop=True))


def test_upload_hashes_what_it_copies_and_says_when_nothing_came(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("no model here")
    missing = steps.upload(out, str(tmp_path / "run"))
    assert (
        missing["ok"] is False
        and missing["reason"] == "NoModel"
        and "notes.txt" in missing["error"]
    )
    (out / "model.joblib").write_bytes(b"bytes of a model")
    done = steps.upload(out, str(tmp_path / "run"))
    assert done["sha256"] == hashlib.sha256(b"bytes of a model").hexdigest()
    assert Path(done["uri"]).read_bytes() == b"bytes of a model"


def test_evaluation_grades_a_delivered_model_on_the_holdout(
    root: str, iris_csv: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    data = validated(root, uri=iris_csv, format="csv")
    tj = training_job(trainer=TRAINER, gates=[{"metric": "accuracy", "threshold": 0.8}])
    steps.prepare(tj, data, tmp_path / "input")
    handed = pd.read_parquet(tmp_path / "input" / steps.TRAIN_FILE)
    model = RandomForestClassifier(n_estimators=20, random_state=0)
    model.fit(handed.drop(columns="target"), handed["target"])
    (tmp_path / "output").mkdir()
    joblib.dump(model, tmp_path / "output" / "model.joblib")
    uploaded = steps.upload(tmp_path / "output", str(tmp_path / "run"))
    monkeypatch.setenv(evaluate.MODEL_URI_ENV, uploaded["uri"])
    monkeypatch.setenv(evaluate.SHA256_ENV, uploaded["sha256"])
    outcome = evaluate.run(tj, data, root)
    assert outcome.ok, outcome.result
    result = outcome.result
    assert result["metrics"]["accuracy"] >= 0.8 and result["gatesPassed"] is True
    assert result["trainer"] == {"modelSha256": uploaded["sha256"], "format": "joblib"}
    # modelwerk's own copy, content-addressed
    published = joblib.load(result["artifact"]["uri"].removeprefix("file://"))
    x = handed.drop(columns="target")
    assert (published.predict(x) == model.predict(x)).all()


def test_evaluation_rejects_a_model_that_cannot_predict_the_holdout(
    root: str, iris_csv: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    data = validated(root, uri=iris_csv, format="csv")
    tj = training_job(trainer=TRAINER)
    wrong = LogisticRegression().fit(pd.DataFrame({"other": [0.0, 1.0, 2.0]}), [0, 1, 2])
    (tmp_path / "output").mkdir()
    joblib.dump(wrong, tmp_path / "output" / "model.joblib")
    uploaded = steps.upload(tmp_path / "output", str(tmp_path / "run"))
    monkeypatch.setenv(evaluate.MODEL_URI_ENV, uploaded["uri"])
    monkeypatch.setenv(evaluate.SHA256_ENV, uploaded["sha256"])
    outcome = evaluate.run(tj, data, root)
    assert not outcome.ok and outcome.result["reason"] == "ModelRejected"
    assert "cannot predict the holdout" in outcome.result["error"]


def test_a_delivered_model_is_compared_with_the_champion_on_the_same_holdout(
    root: str, iris_csv: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.tree import DecisionTreeClassifier

    from modelwerk.runtime.trainer import champion

    data = validated(root, uri=iris_csv, format="csv")
    stump = job.run(
        training_job(estimator={"name": "DecisionTreeClassifier", "params": {"max_depth": 1}}),
        data,
        root,
    )
    assert stump.ok, stump.result
    tj = training_job(trainer=TRAINER, champion={"modelVersion": "m-v1"})
    steps.prepare(tj, data, tmp_path / "input")
    handed = pd.read_parquet(tmp_path / "input" / steps.TRAIN_FILE)
    model = DecisionTreeClassifier(max_depth=4, random_state=0)
    model.fit(handed.drop(columns="target"), handed["target"])
    (tmp_path / "output").mkdir()
    joblib.dump(model, tmp_path / "output" / "model.joblib")
    uploaded = steps.upload(tmp_path / "output", str(tmp_path / "run"))
    monkeypatch.setenv(evaluate.MODEL_URI_ENV, uploaded["uri"])
    monkeypatch.setenv(evaluate.SHA256_ENV, uploaded["sha256"])
    monkeypatch.setenv(champion.VERSION_ENV, "m-v1")
    monkeypatch.setenv(champion.URI_ENV, stump.result["artifact"]["uri"])
    monkeypatch.setenv(champion.SHA256_ENV, stump.result["artifact"]["sha256"])
    outcome = evaluate.run(tj, data, root)
    assert outcome.ok, outcome.result
    verdict = outcome.result["champion"]
    assert verdict["version"] == "m-v1" and verdict["passed"] is True
    assert verdict["challenger"] == outcome.result["metrics"]["accuracy"]
    assert verdict["champion"] < verdict["challenger"]  # one split cannot tell three species
    assert verdict["holdoutRows"] == len(data_rows(data)) - len(handed)


def data_rows(data: job.DatasetInput) -> pd.DataFrame:
    from modelwerk.runtime.data import snapshot

    return snapshot.read(data.snapshot_uri)
