"""The two color slots of a Deployment: what each reports, and what the rollout wants of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelwerk.builders.experiment import ArmRole
from modelwerk.builders.shadow import ShadowRole

Color = Literal["blue", "green"]
COLORS: tuple[Color, Color] = ("blue", "green")


def other(color: Color) -> Color:
    return "green" if color == "blue" else "blue"


@dataclass(frozen=True)
class TrackState:
    """What the apps/v1 Deployment of one color reports."""

    version: str | None
    replicas: int
    updated: int
    ready: int
    available: int
    current: bool
    """Its controller has seen the latest spec (status.observedGeneration)."""
    deadline_exceeded: bool = False


@dataclass(frozen=True)
class Want:
    version: str
    replicas: int
    arm: ArmRole | None = None
    """The color's part in an A/B experiment, if any."""
    shadow: ShadowRole | None = None
    """The candidate the color copies requests to, if any."""


def settled(track: TrackState | None, version: str, replicas: int) -> bool:
    """The track runs ``version`` on at least ``replicas`` available, up-to-date pods."""
    if replicas == 0:
        return True
    return (
        track is not None
        and track.version == version
        and track.current
        and track.updated >= replicas
        and track.available >= replicas
    )
