"""The champion-challenger gate of a TrainingJob: resolving the champion, the verdict."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modelwerk.api.conditions import get_condition
from modelwerk.logic.champion import ChampionTarget

from .conftest import job
from .test_training_job import RESULT, decide, name_of, observed, training

CHAMPION = {"deployment": "iris", "margin": 0.01}
TARGET = ChampionTarget(
    "iris-classifier-v1", "pvc://modelwerk-artifacts/models/m/aa/model.joblib", "aa" * 32
)


def result(champion: float, challenger: float = 0.97, **extra: Any) -> dict[str, Any]:
    return RESULT | {
        "champion": {
            "version": "iris-classifier-v1",
            "sha256": "aa" * 32,
            "metric": "accuracy",
            "champion": champion,
            "challenger": challenger,
            "margin": 0.01,
            "holdoutRows": 30,
            "passed": True,  # the pod's word is not taken: the operator decides again
            **extra,
        }
    }


def test_the_run_starts_with_the_resolved_champion_and_pins_it() -> None:
    tj = training(champion=CHAMPION)
    plan = decide(tj, replace(observed(), champion=TARGET))
    (body,) = plan.create
    env = {
        e["name"]: e.get("value") for e in body["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MODELWERK_CHAMPION_VERSION"] == "iris-classifier-v1"
    assert env["MODELWERK_CHAMPION_SHA256"] == "aa" * 32
    assert plan.status.champion_version == "iris-classifier-v1"


def test_a_champion_that_cannot_be_resolved_keeps_the_run_pending() -> None:
    tj = training(champion={"modelVersion": "iris-classifier-v9"})
    plan = decide(
        tj, replace(observed(), champion="ModelVersion iris-classifier-v9 (the champion) not found")
    )
    assert plan.create == () and plan.status.phase == "Pending"
    assert get_condition(plan.status.conditions, "Ready").reason == "ChampionNotFound"  # type: ignore[union-attr]


def test_a_challenger_that_does_not_beat_the_champion_by_the_margin_is_rejected_with_both_figures() -> (
    None
):
    tj = training(champion=CHAMPION)
    plan = decide(tj, observed(job(name_of(tj), "Succeeded", result(champion=0.965))))
    assert plan.create == () and plan.status.phase == "Rejected"
    message = plan.status.message or ""
    assert "challenger accuracy 0.97 does not beat champion iris-classifier-v1 0.965" in message
    assert "by more than 0.01" in message
    assert plan.status.champion.champion == 0.965 and plan.status.champion.challenger == 0.97  # type: ignore[union-attr]
    assert plan.status.champion.passed is False  # type: ignore[union-attr]
    assert get_condition(plan.status.conditions, "ChampionBeaten").status == "False"  # type: ignore[union-attr]
    assert get_condition(plan.status.conditions, "Ready").reason == "ChampionNotBeaten"  # type: ignore[union-attr]


def test_a_challenger_that_beats_the_champion_registers_both_figures_in_the_model_version() -> None:
    tj = training(champion=CHAMPION)
    plan = decide(tj, observed(job(name_of(tj), "Succeeded", result(champion=0.90))))
    (mv,) = plan.create
    assert (
        mv["spec"]["champion"]["champion"] == 0.90 and mv["spec"]["champion"]["challenger"] == 0.97
    )
    assert plan.status.champion.passed is True  # type: ignore[union-attr]


def test_a_result_without_the_champion_figure_is_rejected() -> None:
    tj = training(champion=CHAMPION)
    plan = decide(tj, observed(job(name_of(tj), "Succeeded", RESULT)))
    assert plan.status.phase == "Rejected" and "not scored" in (plan.status.message or "")


def test_no_champion_to_beat_passes() -> None:
    tj = training(champion=CHAMPION)
    none = {"metric": "accuracy", "challenger": 0.97, "passed": True, "message": "no champion"}
    plan = decide(tj, observed(job(name_of(tj), "Succeeded", RESULT | {"champion": none})))
    assert plan.create[0]["kind"] == "ModelVersion"
