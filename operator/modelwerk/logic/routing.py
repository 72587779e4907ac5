"""Exact canary weights through a Gateway API HTTPRoute the user owns.

The route stays the user's: the operator changes only the backends of rules that already send
to the Deployment's stable Service, setting the stable and canary Services' weights. A GitOps
tool that manages the route will see those weights move during a rollout; tell it to ignore
``/spec/rules/*/backendRefs`` (Argo CD ``ignoreDifferences``, Flux does not prune them).
"""

from __future__ import annotations

from typing import Any


def route_patch(
    route: dict[str, Any], stable: str, canary: str, port: int, weight: int
) -> tuple[dict[str, Any] | None, str | None]:
    """The merge patch giving ``canary`` ``weight`` percent of the route's traffic to ``stable``.

    Returns (patch or None when nothing changes, problem or None). The patch carries the
    route's resourceVersion, so a concurrent edit makes it fail instead of being overwritten.

    >>> route = {"metadata": {"resourceVersion": "7"},
    ...          "spec": {"rules": [{"backendRefs": [{"name": "iris", "port": 80}]}]}}
    >>> patch, problem = route_patch(route, "iris", "iris-canary", 80, 20)
    >>> [(b["name"], b["weight"]) for b in patch["spec"]["rules"][0]["backendRefs"]]
    [('iris', 80), ('iris-canary', 20)]
    """
    rules = list((route.get("spec") or {}).get("rules") or [])
    ours = {stable, canary}
    matched = False
    new_rules = []
    for rule in rules:
        refs = list(rule.get("backendRefs") or [])
        if any(_is_service(ref) and ref.get("name") in ours for ref in refs):
            matched = True
            others = [r for r in refs if not (_is_service(r) and r.get("name") in ours)]
            rule = {
                **rule,
                "backendRefs": [
                    *others,
                    {"name": stable, "port": port, "weight": 100 - weight},
                    {"name": canary, "port": port, "weight": weight},
                ],
            }
        new_rules.append(rule)
    name = (route.get("metadata") or {}).get("name", "the HTTPRoute")
    if not matched:
        return None, f"HTTPRoute {name} has no rule sending traffic to Service {stable}"
    if new_rules == rules:
        return None, None
    version = (route.get("metadata") or {}).get("resourceVersion")
    return {"metadata": {"resourceVersion": version}, "spec": {"rules": new_rules}}, None


def _is_service(ref: dict[str, Any]) -> bool:
    return bool(ref.get("group", "") == "" and ref.get("kind", "Service") == "Service")
