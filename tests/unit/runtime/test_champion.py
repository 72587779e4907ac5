"""The champion scored in the training pod, on real data (wine), against real artifacts."""

from __future__ import annotations

from typing import Any

import joblib
import pytest
from sklearn.model_selection import train_test_split

from modelwerk.runtime import storage
from modelwerk.runtime.artifacts import ModelCard
from modelwerk.runtime.data import job as data_job
from modelwerk.runtime.data import snapshot
from modelwerk.runtime.trainer import job
from modelwerk.runtime.trainer.champion import SHA256_ENV, URI_ENV, VERSION_ENV

from .helpers import dataset, training_job

STUMP = {"name": "DecisionTreeClassifier", "params": {"max_depth": 1}}
FOREST = {"name": "RandomForestClassifier", "params": {"n_estimators": 50}}


@pytest.fixture
def wine(root: str) -> job.DatasetInput:
    result = data_job.validate(dataset(builtin="wine"), root).result
    assert result["valid"], result
    return job.DatasetInput(
        name="ds", version=result["version"], snapshot_uri=result["snapshotUri"], target="target"
    )


def train(root: str, data: job.DatasetInput, estimator: dict[str, Any], **spec: Any) -> job.Outcome:
    outcome = job.run(training_job(estimator=estimator, **spec), data, root)
    assert outcome.ok, outcome.result
    return outcome


def champion_env(
    monkeypatch: pytest.MonkeyPatch, outcome: job.Outcome, sha: str | None = None
) -> None:
    artifact = outcome.result["artifact"]
    monkeypatch.setenv(VERSION_ENV, "m-v1")
    monkeypatch.setenv(URI_ENV, artifact["uri"])
    monkeypatch.setenv(SHA256_ENV, sha or artifact["sha256"])


GATE = {"champion": {"deployment": "wine"}}


def test_a_better_challenger_beats_the_champion_on_the_same_holdout_rows(
    root: str, wine: job.DatasetInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    stump = train(root, wine, STUMP)
    champion_env(monkeypatch, stump)
    forest = train(root, wine, FOREST, **GATE)
    verdict = forest.result["champion"]
    assert verdict["passed"] is True and verdict["version"] == "m-v1"
    assert verdict["challenger"] == forest.result["metrics"]["accuracy"]
    assert verdict["champion"] < verdict["challenger"]
    # the champion's figure is its accuracy on exactly the challenger's holdout rows
    frame = snapshot.read(wine.snapshot_uri)
    x, y = frame.drop(columns=["target"]), frame["target"]
    _, x_test, _, y_test = train_test_split(x, y, test_size=0.2, random_state=42, stratify=y)
    with storage.open_uri(stump.result["artifact"]["uri"], "rb") as handle:
        model = joblib.load(handle)
    assert verdict["holdoutRows"] == len(x_test)
    assert verdict["champion"] == pytest.approx(float((model.predict(x_test) == y_test).mean()))
    with storage.open_uri(forest.result["modelCardUri"], "r") as handle:
        card = ModelCard.model_validate_json(handle.read())
    assert card.champion is not None and card.champion["champion"] == verdict["champion"]
    assert "compiled" in forest.result


def test_a_worse_challenger_and_an_identical_one_do_not_beat_the_champion(
    root: str, wine: job.DatasetInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    forest = train(root, wine, FOREST)
    champion_env(monkeypatch, forest)
    stump = train(root, wine, STUMP, **GATE)
    verdict = stump.result["champion"]
    assert verdict["passed"] is False and verdict["champion"] > verdict["challenger"]
    assert "does not beat it" in verdict["message"]
    assert "compiled" not in stump.result, "a rejected model is not compiled"
    twin = train(root, wine, FOREST, **GATE)
    assert twin.result["artifact"]["sha256"] == forest.result["artifact"]["sha256"]
    assert twin.result["champion"]["passed"] is False, "a tie does not beat the champion"


def test_a_margin_the_challenger_does_not_reach_fails_it(
    root: str, wine: job.DatasetInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    champion_env(monkeypatch, train(root, wine, STUMP))
    forest = train(root, wine, FOREST, champion={"deployment": "wine", "margin": 0.9})
    assert forest.result["champion"]["passed"] is False


def test_a_champion_whose_bytes_do_not_match_is_not_loaded(
    root: str, wine: job.DatasetInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    champion_env(monkeypatch, train(root, wine, STUMP), sha="0" * 64)
    outcome = job.run(training_job(estimator=FOREST, **GATE), wine, root)
    assert not outcome.ok and outcome.result["reason"] == "ChampionUnloadable"
    assert "sha256" in outcome.result["error"]


def test_without_a_champion_the_gate_passes_and_says_so(root: str, wine: job.DatasetInput) -> None:
    outcome = train(root, wine, FOREST, **GATE)
    verdict = outcome.result["champion"]
    assert verdict["passed"] is True and "version" not in verdict
    assert verdict["message"].startswith("no champion")
