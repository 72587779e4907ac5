"""The Grafana dashboard: generated, well-formed, and querying only series modelwerk exposes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from .promql import catalog, check, grafana_to_promql, grafana_variables

ROOT = Path(__file__).resolve().parents[3]
KNOWN = catalog()


def _generator() -> Any:
    path = ROOT / "hack" / "monitoring" / "grafana_dashboard.py"
    spec = importlib.util.spec_from_file_location("grafana_dashboard", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("grafana_dashboard", module)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()
DASHBOARD: dict[str, Any] = json.loads(GENERATOR.OUTPUT.read_text())
PANELS = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
TARGETS = [(p["title"], t) for p in PANELS for t in p["targets"]]
VARIABLES = {v["name"]: v for v in DASHBOARD["templating"]["list"]}


def test_the_committed_json_is_the_generated_one() -> None:
    assert GENERATOR.OUTPUT.read_text() == GENERATOR.render(), (
        "the dashboard is stale: run python hack/monitoring/grafana_dashboard.py"
    )


@pytest.mark.parametrize(
    ("panel", "target"), TARGETS, ids=[f"{p}/{t['refId']}" for p, t in TARGETS]
)
def test_every_query_reads_only_exposed_series(panel: str, target: dict[str, Any]) -> None:
    usage = check(grafana_to_promql(target["expr"]), KNOWN)
    assert usage.problems == ()
    assert usage.series
    assert grafana_variables(target["expr"]) <= set(VARIABLES)


@pytest.mark.parametrize("name", ["namespace", "deployment"])
def test_templated_on_namespace_and_deployment(name: str) -> None:
    variable = VARIABLES[name]
    query = variable["query"]["query"]
    assert query.startswith("label_values(") and query.endswith(f", {name})")
    selector = query.removeprefix("label_values(").rsplit(",", 1)[0]
    assert check(grafana_to_promql(selector), KNOWN).problems == ()
    assert name in KNOWN[selector.split("{")[0]].labels
    assert variable["multi"] and variable["includeAll"]
    # A query filters on the variable whenever its series say which object they are about.
    filtered = 0
    for title, target in TARGETS:
        used = check(grafana_to_promql(target["expr"]), KNOWN).series
        if all(KNOWN[s].describes(name) for s in used):
            assert f'{name}=~"${name}"' in target["expr"], (title, target["expr"])
            filtered += 1
        else:
            assert f"${name}" not in target["expr"], (title, target["expr"])
    assert filtered >= 10


def test_a_datasource_variable_feeds_every_panel() -> None:
    assert VARIABLES["datasource"]["type"] == "datasource"
    assert VARIABLES["datasource"]["query"] == "prometheus"
    for panel in PANELS:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])


def test_panels_the_issue_asks_for() -> None:
    titles = {p["title"] for p in PANELS}
    assert {
        "Requests/s by version",
        "Error rate",
        "Latency p50 / p99",
        "Drift per feature",
        "Live accuracy",
        "Rollout phase",
        "Canary weight",
        "Analysis measurements",
        "Training runs",
        "Reconciles/s",
        "Reconcile errors",
        "Work queue depth",
    } <= titles
    legends = {t["legendFormat"] for _, t in TARGETS}
    assert "{{deployment}} {{version}}" in legends  # requests by version
    assert "{{deployment}} {{feature}} ({{method}})" in legends  # drift per feature


def test_the_phase_timeline_names_every_rollout_phase() -> None:
    (timeline,) = [p for p in PANELS if p["title"] == "Rollout phase"]
    mapped = timeline["fieldConfig"]["defaults"]["mappings"][0]["options"]
    expr = timeline["targets"][0]["expr"]
    for value, mapping in mapped.items():
        assert f'phase="{mapping["text"]}"}} == 1) * {value}' in expr
    from modelwerk.api.v1alpha1.deployment import RolloutPhase

    assert {m["text"] for m in mapped.values()} == set(RolloutPhase.__args__)


def test_layout_ids_and_grid() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in DASHBOARD["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
    for panel in PANELS:
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        assert panel["description"]
    assert DASHBOARD["uid"] == "modelwerk" and DASHBOARD["schemaVersion"] >= 36
