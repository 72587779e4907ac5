"""What ``promote``, ``abort``, ``pause``, ``resume`` and ``retry`` print. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelwerk.api.commands import COMMAND_ANNOTATION
from modelwerk.plugin.names import RESOURCE
from modelwerk.plugin.text import cell, fields, mapping, percent


def render_sent(name: str, value: str) -> str:
    return f"{RESOURCE}/{name}: sent {COMMAND_ANNOTATION}={value}\n"


def render_replaced(name: str, obj: Mapping[str, Any]) -> str:
    """A warning when the annotation holds a command the operator has not acted on yet."""
    sent = mapping(mapping(obj.get("metadata")).get("annotations")).get(COMMAND_ANNOTATION)
    done = mapping(obj.get("status")).get("lastCommand")
    if not sent or sent == done:
        return ""
    return (
        f"warning: {RESOURCE}/{name}: replacing {sent}, which the operator has not acted on yet\n"
    )


def render_acted(name: str, value: str, obj: Mapping[str, Any]) -> str:
    """The operator recorded ``value`` in status.lastCommand: say where that left the rollout."""
    status = mapping(obj.get("status"))
    pairs = [("Phase", cell(status.get("phase"))), ("Message", cell(status.get("message")))]
    if status.get("paused"):
        pairs.append(("Paused", "yes (send `resume` to continue)"))
    if status.get("canaryVersion"):
        pairs.append(("Rolling out", str(status["canaryVersion"])))
        if status.get("canaryWeight") is not None or status.get("actualWeight") is not None:
            asked, actual = percent(status.get("canaryWeight")), percent(status.get("actualWeight"))
            pairs.append(("Weight", f"{asked} asked, {actual} actual"))
    pairs.append(("Stable", cell(status.get("stableVersion"))))
    head = f"{RESOURCE}/{name}: the operator acted on {value}"
    return head + "\n" + fields(pairs, indent="  ") + "\n"


def render_timeout(name: str, value: str, waited: float, obj: Mapping[str, Any] | None) -> str:
    last = cell(mapping((obj or {}).get("status")).get("lastCommand"))
    return (
        f"error: timed out after {waited:g}s waiting for the operator to act on "
        f"{value} (status.lastCommand is {last}). The modelwerk operator may not be running: "
        f"check `kubectl -n modelwerk-system get pods`. The command stays in the "
        f"{COMMAND_ANNOTATION} annotation of {RESOURCE}/{name}; the operator acts on it when "
        f"it runs.\n"
    )
