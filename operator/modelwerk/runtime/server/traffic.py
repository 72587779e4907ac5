"""The model server behind what the operator's environment asks of the pod: the shadow mirror
(stable pods of a shadow) and the A/B router (pods of an experiment)."""

from __future__ import annotations

from typing import Any

from modelwerk.runtime.server import experiment, shadow
from modelwerk.runtime.server.asgi import ASGIApp


def wrap(server: Any) -> ASGIApp:
    """``server`` (a ModelServer) with its middleware; itself when none is configured."""
    return experiment.wrap(shadow.wrap(server), server=server)
