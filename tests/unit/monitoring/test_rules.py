"""The PrometheusRule of the monitoring component only reads series modelwerk really exposes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelwerk.metrics import REGISTRY as OPERATOR_REGISTRY

from .promql import ROLLOUT_CONTRACT, catalog, check, families, server_families

ROOT = Path(__file__).resolve().parents[3]
COMPONENT = ROOT / "manifests" / "components" / "monitoring"
KNOWN = catalog()


def rule_file() -> dict[str, Any]:
    doc = yaml.safe_load((COMPONENT / "prometheus_rule.yaml").read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    return dict(doc)


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_file()["spec"]["groups"] for rule in group["rules"]]


def _id(rule: dict[str, Any]) -> str:
    return str(rule.get("alert") or rule.get("record"))


@pytest.mark.parametrize("rule", rules(), ids=_id)
def test_every_expression_reads_only_exposed_series(rule: dict[str, Any]) -> None:
    usage = check(rule["expr"], KNOWN)
    assert usage.problems == ()
    assert usage.series


@pytest.mark.parametrize("rule", rules(), ids=_id)
def test_every_alert_is_actionable(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"Modelwerk[A-Z][A-Za-z]+", rule["alert"])
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s"))
    # Every expression aggregates, so its templates can only use labels it groups by.
    templated = set(re.findall(r"\$labels\.(\w+)", rule["annotations"]["description"]))
    grouped = {
        label.strip()
        for by in re.findall(r"by \(([^)]*)\)", rule["expr"])
        for label in by.split(",")
    }
    assert templated <= grouped


def test_alert_names_are_unique() -> None:
    names = [_id(r) for r in rules()]
    assert len(names) == len(set(names))


def test_the_issue_asks_for_these_alerts() -> None:
    """Drift, error rate, latency, accuracy, stuck and aborted rollouts, the operator's health."""
    by_series: dict[str, set[str]] = {}
    for rule in rules():
        for name in check(rule["expr"], KNOWN).series:
            by_series.setdefault(name, set()).add(rule["alert"])
    assert by_series["modelwerk_drift_detected_total"] == {"ModelwerkDriftDetected"}
    assert by_series["modelwerk_model_feature_drift"] == {"ModelwerkFeatureDriftHigh"}
    assert "ModelwerkServingErrorRateHigh" in by_series["modelwerk_model_requests_total"]
    assert by_series["modelwerk_model_request_seconds_bucket"] == {"ModelwerkServingLatencyHigh"}
    assert by_series["modelwerk_model_live_accuracy"] == {"ModelwerkLiveAccuracyLow"}
    assert by_series["modelwerk_deployment_live_accuracy"] == {"ModelwerkLiveAccuracyLow"}
    assert by_series["modelwerk_deployment_capture_failing_pods"] == {"ModelwerkCaptureFailing"}
    assert {"ModelwerkRolloutStuck", "ModelwerkRolloutAborted"} <= by_series[
        "modelwerk_rollout_phase"
    ]
    assert by_series["modelwerk_reconcile_total"] == {"ModelwerkReconcileErrors"}
    assert by_series["up"] == {"ModelwerkOperatorDown"}


def test_the_operator_registers_the_rollout_metrics_of_the_contract() -> None:
    """Type and labels of the issue #5 rollout metrics, which the rules and the dashboard read."""
    registered = families(OPERATOR_REGISTRY)
    for name, spec in ROLLOUT_CONTRACT.items():
        assert registered.get(name) == spec, name


def test_rules_read_these_rollout_series() -> None:
    used = set().union(*(check(r["expr"], KNOWN).series for r in rules()))
    rollout = {f"{n}_total" if t == "counter" else n for n, (t, _) in ROLLOUT_CONTRACT.items()}
    assert used & rollout == {"modelwerk_rollout_phase", "modelwerk_drift_detected_total"}


def test_the_catalog_comes_from_the_registries() -> None:
    assert KNOWN["modelwerk_reconcile_total"].labels >= {"kind", "result"}
    assert KNOWN["modelwerk_model_requests_total"].labels >= {"code", "deployment", "track"}
    assert KNOWN["modelwerk_model_request_seconds_bucket"].labels >= {"le", "version"}
    assert "modelwerk_model_predictions_total" in KNOWN  # classifier
    assert "modelwerk_model_prediction_value_bucket" in KNOWN  # regressor
    assert "modelwerk_model_requests" not in KNOWN  # a counter is exposed with _total only
    assert set(server_families()) >= {"modelwerk_model_live_accuracy", "modelwerk_model_info"}


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("modelwerk_model_request_total", "unknown series modelwerk_model_request_total"),
        ('modelwerk_reconcile_total{deployment="x"}', "has no label deployment"),
        ("rate(modelwerk_workqueue_depth[5m])", "rate() of modelwerk_workqueue_depth"),
        ("histogram_quantile(0.9, modelwerk_model_requests_total)", "not buckets"),
        ("sum by (kind) (modelwerk_model_live_accuracy)", "groups or matches on kind"),
        ('{__name__="up"}', "without a metric name"),
        ("sum(rate(x[5m]) by", "does not parse"),
    ],
)
def test_the_checker_catches(expr: str, problem: str) -> None:
    assert any(problem in p for p in check(expr, KNOWN).problems), check(expr, KNOWN)
