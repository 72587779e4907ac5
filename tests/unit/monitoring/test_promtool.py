"""The PrometheusRule checked and unit-tested by Prometheus' own promtool.

``promtool check rules`` parses every expression and template the way Prometheus will;
``promtool test rules`` replays the synthetic series of alerts_test.yaml and asserts which
alerts fire when, with which labels and rendered annotations. promtool comes from
hack/tools.py (Debian's prometheus package, fetched once into a cache).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.cluster.hack import tool
from tests.e2e import monitors

from .promql import grafana_to_promql

ROOT = Path(__file__).resolve().parents[3]
RULE = ROOT / "manifests" / "components" / "monitoring" / "prometheus_rule.yaml"
ALERT_TESTS = Path(__file__).with_name("alerts_test.yaml")
DASHBOARD = ROOT / "manifests" / "components" / "monitoring" / "grafana" / "modelwerk.json"


@pytest.fixture(scope="session")
def promtool() -> Path:
    return tool("promtool")


def _run(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The PrometheusRule's groups as a plain Prometheus rule file, beside the alert tests."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(monitors.rule_file()))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    return tmp_path


def test_promtool_accepts_the_rules(promtool: Path, rules_dir: Path) -> None:
    done = _run(promtool, "check", "rules", "rules.yaml", cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_every_alert_fires_as_specified(promtool: Path, rules_dir: Path) -> None:
    done = _run(promtool, "test", "rules", ALERT_TESTS.name, cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_promtool_test() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULE.read_text())["spec"]["groups"]
        for rule in group["rules"]
    }
    tested = {
        case["alertname"]
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == alerts


def test_promtool_rejects_a_broken_rule(promtool: Path, tmp_path: Path) -> None:
    """The checks above can fail: promtool refuses what Prometheus would refuse."""
    broken = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(rate(x[5m]) by"}]}]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(broken))
    assert _run(promtool, "check", "rules", "rules.yaml", cwd=tmp_path).returncode != 0


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def _all_values(expr: str) -> str:
    """A dashboard query as Grafana sends it with "All" selected in every variable."""
    return grafana_to_promql(re.sub(r"\$(namespace|deployment)\b", ".*", expr))


def test_prometheus_accepts_every_dashboard_query(promtool: Path, tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{i}", "expr": _all_values(expr)}
        for i, (_, expr) in enumerate(_dashboard_queries())
    ]
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "d", "rules": rules}]})
    )
    done = _run(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_phase_timeline_gives_each_deployment_its_phase_number(
    promtool: Path, tmp_path: Path
) -> None:
    (expr,) = [e for title, e in _dashboard_queries() if title == "Rollout phase"]
    phases = ("Healthy", "Progressing", "Paused", "Degraded", "Aborted")
    current = {"a": "Healthy", "b": "Paused", "c": "Aborted"}
    series = [
        {
            "series": f'modelwerk_rollout_phase{{namespace="team", deployment="{dep}", phase="{p}"}}',
            "values": "1x5" if p == phase else "0x5",
        }
        for dep, phase in current.items()
        for p in phases
    ]
    samples = [
        {"labels": f'{{namespace="team", deployment="{dep}"}}', "value": phases.index(phase) + 1}
        for dep, phase in current.items()
    ]
    (tmp_path / "timeline_test.yaml").write_text(
        yaml.safe_dump(
            {
                "rule_files": [],
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": series,
                        "promql_expr_test": [
                            {"expr": _all_values(expr), "eval_time": "2m", "exp_samples": samples}
                        ],
                    }
                ],
            }
        )
    )
    done = _run(promtool, "test", "rules", "timeline_test.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_monitors_translate_into_the_scrape_configs_the_operator_would_write() -> None:
    """What the e2e tier runs Prometheus with (tests/e2e/monitors.py): the ServiceMonitor and
    PodMonitor as scrape configs. The server there refuses a configuration it cannot load;
    Debian's promtool cannot check it here, being built without Kubernetes discovery."""
    config = monitors.prometheus_config("kubeconfig", "rules.yaml")
    jobs = {c["job_name"]: c for c in config["scrape_configs"]}
    assert set(jobs) == {
        "serviceMonitor/modelwerk-system/modelwerk-operator/0",
        "podMonitor/modelwerk-system/modelwerk-serving/0",
    }
    serving = jobs["podMonitor/modelwerk-system/modelwerk-serving/0"]
    assert serving["kubernetes_sd_configs"][0]["role"] == "pod"
    assert "namespaces" not in serving["kubernetes_sd_configs"][0]  # namespaceSelector: any
    targets = [r.get("target_label") for r in serving["relabel_configs"]]
    # The monitor's own relabelings come last, after the operator's defaults, so they win.
    assert targets[-5:] == ["job", "namespace", "pod", "deployment", "track"]
    operator = jobs["serviceMonitor/modelwerk-system/modelwerk-operator/0"]
    assert operator["honor_labels"] is True
    assert operator["kubernetes_sd_configs"][0]["namespaces"] == {"names": ["modelwerk-system"]}


def test_a_monitor_field_the_translation_does_not_know_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = monitors.component_objects()
    for obj in objects:
        if obj["kind"] == "PodMonitor":
            obj["spec"]["podMetricsEndpoints"][0]["scheme"] = "https"
    monkeypatch.setattr(monitors, "component_objects", lambda: objects)
    with pytest.raises(monitors.UnsupportedField, match="scheme"):
        monitors.scrape_configs("kubeconfig")
