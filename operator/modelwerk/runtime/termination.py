"""The pods' one channel back to the operator: a compact JSON result in the termination message.

Kubernetes keeps at most 4 KiB of a container's termination message and silently cuts the rest,
which would leave the operator with unparseable JSON. So every result is shrunk *before* it is
written: long lists lose their tail (their full length stays in a count field the caller sets),
long strings are cut, and as a last resort the optional keys go. The operator therefore always
receives valid JSON, and the fields it needs most (verdict, version, error) survive.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from modelwerk.runtime.artifacts import TERMINATION_MESSAGE_LIMIT

DEFAULT_PATH = "/dev/termination-log"
PATH_ENV = "MODELWERK_TERMINATION_MESSAGE_PATH"
_MAX_STRING = 1024


def dumps(result: Mapping[str, Any]) -> str:
    """Compact, deterministic JSON; NaN and infinities become null (JSON has neither)."""
    return json.dumps(_json_safe(result), separators=(",", ":"), sort_keys=False, allow_nan=False)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _size(result: Mapping[str, Any]) -> int:
    return len(dumps(result).encode())


def fit(
    result: Mapping[str, Any],
    *,
    lists: Sequence[str] = (),
    droppable: Sequence[str] = (),
    limit: int = TERMINATION_MESSAGE_LIMIT,
) -> dict[str, Any]:
    """Shrink ``result`` until its JSON fits in ``limit`` bytes.

    In order: cut top-level strings to 1 KiB; cut the tails of the ``lists`` (dotted paths such
    as ``signature.inputs``, in the given order, each keeping the longest prefix that fits) and
    mark each cut list with ``<name>Truncated: true`` next to it; drop the ``droppable``
    top-level keys; finally cut every top-level string to 64 characters.

    >>> fit({"ok": True, "items": list(range(2000))}, lists=["items"], limit=100)["itemsTruncated"]
    True
    """
    out = copy.deepcopy(dict(result))
    for key, value in out.items():
        if isinstance(value, str):
            out[key] = value[:_MAX_STRING]
    if _size(out) <= limit:
        return out
    for path in lists:
        *parents, name = path.split(".")
        container: Any = out
        for parent in parents:
            container = container.get(parent) if isinstance(container, dict) else None
        if not isinstance(container, dict):
            continue
        items = container.get(name)
        if not isinstance(items, list) or not items:
            continue
        container[f"{name}Truncated"] = True
        # Binary search for the longest prefix that fits: lists can hold a thousand entries.
        lo, hi = 0, len(items)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            container[name] = items[:mid]
            if _size(out) <= limit:
                lo = mid
            else:
                hi = mid - 1
        container[name] = items[:lo]
        if _size(out) <= limit:
            return out
    for key in droppable:
        out.pop(key, None)
        if _size(out) <= limit:
            return out
    return {k: (v[:64] if isinstance(v, str) else v) for k, v in out.items()}


def write(result: Mapping[str, Any], path: str | None = None) -> str:
    """Write ``result`` (already fitted) where the kubelet picks it up; return the JSON text.

    The path comes from ``MODELWERK_TERMINATION_MESSAGE_PATH``; without it the Kubernetes
    default ``/dev/termination-log`` is used only if it already exists (the kubelet mounts it
    into every container), so running locally never creates files under /dev. A path that
    cannot be written is skipped: the result is printed to stdout as well, and losing the
    message must not turn a finished job into a crash.
    """
    text = dumps(result)
    target = path or os.environ.get(PATH_ENV)
    if target is None and os.path.exists(DEFAULT_PATH):
        target = DEFAULT_PATH
    if target:
        try:
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError:
            pass
    return text
