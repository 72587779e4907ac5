"""Which artifact store a namespace's pods use, and what an object says when it cannot be used.

The operator's settings name the default store; a namespace owner can give the namespace its
own with the ConfigMap ``modelwerk-artifact-store`` (keys ``uri``, ``endpoint``, ``region``,
``secretName``), without touching the operator. An override that cannot be used stops new
work in the namespace rather than falling back: falling back would write the namespace's data
somewhere its owner did not choose. Running serving pods are left alone, so nothing stops
serving; every object reports the problem in an ``ArtifactStore`` condition and looks again
every minute (the ConfigMap is read at each reconcile, not watched).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from modelwerk.api.conditions import get_condition, set_condition
from modelwerk.api.v1alpha1.common import StatusBase
from modelwerk.builders.artifact_store import (
    OVERRIDE_KEYS,
    STORE_CONFIGMAP,
    ArtifactStore,
    StoreConfigError,
    parse_store,
)
from modelwerk.logic.plan import Event, Plan

CONDITION = "ArtifactStore"
RECHECK_SECONDS = 60.0


@dataclass(frozen=True)
class StoreProblem:
    reason: str
    message: str


def resolve_store(
    default: ArtifactStore, override: Mapping[str, str] | None
) -> ArtifactStore | StoreProblem:
    """The store of a namespace: ``default``, or the namespace's ConfigMap data when it has one.

    >>> from modelwerk.builders.artifact_store import parse_store
    >>> default = parse_store("pvc://modelwerk-artifacts")
    >>> resolve_store(default, None) is default
    True
    >>> resolve_store(default, {"uri": "s3://team-a/ml", "secretName": "s3"}).root("a")
    's3://team-a/ml'
    >>> resolve_store(default, {"uri": "s3://team-a", "bucket": "x"}).message
    "ConfigMap modelwerk-artifact-store: unknown key 'bucket' (known: uri, endpoint, region, secretName)"
    """
    if override is None:
        return default
    where = f"ConfigMap {STORE_CONFIGMAP}"
    unknown = sorted(set(override) - set(OVERRIDE_KEYS))
    if unknown:
        return StoreProblem(
            "ArtifactStoreInvalid",
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(OVERRIDE_KEYS)})",
        )
    uri = override.get("uri", "").strip()
    if not uri:
        return StoreProblem("ArtifactStoreInvalid", f"{where}: key 'uri' is required")
    try:
        return parse_store(
            uri,
            endpoint=override.get("endpoint", "").strip() or None,
            region=override.get("region", "").strip() or None,
            secret=override.get("secretName", "").strip() or None,
            source="namespace",
        )
    except StoreConfigError as exc:
        return StoreProblem("ArtifactStoreInvalid", f"{where}: key {exc}")


def blocked(status: StatusBase, problem: StoreProblem, *, generation: int, now: datetime) -> Plan:
    """Nothing new starts while the store is unusable; the object says why, once."""
    before = get_condition(status.conditions, CONDITION)
    conditions = set_condition(
        status.conditions,
        CONDITION,
        "False",
        problem.reason,
        problem.message,
        now=now,
        generation=generation,
    )
    events: tuple[Event, ...] = ()
    if before is None or before.status != "False" or before.message != problem.message:
        events = (Event("Warning", problem.reason, problem.message),)
    return Plan(
        status=status.model_copy(update={"conditions": conditions}),
        events=events,
        requeue_after=RECHECK_SECONDS,
    )


def usable(plan: Plan, store: ArtifactStore, *, generation: int, now: datetime) -> Plan:
    """``plan`` with a former ``ArtifactStore`` problem marked resolved; objects that never had
    one get no condition (no status write for every object of every namespace)."""
    before = get_condition(plan.status.conditions, CONDITION)
    if before is None or before.status == "True":
        return plan
    message = f"Using {store.uri} ({'namespace override' if store.source == 'namespace' else 'operator default'})"
    conditions = set_condition(
        plan.status.conditions, CONDITION, "True", "Usable", message, now=now, generation=generation
    )
    return replace(
        plan,
        status=plan.status.model_copy(update={"conditions": conditions}),
        events=(*plan.events, Event("Normal", "ArtifactStoreUsable", message)),
    )
