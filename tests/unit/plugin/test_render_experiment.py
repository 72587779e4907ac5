"""``kubectl modelwerk status`` of a Deployment with an experiment, as the decision writes it."""

from __future__ import annotations

from datetime import timedelta

from modelwerk.plugin.render_status import render_status
from tests.unit.logic.test_experiment import figures, running, sim


def experiment_section(text: str) -> list[str]:
    block = next(b for b in text.split("\n\n") if b.startswith("Experiment:"))
    return block.splitlines()


def test_a_running_experiment_is_a_table_of_arms_and_metrics() -> None:
    s = sim(guardrails=[{"metric": "latency", "maxIncrease": 0.005}])
    running(s)
    s.now += timedelta(seconds=30)
    s.step(figures=figures(correct=(800, 815)))
    body = s.dep.model_dump(by_alias=True, exclude_none=True, mode="json")
    lines = [" ".join(line.split()) for line in experiment_section(render_status(body, s.now))]
    text = "\n".join(lines)
    assert "Decision: Running" in text
    arms = [line.split() for line in lines if line.strip().startswith(("A ", "B "))]
    assert arms == [
        ["A", "iris-classifier-v1", "1,000", "1,000", "0.8"],
        ["B", "iris-classifier-v2", "1,000", "1,000", "0.815"],
    ]
    accuracy = next(line for line in lines if line.strip().startswith("accuracy"))
    assert accuracy.split()[1] == "0.015"
    assert any(line.strip().startswith("latency") for line in lines)
    assert "Sample ratio: p = 1.0000 (broken below 0.001)" in text
    assert "Planned:" in text


def test_a_decided_experiment_says_why() -> None:
    s = sim()
    running(s)
    s.now += timedelta(seconds=30)
    s.step(figures=figures(correct=(880, 800)))
    body = s.dep.model_dump(by_alias=True, exclude_none=True, mode="json")
    text = " ".join(render_status(body, s.now).split())
    assert "Decision: Aborted" in text
    assert "BLoses: accuracy: B is worse, B - A = -0.08" in text


def test_no_experiment_no_section() -> None:
    s = sim()
    body = s.dep.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert "Experiment:" not in render_status(body, s.now)


def test_a_shadow_step_and_its_comparison() -> None:
    from tests.unit.logic.test_shadow import canary, mirroring, readings

    s = canary()
    mirroring(s)
    s.now += timedelta(seconds=10)
    s.step(shadow_figures=readings(1000, 600))
    body = s.dep.model_dump(by_alias=True, exclude_none=True, mode="json")
    text = " ".join(render_status(body, s.now).split())
    assert "shadow 100% of requests: agreement ≥ 0.95, latency p99 ≤ 0.25, errorRate ≤ 0.05" in text
    assert "Candidate: iris-classifier-v2 (canary step 1), compared with iris-classifier-v1" in text
    assert "Phase: Failed" in text and "Agreement: 0.6 of 1,000 rows" in text
    assert "agreement 0.6 Failed 600 of 1000 rows agree" in text
