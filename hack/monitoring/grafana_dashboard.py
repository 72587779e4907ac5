#!/usr/bin/env python3
"""Write the modelwerk Grafana dashboard (manifests/components/monitoring/grafana/modelwerk.json).

The panels are described here, compactly, and laid out on Grafana's 24-column grid; the JSON is
generated so that ids, positions and datasource references stay consistent. ``--check`` exits 1
when the committed JSON differs (a unit test runs the same comparison). Standard library only.

Queries use the labels the monitoring component's scrape configs attach: serving pods carry
namespace, pod, deployment and track; the operator's series carry the namespace of the object
they describe.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "manifests" / "components" / "monitoring" / "grafana" / "modelwerk.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SERVING = 'namespace=~"$namespace", deployment=~"$deployment"'
NAMESPACE = 'namespace=~"$namespace"'
PHASES = ("Healthy", "Progressing", "Paused", "Degraded", "Aborted")
PHASE_COLORS = ("green", "blue", "yellow", "orange", "red")


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: tuple[Target, ...]
    type: str = "timeseries"
    unit: str = "short"
    width: int = 8
    height: int = 8
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    mappings: tuple[dict[str, Any], ...] = ()
    thresholds: tuple[tuple[float | None, str], ...] = ((None, "green"),)
    min: float | None = None
    max: float | None = None


def _rate(selector: str, window: str = "$__rate_interval") -> str:
    return f"rate({selector}[{window}])"


def _phase_timeline() -> str:
    """One number per Deployment for the current phase (value mappings turn it into a name)."""
    terms = [
        f'(modelwerk_rollout_phase{{{SERVING}, phase="{phase}"}} == 1) * {i}'
        for i, phase in enumerate(PHASES, start=1)
    ]
    return "max by (namespace, deployment) (\n  " + "\n  or ".join(terms) + "\n)"


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Serving",
        (
            Panel(
                "Requests/s by version",
                "Inference requests per second, all status codes.",
                (
                    Target(
                        "sum by (deployment, version) ("
                        + _rate(f"modelwerk_model_requests_total{{{SERVING}}}")
                        + ")",
                        "{{deployment}} {{version}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Error rate",
                "Share of inference requests answered with a 5xx status.",
                (
                    Target(
                        "sum by (deployment, version) ("
                        + _rate(f'modelwerk_model_requests_total{{{SERVING}, code=~"5.."}}')
                        + ")\n/\nsum by (deployment, version) ("
                        + _rate(f"modelwerk_model_requests_total{{{SERVING}}}")
                        + ")",
                        "{{deployment}} {{version}}",
                    ),
                ),
                unit="percentunit",
                min=0,
                thresholds=((None, "green"), (0.01, "orange"), (0.05, "red")),
            ),
            Panel(
                "Latency p50 / p99",
                "Request latency from receipt to response, per version.",
                tuple(
                    Target(
                        f"histogram_quantile({q}, sum by (deployment, version, le) ("
                        + _rate(f"modelwerk_model_request_seconds_bucket{{{SERVING}}}")
                        + "))",
                        f"p{round(q * 100)} {{{{deployment}}}} {{{{version}}}}",
                    )
                    for q in (0.5, 0.99)
                ),
                unit="s",
            ),
            Panel(
                "Requests in flight",
                "Requests being served right now, summed over pods.",
                (
                    Target(
                        f"sum by (deployment, track) (modelwerk_model_requests_in_flight{{{SERVING}}})",
                        "{{deployment}} {{track}}",
                    ),
                ),
            ),
            Panel(
                "Predictions by class",
                "Predicted rows per second by class (classifiers).",
                (
                    Target(
                        "sum by (deployment, class) ("
                        + _rate(f"modelwerk_model_predictions_total{{{SERVING}}}")
                        + ")",
                        "{{deployment}} {{class}}",
                    ),
                ),
                custom={"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30},
            ),
            Panel(
                "Rows per predict call",
                "Mean rows merged into one predict call by adaptive batching.",
                (
                    Target(
                        "sum by (deployment) ("
                        + _rate(f"modelwerk_model_batch_rows_sum{{{SERVING}}}")
                        + ")\n/\nsum by (deployment) ("
                        + _rate(f"modelwerk_model_batch_rows_count{{{SERVING}}}")
                        + ")",
                        "{{deployment}}",
                    ),
                ),
            ),
        ),
    ),
    (
        "Model quality",
        (
            Panel(
                "Drift per feature",
                "Drift of each feature's recent inputs from the training profile "
                "(highest over pods). PSI above 0.25 is a significant shift.",
                (
                    Target(
                        "max by (deployment, feature, method) "
                        f"(modelwerk_model_feature_drift{{{SERVING}}})",
                        "{{deployment}} {{feature}} ({{method}})",
                    ),
                ),
                width=12,
                custom={"thresholdsStyle": {"mode": "line"}},
                thresholds=((None, "green"), (0.1, "orange"), (0.25, "red")),
                min=0,
            ),
            Panel(
                "Live accuracy",
                "Labels joined with the captured predictions of all replicas over the capture "
                "window (the operator's figure); without capture, the lowest pod's own.",
                (
                    Target(
                        "min by (deployment, version) "
                        f"(modelwerk_deployment_live_accuracy{{{SERVING}}})",
                        "{{deployment}} {{version}}",
                    ),
                    Target(
                        f"min by (deployment, version) (modelwerk_model_live_accuracy{{{SERVING}}})"
                        " unless on (deployment) "
                        f"modelwerk_deployment_live_matched_rows{{{SERVING}}}",
                        "{{deployment}} {{version}} (pods)",
                    ),
                ),
                width=12,
                unit="percentunit",
                max=1,
            ),
            Panel(
                "Drift score (operator)",
                "The drift score the operator compares with spec.monitoring.drift.threshold.",
                (
                    Target(
                        f"max by (deployment) (modelwerk_deployment_drift_score{{{SERVING}}})",
                        "{{deployment}}",
                    ),
                ),
                width=12,
                min=0,
            ),
            Panel(
                "Drift detections and retraining runs",
                "Drift detections and the retraining TrainingJobs they started, in the range.",
                (
                    Target(
                        "sum by (deployment) "
                        f"(increase(modelwerk_drift_detected_total{{{SERVING}}}[$__range]))",
                        "drift {{deployment}}",
                        instant=True,
                    ),
                    Target(
                        "sum by (deployment) "
                        f"(increase(modelwerk_retraining_runs_total{{{SERVING}}}[$__range]))",
                        "retraining {{deployment}}",
                        instant=True,
                    ),
                ),
                type="bargauge",
                width=12,
                options={"displayMode": "basic", "orientation": "horizontal"},
            ),
        ),
    ),
    (
        "Rollouts",
        (
            Panel(
                "Rollout phase",
                "Phase of each Deployment over time.",
                (Target(_phase_timeline(), "{{namespace}}/{{deployment}}"),),
                type="state-timeline",
                width=24,
                height=6,
                mappings=(
                    {
                        "type": "value",
                        "options": {
                            str(i): {"text": phase, "color": color, "index": i - 1}
                            for i, (phase, color) in enumerate(
                                zip(PHASES, PHASE_COLORS, strict=True), start=1
                            )
                        },
                    },
                ),
                options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
            ),
            Panel(
                "Canary weight",
                "Share of traffic actually on the version being rolled out.",
                (
                    Target(
                        f"max by (deployment) (modelwerk_rollout_canary_weight{{{SERVING}}})",
                        "{{deployment}}",
                    ),
                ),
                unit="percent",
                width=12,
                min=0,
                max=100,
                custom={"lineInterpolation": "stepAfter"},
            ),
            Panel(
                "Analysis measurements",
                "Analysis measurements per interval by check and verdict.",
                (
                    Target(
                        "sum by (deployment, metric, phase) (increase("
                        f"modelwerk_analysis_measurements_total{{{SERVING}}}[$__rate_interval]))",
                        "{{deployment}} {{metric}} {{phase}}",
                    ),
                ),
                width=12,
                custom={"drawStyle": "bars", "stacking": {"mode": "normal", "group": "A"}},
            ),
            Panel(
                "Finished rollouts",
                "Rollouts that ended in the range, by outcome.",
                (
                    Target(
                        "sum by (outcome) "
                        f"(increase(modelwerk_rollouts_total{{{NAMESPACE}}}[$__range]))",
                        "{{outcome}}",
                        instant=True,
                    ),
                ),
                type="bargauge",
                width=12,
                options={"displayMode": "basic", "orientation": "horizontal"},
            ),
            Panel(
                "Rollout duration p50 / p90",
                "Time from the start of a rollout to its end, by outcome.",
                tuple(
                    Target(
                        f"histogram_quantile({q}, sum by (outcome, le) (increase("
                        f"modelwerk_rollout_duration_seconds_bucket{{{NAMESPACE}}}[$__range])))",
                        f"p{round(q * 100)} {{{{outcome}}}}",
                        instant=True,
                    )
                    for q in (0.5, 0.9)
                ),
                type="bargauge",
                unit="s",
                width=12,
                options={"displayMode": "basic", "orientation": "horizontal"},
            ),
        ),
    ),
    (
        "Experiments",
        (
            Panel(
                "Experiment: B - A with its confidence sequence",
                "Difference of each experiment metric between the arms (B minus A), with the "
                "always-valid confidence sequence: a band that excludes 0 is a decision.",
                tuple(
                    Target(
                        f"max by (deployment, metric) (modelwerk_experiment_{key}{{{SERVING}}})",
                        f"{legend} {{{{deployment}}}} {{{{metric}}}}",
                    )
                    for key, legend in (
                        ("difference", "B - A"),
                        ("ci_low", "low"),
                        ("ci_high", "high"),
                    )
                ),
                width=12,
            ),
            Panel(
                "Experiment: always-valid p-values",
                "Always-valid p-value of each metric (Benjamini-Hochberg adjusted; a decision "
                "at alpha) and the sample-ratio-mismatch p-value of the units (broken below "
                "0.001).",
                (
                    Target(
                        f"max by (deployment, metric) (modelwerk_experiment_p_value{{{SERVING}}})",
                        "p {{deployment}} {{metric}}",
                    ),
                    Target(
                        f"max by (deployment) (modelwerk_experiment_srm_p_value{{{SERVING}}})",
                        "SRM p {{deployment}}",
                    ),
                ),
                width=12,
                custom={"scaleDistribution": {"type": "log", "log": 10}},
                thresholds=((None, "red"), (0.001, "orange"), (0.05, "green")),
            ),
            Panel(
                "Experiment: units and observations per arm",
                "Units assigned to each arm and observations of the primary metric.",
                (
                    Target(
                        f"max by (deployment, arm) (modelwerk_experiment_units{{{SERVING}}})",
                        "units {{deployment}} {{arm}}",
                    ),
                    Target(
                        "max by (deployment, arm) "
                        f"(modelwerk_experiment_observations{{{SERVING}}})",
                        "observations {{deployment}} {{arm}}",
                    ),
                ),
                width=12,
            ),
            Panel(
                "Shadow: agreement with stable",
                "Share of compared rows on which the shadow predicts the stable version's "
                "class, with its 95 % Wilson interval (a shadow step passes once the lower end "
                "clears its minimum).",
                tuple(
                    Target(
                        "max by (deployment, version) "
                        f"(modelwerk_deployment_shadow_{key}{{{SERVING}}})",
                        f"{legend} {{{{deployment}}}} {{{{version}}}}",
                    )
                    for key, legend in (
                        ("agreement", "agreement"),
                        ("agreement_low", "low"),
                        ("agreement_high", "high"),
                    )
                ),
                width=12,
                unit="percentunit",
                max=1,
            ),
            Panel(
                "Shadow: latency and lost copies",
                "The shadow's p99 answer time (as the stable pods measure it) and the copies "
                "that failed, timed out or were dropped.",
                (
                    Target(
                        "max by (deployment, version) "
                        f"(modelwerk_deployment_shadow_latency_p99_seconds{{{SERVING}}})",
                        "p99 s {{deployment}} {{version}}",
                    ),
                    Target(
                        "max by (deployment, version) "
                        f"(modelwerk_deployment_shadow_failed_copies{{{SERVING}}})",
                        "failed {{deployment}}",
                    ),
                    Target(
                        "max by (deployment, version) "
                        f"(modelwerk_deployment_shadow_dropped_copies{{{SERVING}}})",
                        "dropped {{deployment}}",
                    ),
                ),
                width=12,
            ),
            Panel(
                "Experiment: forwards to the other arm",
                "Requests a pod forwarded to the other arm's Service per second, by outcome "
                "(timeouts and errors are served by the receiving pod instead).",
                (
                    Target(
                        "sum by (deployment, outcome) ("
                        + _rate(f"modelwerk_experiment_forwards_total{{{SERVING}}}")
                        + ")",
                        "{{deployment}} {{outcome}}",
                    ),
                ),
                width=12,
                unit="reqps",
            ),
        ),
    ),
    (
        "Training",
        (
            Panel(
                "Training runs",
                "Finished training runs in the range, by outcome.",
                (
                    Target(
                        "sum by (outcome) "
                        f"(increase(modelwerk_training_runs_total{{{NAMESPACE}}}[$__range]))",
                        "{{outcome}}",
                        instant=True,
                    ),
                ),
                type="bargauge",
                options={"displayMode": "basic", "orientation": "horizontal"},
            ),
            Panel(
                "Training duration p50 / p90",
                "Wall time of finished training runs, Job creation to completion.",
                tuple(
                    Target(
                        f"histogram_quantile({q}, sum by (le) (increase("
                        f"modelwerk_training_duration_seconds_bucket{{{NAMESPACE}}}[$__range])))",
                        f"p{round(q * 100)}",
                        instant=True,
                    )
                    for q in (0.5, 0.9)
                ),
                type="stat",
                unit="s",
            ),
            Panel(
                "Holdout metrics of the latest versions",
                "Holdout metrics of each model's latest registered version.",
                (
                    Target(
                        f"max by (namespace, model, metric) (modelwerk_model_metric{{{NAMESPACE}}})",
                        "{{namespace}}/{{model}} {{metric}}",
                        instant=True,
                    ),
                ),
                type="bargauge",
                options={"displayMode": "basic", "orientation": "horizontal"},
            ),
        ),
    ),
    (
        "Operator",
        (
            Panel(
                "Reconciles/s",
                "Reconciles per second by kind and result.",
                (
                    Target(
                        "sum by (kind, result) (" + _rate("modelwerk_reconcile_total") + ")",
                        "{{kind}} {{result}}",
                    ),
                ),
                unit="ops",
            ),
            Panel(
                "Reconcile errors",
                "Share of reconciles that failed, by kind.",
                (
                    Target(
                        "sum by (kind) ("
                        + _rate('modelwerk_reconcile_total{result="error"}')
                        + ")\n/\nsum by (kind) ("
                        + _rate("modelwerk_reconcile_total")
                        + ")",
                        "{{kind}}",
                    ),
                ),
                unit="percentunit",
                min=0,
            ),
            Panel(
                "Reconcile duration p99",
                "Time from reading an object to having applied its plan.",
                (
                    Target(
                        "histogram_quantile(0.99, sum by (kind, le) ("
                        + _rate("modelwerk_reconcile_duration_seconds_bucket")
                        + "))",
                        "{{kind}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Work queue depth",
                "Objects waiting to be reconciled.",
                (Target("max(modelwerk_workqueue_depth)", "depth"),),
                width=12,
                thresholds=((None, "green"), (100, "red")),
            ),
            Panel(
                "Operator up",
                "Whether Prometheus scrapes the operator.",
                (Target('max(up{job="modelwerk-operator"})', "up", instant=True),),
                type="stat",
                width=12,
                mappings=(
                    {
                        "type": "value",
                        "options": {
                            "0": {"text": "down", "color": "red", "index": 0},
                            "1": {"text": "up", "color": "green", "index": 1},
                        },
                    },
                    {
                        "type": "special",
                        "options": {"match": "null", "result": {"text": "no data", "color": "red"}},
                    },
                ),
                thresholds=((None, "red"), (1, "green")),
            ),
        ),
    ),
)


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-variable"},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "thresholds": {
            "mode": "absolute",
            "steps": [{"value": v, "color": c} for v, c in panel.thresholds],
        },
        "mappings": list(panel.mappings),
    }
    if panel.type == "timeseries":
        defaults["custom"] = {"fillOpacity": 10, "showPoints": "never", **panel.custom}
    for bound in ("min", "max"):
        if getattr(panel, bound) is not None:
            defaults[bound] = getattr(panel, bound)
    return {
        "id": panel_id,
        "type": panel.type,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, **panel.options},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": t.expr,
                "legendFormat": t.legend,
                "range": not t.instant,
                "instant": t.instant,
            }
            for i, t in enumerate(panel.targets)
        ],
    }


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    for title, row in ROWS:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
                "panels": [],
            }
        )
        y += 1
        x, line_height = 0, 0
        for panel in row:
            if x + panel.width > 24:
                x, y, line_height = 0, y + line_height, 0
            panels.append(_panel(panel, len(panels) + 1, x, y))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return {
        "uid": "modelwerk",
        "title": "modelwerk",
        "description": "Model serving, rollouts, training and the operator "
        "(manifests/components/monitoring).",
        "tags": ["modelwerk", "mlops"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "links": [],
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                _variable(
                    "namespace",
                    "Namespace",
                    "label_values(modelwerk_model_info, namespace)",
                ),
                _variable(
                    "deployment",
                    "Deployment",
                    'label_values(modelwerk_model_info{namespace=~"$namespace"}, deployment)',
                ),
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is stale")
    args = parser.parse_args(argv)
    wanted = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != wanted:
            print(f"{OUTPUT} is stale: run python hack/monitoring/grafana_dashboard.py")
            return 1
        return 0
    OUTPUT.write_text(wanted)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
