"""What the control commands print."""

from __future__ import annotations

from modelwerk.plugin.render_command import (
    render_acted,
    render_replaced,
    render_sent,
    render_timeout,
)
from tests.unit.plugin.objects import aborted, canary_at, fresh

VALUE = "promote@20261122T101500.123456Z"


def test_sent_names_the_object_and_the_annotation() -> None:
    assert render_sent("iris", VALUE) == (
        f"deployments.modelwerk.dev/iris: sent modelwerk.dev/command={VALUE}\n"
    )


def test_acted_reports_where_the_rollout_now_stands() -> None:
    obj = canary_at(2)
    obj["status"]["lastCommand"] = VALUE
    lines = render_acted("iris", VALUE, obj).splitlines()
    assert lines[0] == f"deployments.modelwerk.dev/iris: the operator acted on {VALUE}"
    assert [line.split(":", 1)[0].strip() for line in lines[1:]] == [
        "Phase",
        "Message",
        "Rolling out",
        "Weight",
        "Stable",
    ]
    assert lines[1].split(":", 1)[1].strip() == "Progressing"
    assert lines[4].split(":", 1)[1].strip() == "20% asked, 20% actual"


def test_acted_on_an_aborted_rollout_has_no_weights() -> None:
    text = render_acted("iris", "abort@1", aborted())
    assert "Weight" not in text and "Rolling out" not in text
    assert "Phase:" in text and "Aborted" in text


def test_replacing_a_command_the_operator_has_not_acted_on_warns() -> None:
    obj = canary_at(1)
    obj["metadata"]["annotations"] = {"modelwerk.dev/command": "pause@1"}
    assert render_replaced("iris", obj) == (
        "warning: deployments.modelwerk.dev/iris: replacing pause@1, "
        "which the operator has not acted on yet\n"
    )
    obj["status"]["lastCommand"] = "pause@1"
    assert render_replaced("iris", obj) == ""
    assert render_replaced("iris", fresh()) == ""


def test_a_timeout_says_the_operator_may_not_be_running() -> None:
    text = render_timeout("iris", VALUE, 1.5, fresh())
    assert text.startswith(
        f"error: timed out after 1.5s waiting for the operator to act on {VALUE}"
    )
    assert "status.lastCommand is -" in text
    assert "operator may not be running" in text
