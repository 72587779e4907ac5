"""Which objects refer to which, learned from the watch events of the referring objects.

A Dataset change concerns the TrainingJobs reading it and the Datasets built on it (a
production source's base); a ModelVersion change concerns its
sibling versions (one Production version per model) and the Deployments serving it or its
model. This index answers "who refers to X" without an API call.

It replaces kopf indexes on purpose: kopf holds back every handler of every watched resource
at start-up until each indexed object has been indexed, and each indexed object that finishes
wakes every waiting worker. With 1,000 Deployments and their ~4,000 children that took over
two minutes during which every listed object stayed in memory (bench/operator/results.md).
Reconciles need no complete index at start-up: every object is reconciled once when it is
first listed and again at each resync, so a wake-up missed while this index fills is harmless.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

Ref = tuple[str, str, str]
"""(kind of the referring objects, namespace, what they refer to)."""


def reference(kind: str, spec: Mapping[str, Any]) -> str | None:
    """What an object of ``kind`` with ``spec`` refers to, as the lookups below name it."""
    if kind == "TrainingJob":
        dataset = (spec.get("datasetRef") or {}).get("name")
        return f"dataset:{dataset}" if dataset else None
    if kind == "Dataset":
        base = (((spec.get("source") or {}).get("production") or {}).get("base") or {}).get("name")
        return f"base:{base}" if base else None
    if kind == "ModelVersion":
        model = spec.get("model")
        return f"model:{model}" if model else None
    if kind == "Deployment":
        if spec.get("modelVersion"):
            return f"version:{spec['modelVersion']}"
        model = (spec.get("modelSelector") or {}).get("model")
        return f"model:{model}" if model else None
    return None


class Dependents:
    """Names of referring objects by what they refer to; updated from every event."""

    def __init__(self) -> None:
        self._refs: dict[tuple[str, str, str], Ref] = {}
        self._names: dict[Ref, set[str]] = defaultdict(set)

    def __len__(self) -> int:
        return len(self._refs)

    def seen(self, kind: str, namespace: str, name: str, spec: Mapping[str, Any]) -> None:
        """Record the object's current reference (replacing the one it had)."""
        target = reference(kind, spec)
        self.forget(kind, namespace, name)
        if target is not None:
            ref = (kind, namespace, target)
            self._refs[(kind, namespace, name)] = ref
            self._names[ref].add(name)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        ref = self._refs.pop((kind, namespace, name), None)
        if ref is not None:
            names = self._names[ref]
            names.discard(name)
            if not names:
                del self._names[ref]

    def referring(self, kind: str, namespace: str, target: str) -> list[str]:
        """Objects of ``kind`` in ``namespace`` that refer to ``target`` (see ``reference``)."""
        return sorted(self._names.get((kind, namespace, target), ()))

    def of_change(self, kind: str, namespace: str, name: str, spec: Mapping[str, Any]) -> list[Ref]:
        """(kind, namespace, name) of the objects a change of this object concerns."""
        if kind == "Dataset":
            return [
                *(
                    ("TrainingJob", namespace, tj)
                    for tj in self.referring("TrainingJob", namespace, f"dataset:{name}")
                ),
                # Datasets made of production rows on top of this one's current version.
                *(
                    ("Dataset", namespace, ds)
                    for ds in self.referring("Dataset", namespace, f"base:{name}")
                    if ds != name
                ),
            ]
        if kind == "ModelVersion":
            model = spec.get("model", "")
            siblings = self.referring("ModelVersion", namespace, f"model:{model}")
            users = {
                *self.referring("Deployment", namespace, f"version:{name}"),
                *self.referring("Deployment", namespace, f"model:{model}"),
            }
            return [
                *(("ModelVersion", namespace, mv) for mv in siblings if mv != name),
                *(("Deployment", namespace, dep) for dep in sorted(users)),
            ]
        return []
