"""The champion a training Job's pod scores: three variables on its containers."""

from __future__ import annotations

import copy
from typing import Any

VERSION_ENV = "MODELWERK_CHAMPION_VERSION"
URI_ENV = "MODELWERK_CHAMPION_URI"
SHA256_ENV = "MODELWERK_CHAMPION_SHA256"


def with_champion(job: dict[str, Any], version: str, uri: str, sha256: str) -> dict[str, Any]:
    """``job`` whose containers are told where the champion's artifact is and its hash."""
    out = copy.deepcopy(job)
    env = [
        {"name": VERSION_ENV, "value": version},
        {"name": URI_ENV, "value": uri},
        {"name": SHA256_ENV, "value": sha256},
    ]
    for container in out["spec"]["template"]["spec"]["containers"]:
        container["env"] = [*container.get("env", []), *env]
    return out
