"""The operator's experiment and shadow gauges, from statuses the decision really writes."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelwerk.experiment_metrics import (
    EXPERIMENT_DECISIONS,
    forget_experiment,
    record_experiment,
    record_shadow,
)
from modelwerk.metrics import REGISTRY
from tests.unit.logic.test_experiment import figures, running, sim
from tests.unit.logic.test_shadow import canary, mirroring, readings


def samples(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = generate_latest(REGISTRY).decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and s.labels.get("deployment") == "iris-m"
    }


def test_an_experiment_is_exported_and_its_decision_counted_once() -> None:
    s = sim()
    running(s)
    before = s.status.experiment
    s.now += timedelta(seconds=30)
    s.step(figures=figures(correct=(800, 880)))
    decided = EXPERIMENT_DECISIONS.labels("ns", "BWins")._value.get()
    record_experiment("ns", "iris-m", before, s.status.experiment)
    record_experiment("ns", "iris-m", s.status.experiment, s.status.experiment)
    assert EXPERIMENT_DECISIONS.labels("ns", "BWins")._value.get() == decided + 1
    units = samples("modelwerk_experiment_units")
    assert sorted(units.values()) == [1000.0, 1000.0]
    difference = samples("modelwerk_experiment_difference")
    assert list(difference.values()) == [s.status.experiment.primary.difference]
    decision = {dict(k)["decision"]: v for k, v in samples("modelwerk_experiment_decision").items()}
    assert decision["BWins"] == 1 and decision["Running"] == 0
    forget_experiment("ns", "iris-m")
    assert samples("modelwerk_experiment_units") == {}


def test_a_shadow_is_exported_while_it_runs() -> None:
    s = canary()
    mirroring(s)
    s.now += timedelta(seconds=10)
    s.step(shadow_figures=readings(50, 45))
    record_shadow("ns", "iris-m", s.status.shadow)
    assert list(samples("modelwerk_deployment_shadow_agreement").values()) == [0.9]
    record_shadow("ns", "iris-m", s.status.shadow.model_copy(update={"phase": "Stopped"}))
    assert samples("modelwerk_deployment_shadow_agreement") == {}
