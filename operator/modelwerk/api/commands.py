"""Manual control of a Deployment: the ``modelwerk.dev/command`` annotation.

A person (or ``kubectl modelwerk``) writes ``<verb>`` or ``<verb>@<id>`` into the annotation;
the operator acts on a value once, when it differs from ``status.lastCommand``, and then records
it there. The spec is never touched, so GitOps tools see no drift. Senders make each value unique
with an id; the plugin uses the UTC time with microseconds.

Shared by both sides: ``kubectl modelwerk`` writes values with ``command_value``, the operator
reads them (``modelwerk.logic.commands``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, get_args

COMMAND_ANNOTATION = "modelwerk.dev/command"

Verb = Literal["promote", "promote-full", "abort", "pause", "resume", "retry"]
VERBS: tuple[Verb, ...] = get_args(Verb)


def command_value(verb: Verb, at: datetime) -> str:
    """The annotation value for ``verb`` sent at ``at``.

    >>> from datetime import timedelta, timezone
    >>> command_value("promote", datetime(2026, 11, 22, 10, 15, 0, 123456, tzinfo=UTC))
    'promote@20261122T101500.123456Z'
    >>> cet = timezone(timedelta(hours=1))
    >>> command_value("abort", datetime(2026, 11, 22, 11, 15, tzinfo=cet))
    'abort@20261122T101500.000000Z'
    """
    return f"{verb}@{at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}"
