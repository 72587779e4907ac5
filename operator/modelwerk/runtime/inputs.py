"""Reading the custom resources a pod works on: JSON from an environment variable (set by the
operator) or YAML/JSON files (local mode), parsed into the API models."""

from __future__ import annotations

import json
import os
from typing import Any, TypeVar

from pydantic import ValidationError

from modelwerk.api.base import Resource

R = TypeVar("R", bound=Resource)


class InputError(Exception):
    """The object to work on is missing or invalid."""


def from_env(var: str, kind: type[R]) -> R:
    """The object in environment variable ``var`` (JSON, as the operator serialises it)."""
    text = os.environ.get(var)
    if not text:
        raise InputError(f"environment variable {var} is not set")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{var} is not valid JSON: {error}") from error
    return parse(body, kind, source=var)


def documents(path: str) -> list[dict[str, Any]]:
    """Every mapping in a YAML (or JSON) file; ``---`` separates several objects."""
    import yaml  # only local runs read files; the pods get JSON from the environment

    try:
        with open(path, encoding="utf-8") as handle:
            docs = list(yaml.safe_load_all(handle))
    except (OSError, yaml.YAMLError) as error:
        raise InputError(f"cannot read {path}: {error}") from error
    return [d for d in docs if isinstance(d, dict)]


def from_file(path: str, kind: type[R], name: str | None = None) -> R:
    """The object of ``kind`` (and ``name``, when given) in the file at ``path``."""
    wanted = kind.crd.kind
    matches = [d for d in documents(path) if d.get("kind", wanted) == wanted]
    if name is not None:
        matches = [d for d in matches if (d.get("metadata") or {}).get("name") == name] or matches
    if not matches:
        raise InputError(f"{path} holds no {wanted}")
    if len(matches) > 1:
        raise InputError(f"{path} holds several {wanted} objects; keep one per file")
    return parse(matches[0], kind, source=path)


def parse(body: Any, kind: type[R], source: str) -> R:
    if not isinstance(body, dict):
        raise InputError(f"{source} does not hold an object")
    try:
        obj = kind.from_k8s(body)
    except ValidationError as error:
        raise InputError(f"{source} is not a valid {kind.crd.kind}: {_brief(error)}") from error
    if not obj.metadata.name:
        raise InputError(f"{source}: metadata.name is required")
    return obj


def _brief(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"])
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
