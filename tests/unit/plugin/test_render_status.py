"""``kubectl modelwerk status`` over representative objects (tests/unit/plugin/objects.py)."""

from __future__ import annotations

import pytest

from modelwerk.plugin.render_status import CURRENT, DONE, FAILED, render_status
from tests.unit.plugin.objects import (
    CANARY_STEPS,
    NOW,
    aborted,
    blue_green_waiting,
    canary_at,
    fresh,
)


def section(text: str, title: str) -> list[str]:
    """The lines of one blank-line separated section, found by its first line."""
    for block in text.split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0] == title:
            return lines[1:]
    raise AssertionError(f"no section {title!r} in:\n{text}")


def field(text: str, label: str) -> str:
    for line in text.splitlines():
        if line.startswith(f"{label}:"):
            return line.removeprefix(f"{label}:").strip()
    raise AssertionError(f"no field {label!r} in:\n{text}")


def has_field(text: str, label: str) -> bool:
    return any(line.startswith(f"{label}:") for line in text.splitlines())


@pytest.mark.parametrize("step", range(len(CANARY_STEPS)))
def test_a_canary_marks_the_steps_before_the_current_one_done_and_the_current_one(
    step: int,
) -> None:
    steps = section(render_status(canary_at(step), NOW), "Steps:")
    assert len(steps) == len(CANARY_STEPS)
    markers = [line[2] for line in steps]
    assert markers == [DONE] * step + [CURRENT] + [" "] * (len(CANARY_STEPS) - step - 1)
    assert steps[step].split()[1] == str(step + 1)  # steps are numbered from 1 for people


def test_each_step_says_what_it_does() -> None:
    steps = section(render_status(canary_at(0), NOW), "Steps:")
    assert steps[0].endswith("setWeight 20% (now 0%)")  # the current weight step shows progress
    assert steps[1].endswith("pause until promoted")
    assert steps[2].endswith("setWeight 50%")
    assert steps[3].endswith(
        "analysis: errorRate ≤ 1.00%, latency p99 ≤ 250ms; 3 measurements 30s apart"
    )
    assert steps[4].endswith("pause 2m")


def test_the_current_timed_pause_says_how_long_is_left() -> None:
    # canary_at(4) paused 75 s ago on a 120 s pause.
    steps = section(render_status(canary_at(4), NOW), "Steps:")
    assert steps[4].endswith("pause 2m (45s left)")


def test_the_summary_has_versions_step_weights_and_replicas() -> None:
    text = render_status(canary_at(2), NOW)
    assert field(text, "Phase") == "Progressing"
    assert field(text, "Message") == "step 3/5: starting 2 pod(s) of iris-classifier-v2 for 50%"
    assert field(text, "Strategy") == "Canary"
    assert field(text, "Stable") == "iris-classifier-v1"
    assert field(text, "Canary") == "iris-classifier-v2"
    assert field(text, "Step") == "3/5"
    assert field(text, "Weight") == "20% asked, 20% actual"
    assert field(text, "Replicas") == "4 desired, 5 current, 5 ready"
    assert field(text, "Model") == "iris-classifier (follows the newest Ready version)"
    assert field(text, "Rollout started") == "10m ago"


def test_analysis_measurements_show_value_limit_and_verdict() -> None:
    rows = section(render_status(canary_at(3), NOW), "Analysis runs:")
    assert rows[0].split() == ["step-4", "Running", "started", "95s", "ago"]
    assert rows[1].split() == ["METRIC", "VALUE", "LIMIT", "VERDICT", "AGE", "MESSAGE"]
    assert rows[2].split() == ["errorRate", "0.20%", "≤", "1.00%", "Successful", "60s", "-"]
    assert rows[3].split() == ["latency", "181ms", "≤", "250ms", "Successful", "60s", "-"]


def test_only_the_latest_measurements_are_listed() -> None:
    obj = canary_at(3)
    run = obj["status"]["analysisRuns"][0]
    run["measurements"] = [
        {
            "metric": "errorRate",
            "value": i / 1000,
            "phase": "Successful",
            "time": "2026-11-22T10:00:00Z",
        }
        for i in range(25)
    ]
    rows = section(render_status(obj, NOW), "Analysis runs:")
    values = [row.split()[1] for row in rows[2:-1]]
    assert values == [f"{i / 10:.2f}%" for i in range(15, 25)]
    assert rows[-1].strip() == "(15 earlier measurements not shown)"


def test_conditions_endpoints_and_drift() -> None:
    text = render_status(canary_at(1), NOW)
    conditions = section(text, "Conditions:")
    assert conditions[0].split() == ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]
    assert [row.split()[0] for row in conditions[1:]] == [
        "Ready",
        "Available",
        "Degraded",
        "Progressing",
    ]
    assert conditions[4].split()[:4] == ["Progressing", "True", "PausedByStep", "10m"]
    endpoints = section(text, "Endpoints:")
    assert [line.split() for line in endpoints] == [
        ["stable:", "http://iris.demo.svc:80"],
        ["canary:", "http://iris-canary.demo.svc:80"],
    ]
    (drift,) = section(text, "Monitoring:")
    assert drift.strip() == (
        'Drift: 0.07 on "petal length (cm)" (psi, threshold 0.2), measured 45s ago'
    )


def test_why_and_when_the_last_retraining_ran_and_what_was_held_back() -> None:
    obj = canary_at(1)
    obj["status"]["retraining"] = {
        "lastRun": {
            "time": "2026-11-22T09:00:00Z",
            "trigger": "newData",
            "reason": "Dataset iris has a new version 1f0c2a",
            "trainingJob": "iris-retrain-2",
        },
        "lastSuppressed": {
            "time": "2026-11-22T10:00:00Z",
            "trigger": "drift",
            "reason": "PSI 0.9",
            "suppressed": "WaitingForNewData",
        },
    }
    lines = [" ".join(line.split()) for line in section(render_status(obj, NOW), "Monitoring:")]
    assert lines[1] == (
        "Retraining: TrainingJob iris-retrain-2 (newData: Dataset iris has a new version "
        "1f0c2a), started 75m ago"
    )
    assert lines[2] == "Not retrained: drift held back: WaitingForNewData, 15m ago"


def test_an_indefinite_pause_suggests_promote_and_abort() -> None:
    hints = section(render_status(canary_at(1), NOW), "Next:")
    assert [h.split("   ")[0].strip() for h in hints] == [
        "kubectl modelwerk promote iris",
        "kubectl modelwerk abort iris",
    ]


def test_a_running_step_suggests_only_abort() -> None:
    hints = section(render_status(canary_at(3), NOW), "Next:")
    assert [h.split()[2] for h in hints] == ["abort"]


def test_blue_green_waiting_for_promotion() -> None:
    text = render_status(blue_green_waiting(), NOW)
    assert field(text, "Strategy") == "BlueGreen"
    assert field(text, "Stable") == "fraud-v1 (blue)"
    assert field(text, "Preview") == "fraud-v2 (green)"
    assert field(text, "Active color") == "blue"
    assert field(text, "Model") == "fraud (pinned: fraud-v2)"
    assert not has_field(text, "Weight")  # blue-green switches at once: no weights to show
    assert "Steps:" not in text
    settings = section(text, "Blue-green:")
    assert [line.split(":", 1)[1].strip() for line in settings] == [
        "when a person sends `promote`",
        "3",
        "1m after the switch",
    ]
    assert section(text, "Conditions:")[2].split()[2] == "WaitingForPromotion"
    assert [line.split()[0] for line in section(text, "Endpoints:")] == ["stable:", "preview:"]
    assert [h.split()[2] for h in section(text, "Next:")] == ["promote", "abort"]


def test_an_aborted_rollout_says_what_failed_and_suggests_retry() -> None:
    text = render_status(aborted(), NOW)
    assert field(text, "Phase") == "Aborted"
    assert field(text, "Message") == "Analysis step-4 failed: errorRate 0.042 above 0.01"
    assert field(text, "Aborted") == (
        "iris-classifier-v2 at generation 2; not retried until the spec changes or `retry` is sent"
    )
    assert field(text, "Weight") == "- asked, 0% actual"  # all traffic is back on stable
    for ended in ("Canary", "Step", "Rollout started"):
        assert not has_field(text, ended)
    assert [line[2] for line in section(text, "Steps:")] == [" "] * 5  # the rollout ended
    run = section(text, "Analysis runs:")
    assert run[0].split()[:2] == ["step-4", "Failed"]
    assert run[1].strip() == "Analysis step-4 failed: errorRate 0.042 above 0.01"
    assert run[3].split()[:5] == ["errorRate", "4.20%", "≤", "1.00%", "Failed"]
    assert section(text, "Conditions:")[3].split()[:3] == ["Degraded", "True", "AnalysisFailed"]
    assert section(text, "Next:") == [
        "  kubectl modelwerk retry iris   to roll the aborted version out again"
    ]


def test_an_aborted_rollout_that_keeps_its_step_index_marks_the_step_it_failed_at() -> None:
    obj = aborted()
    obj["status"]["currentStepIndex"] = 3
    text = render_status(obj, NOW)
    assert field(text, "Step") == "4/5"
    assert [line[2] for line in section(text, "Steps:")] == [DONE, DONE, DONE, FAILED, " "]


def test_an_inconclusive_analysis_suggests_resume_or_promote() -> None:
    obj = canary_at(3)
    message = (
        "Analysis step-4 inconclusive (too few requests); resume to measure again, promote to go on"
    )
    obj["status"] |= {"phase": "Paused", "message": message}
    obj["status"]["conditions"][3] |= {"reason": "AnalysisInconclusive", "message": message}
    hints = section(render_status(obj, NOW), "Next:")
    assert [h.split()[2] for h in hints] == ["resume", "promote", "abort"]


def test_a_fresh_object_shows_its_spec_and_says_the_operator_has_not_seen_it() -> None:
    text = render_status(fresh(), NOW)
    assert field(text, "Name") == "iris"
    assert field(text, "Phase") == "-"
    assert field(text, "Model") == "pinned: iris-classifier-v1"
    assert field(text, "Strategy") == "Canary"  # from the spec, as the status has none yet
    assert field(text, "Replicas") == "2 desired, - current, - ready"
    assert "operator has not seen this Deployment" in field(text, "Note")
    steps = section(text, "Steps:")
    assert [line[2] for line in steps] == [" "] * 5  # no rollout, no markers
    assert steps[3].endswith("analysis: none configured (spec.analysis), passes at once")
    for absent in ("Conditions:", "Analysis runs:", "Endpoints:", "Next:"):
        assert absent not in text


def test_a_status_behind_the_spec_says_so() -> None:
    obj = canary_at(0)
    obj["metadata"]["generation"] = 3
    assert field(render_status(obj, NOW), "Note") == (
        "status is for generation 2; generation 3 is not reconciled yet"
    )


def test_a_command_not_acted_on_yet_is_shown_as_pending() -> None:
    obj = canary_at(1)
    obj["metadata"]["annotations"] = {"modelwerk.dev/command": "promote@20261122T101459.000000Z"}
    obj["status"]["lastCommand"] = "pause@20261122T100000.000000Z"
    text = render_status(obj, NOW)
    assert field(text, "Last command") == "pause@20261122T100000.000000Z"
    assert field(text, "Pending command") == (
        "promote@20261122T101459.000000Z (the operator has not acted on it yet)"
    )
    obj["status"]["lastCommand"] = obj["metadata"]["annotations"]["modelwerk.dev/command"]
    assert not has_field(render_status(obj, NOW), "Pending command")


def test_a_person_paused_the_deployment() -> None:
    obj = canary_at(2)
    obj["status"] |= {"paused": True, "phase": "Paused"}
    text = render_status(obj, NOW)
    assert field(text, "Phase") == "Paused (paused by a person)"
    assert [h.split()[2] for h in section(text, "Next:")] == ["resume", "abort"]


def test_a_canary_without_steps() -> None:
    obj = fresh()
    obj["spec"]["strategy"] = {"canary": {}}
    assert "Steps: none (the new version is promoted as soon as it is Ready)" in render_status(
        obj, NOW
    )


def test_malformed_fields_do_not_break_the_view() -> None:
    # An older or newer operator may write shapes this plugin does not know.
    obj = canary_at(3)
    obj["status"] |= {"analysisRuns": "n/a", "conditions": [None, 3], "endpoints": [], "drift": 1}
    obj["spec"]["strategy"]["canary"]["steps"].append({"experiment": {}})
    text = render_status(obj, NOW)
    assert section(text, "Steps:")[-1].endswith("(unknown step)")
    assert "Conditions:" not in text
    assert "Analysis runs:" not in text
