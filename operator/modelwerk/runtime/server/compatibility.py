"""Refusing an artifact written by another scikit-learn minor version than the server's.

scikit-learn does not support unpickling across versions: an estimator's attributes change
between minor releases, and a model can load and then answer wrongly instead of failing. So the
server compares the version the trainer recorded in the model card with its own *before* it
unpickles anything, and exits with :data:`EXIT_INCOMPATIBLE` and a message that starts with
:data:`MARKER`; the operator reads both from the crashed container's status and reports the
Deployment's ``ModelIncompatible`` condition. Patch releases are compatible by scikit-learn's
own policy, so only major.minor is compared.
"""

from __future__ import annotations

import logging

from modelwerk.runtime.artifacts import ModelCard

log = logging.getLogger(__name__)

EXIT_INCOMPATIBLE = 3
MARKER = "ModelIncompatible:"


class IncompatibleModel(Exception):
    """The artifact needs another scikit-learn than the one in this server."""


def minor(version: str) -> tuple[int, ...] | None:
    """major.minor of a version string, or None when it does not start with two numbers.

    >>> minor("1.5.2"), minor("1.6.0rc1"), minor("dev")
    ((1, 5), (1, 6), None)
    """
    parts = version.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or "x")
    except (IndexError, ValueError):
        return None


def check(card: ModelCard, server_version: str, *, allow_mismatch: bool) -> None:
    """Raise :class:`IncompatibleModel` unless the card's scikit-learn matches ours (major.minor)."""
    written = card.artifact.framework_version
    if minor(written) == minor(server_version) and minor(written) is not None:
        return
    message = (
        f"{MARKER} the artifact was written by scikit-learn {written} and this server has "
        f"scikit-learn {server_version}; unpickling across minor versions is unsupported and can "
        "give wrong answers. Serve it with a runtime image of the same scikit-learn, retrain it "
        "with this one, or set spec.server.allowVersionMismatch: true on the Deployment to "
        "accept the risk"
    )
    if not allow_mismatch:
        raise IncompatibleModel(message)
    log.warning("%s (allowed by allowVersionMismatch)", message.removeprefix(MARKER).strip())
