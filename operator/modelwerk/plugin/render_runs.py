"""``kubectl modelwerk runs`` and ``diff``: a model's runs side by side, two versions compared.

Pure: TrainingJob and ModelVersion objects as the API server returns them in, text out. One
column per run (newest first), one row per fact: what it trained on, with which params, what it
scored on the holdout, its fairness and robustness figures, its gates, the version it
registered and that version's stage. Like Katib's trial table, but across runs of one model;
everything shown is in the objects' spec and status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelwerk.plugin.text import NONE, human_duration, items, mapping, parse_time, table


def number(value: object) -> str:
    """Four significant digits, as the printer columns show metrics.

    >>> number(0.76484), number(12), number(None), number(True)
    ('0.7648', '12', '-', 'True')
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NONE if value is None else str(value)
    return f"{value:.4g}"


def _short(version: object) -> str:
    text = str(version or "")
    return text.removeprefix("sha256:")[:12] if text else NONE


class _Run:
    """One column: a TrainingJob run, or a version no TrainingJob in view registered."""

    def __init__(
        self,
        name: str,
        created: str,
        facts: dict[str, str],
        params: Mapping[str, Any],
        figures: dict[str, str],
    ) -> None:
        self.name, self.created, self.facts, self.params, self.figures = (
            name,
            created,
            facts,
            params,
            figures,
        )


def _figures(metrics: object, fairness: object, robustness: object) -> dict[str, str]:
    out = {k: number(v) for k, v in mapping(metrics).items()}
    out |= {
        f"fairness.{k}": number(v) for k, v in mapping(mapping(fairness).get("figures")).items()
    }
    out |= {
        f"robustness.{k}": number(v) for k, v in mapping(mapping(robustness).get("figures")).items()
    }
    return out


def _from_training(tj: Mapping[str, Any], versions: Mapping[str, Mapping[str, Any]]) -> _Run:
    meta, spec, status = (mapping(tj.get(k)) for k in ("metadata", "spec", "status"))
    version = versions.get(str(status.get("modelVersion") or ""), {})
    gates = items(status.get("gateResults"))
    passed = sum(bool(g.get("passed")) for g in gates)
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = status.get("durationSeconds")
    if duration is None and start and end:
        duration = (end - start).total_seconds()
    facts = {
        "phase": str(status.get("phase") or NONE),
        "version": str(status.get("modelVersion") or NONE),
        "stage": str(mapping(version.get("spec")).get("stage") or NONE),
        "dataset": f"{mapping(spec.get('datasetRef')).get('name', NONE)}@"
        f"{_short(status.get('datasetVersion'))}",
        "estimator": str(mapping(spec.get("estimator")).get("name") or NONE),
        "gates": f"{passed}/{len(gates)} passed" if gates else NONE,
        "trials": str(status.get("trialCount") or NONE),
        "duration": human_duration(float(duration)) if duration is not None else NONE,
    }
    failing = [g for g in gates if not g.get("passed")]
    if failing:
        facts["failed"] = ", ".join(str(g.get("metric")) for g in failing)
    params = {
        **mapping(mapping(spec.get("estimator")).get("params")),
        **mapping(status.get("bestParams")),
    }
    figures = _figures(status.get("metrics"), status.get("fairness"), status.get("robustness"))
    return _Run(
        str(meta.get("name")), str(meta.get("creationTimestamp") or ""), facts, params, figures
    )


def _from_version(mv: Mapping[str, Any]) -> _Run:
    meta, spec = mapping(mv.get("metadata")), mapping(mv.get("spec"))
    lineage = mapping(spec.get("lineage"))
    facts = {
        "phase": str(mapping(mv.get("status")).get("phase") or NONE),
        "version": str(meta.get("name")),
        "stage": str(spec.get("stage") or NONE),
        "dataset": f"{lineage.get('dataset') or NONE}@{_short(lineage.get('datasetVersion'))}",
    }
    figures = _figures(spec.get("metrics"), spec.get("fairness"), spec.get("robustness"))
    return _Run(
        f"({meta.get('name')})",
        str(meta.get("creationTimestamp") or ""),
        facts,
        mapping(spec.get("params")),
        figures,
    )


_FACTS = (
    "phase",
    "version",
    "stage",
    "dataset",
    "estimator",
    "trials",
    "gates",
    "failed",
    "duration",
)


def render_runs(
    model: str, trainings: Sequence[Mapping[str, Any]], versions: Sequence[Mapping[str, Any]]
) -> str:
    """The runs and versions of ``model``; empty text when there are none."""
    mine = [v for v in versions if mapping(v.get("spec")).get("model") == model]
    by_name = {str(mapping(v.get("metadata")).get("name")): v for v in mine}
    runs = [
        _from_training(tj, by_name)
        for tj in trainings
        if mapping(mapping(tj.get("spec")).get("model")).get("name") == model
    ]
    registered = {r.facts["version"] for r in runs}
    runs += [_from_version(v) for name, v in by_name.items() if name not in registered]
    if not runs:
        return ""
    runs.sort(key=lambda r: r.created, reverse=True)
    rows: list[list[str]] = []
    for fact in _FACTS:
        if any(fact in r.facts for r in runs):
            rows.append([fact, *(r.facts.get(fact, NONE) for r in runs)])
    params = sorted({k for r in runs for k in r.params})
    rows += [[f"params.{k}", *(number(r.params.get(k)) for r in runs)] for k in params]
    figures = sorted({k for r in runs for k in r.figures}, key=lambda k: ("." in k, k))
    rows += [[k, *(r.figures.get(k, NONE) for r in runs)] for k in figures]
    return table(["RUN", *(r.name for r in runs)], rows) + "\n"


def _flatten(value: object, prefix: str = "") -> dict[str, str]:
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, inner in value.items():
            out |= _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list):
        if all(isinstance(v, Mapping) and "name" in v for v in value):
            return {f"{prefix}[{v['name']}]": str(v.get("datatype", "")) for v in value}
        return {prefix: ", ".join(number(v) for v in value)}
    return {prefix: number(value)}


_IGNORED = ("version", "fairness.groups", "robustness.mostSensitive", "fairness.intervals")


def render_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """What differs between two ModelVersions' specs (and verification), field by field."""
    left, right = _flatten(mapping(a.get("spec"))), _flatten(mapping(b.get("spec")))
    names = [str(mapping(x.get("metadata")).get("name")) for x in (a, b)]
    rows = [
        [key, left.get(key, NONE), right.get(key, NONE)]
        for key in sorted(set(left) | set(right))
        if left.get(key) != right.get(key) and not key.startswith(_IGNORED)
    ]
    if not rows:
        return f"{names[0]} and {names[1]} do not differ (beyond their version numbers).\n"
    return table(["FIELD", *names], rows) + "\n"
