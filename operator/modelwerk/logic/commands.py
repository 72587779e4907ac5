"""Manual control of a rollout: the ``modelwerk.dev/command`` annotation protocol.

A person (or ``kubectl modelwerk``) writes ``<verb>`` or ``<verb>@<id>`` into the annotation;
the operator acts on each distinct value once and records it in ``status.lastCommand``. The
spec is never touched, so a GitOps tool has nothing to fight over, and the id lets the same
verb be sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

COMMAND_ANNOTATION = "modelwerk.dev/command"

Verb = Literal["promote", "promote-full", "abort", "pause", "resume", "retry"]
VERBS: tuple[str, ...] = get_args(Verb)


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
