"""The operator's side of manual control: which annotation value to act on now.

The protocol (annotation key, verbs, value format) is defined in ``modelwerk.api.commands``,
shared with ``kubectl modelwerk``.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelwerk.api.commands import COMMAND_ANNOTATION, VERBS


@dataclass(frozen=True)
class Command:
    raw: str
    """The annotation value, recorded in status.lastCommand once acted on."""
    verb: str
    """The verb; may be unknown (reported, then ignored)."""

    @property
    def known(self) -> bool:
        return self.verb in VERBS


def pending_command(annotations: dict[str, str] | None, last: str | None) -> Command | None:
    """The command to act on now, if the annotation holds one not acted on yet.

    >>> pending_command({"modelwerk.dev/command": "promote@20261122T120000Z"}, None).verb
    'promote'
    >>> pending_command({"modelwerk.dev/command": "abort"}, "abort") is None
    True
    """
    raw = (annotations or {}).get(COMMAND_ANNOTATION, "").strip()
    if not raw or raw == last:
        return None
    return Command(raw=raw, verb=raw.split("@", 1)[0].strip().lower())
