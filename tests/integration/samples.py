"""The modelwerk objects of a sample under manifests/samples, for the chain tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def by_kind(sample: str) -> dict[str, dict[str, Any]]:
    """The sample's modelwerk.dev objects by kind (one of each kind)."""
    return {
        d["kind"]: d
        for f in sorted((ROOT / "manifests/samples" / sample).glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d and d["apiVersion"].startswith("modelwerk.dev")
    }
