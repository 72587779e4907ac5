"""Prometheus configuration generated from manifests/components/monitoring, as the Prometheus
Operator generates it, for a plain Prometheus server.

Owns: the translation of the component's ServiceMonitor and PodMonitor into
``scrape_configs`` (Kubernetes service discovery plus the operator's default relabelling,
then the monitors' own ``relabelings``), and of its PrometheusRule into a rule file. The e2e
tier runs a real Prometheus with them, so the labels the rules, the dashboard and an
analysis's ``prometheusUrl`` queries rely on are the ones these manifests really produce.

Only the fields the component uses are translated; any other field raises
:class:`UnsupportedField`, so a monitor edited beyond what this knows fails loudly instead of
being scraped differently from how the Prometheus Operator would scrape it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

COMPONENT = Path(__file__).resolve().parents[2] / "manifests" / "components" / "monitoring"
JSON = dict[str, Any]

_SELECTOR_FIELDS = {"matchLabels", "matchExpressions"}
_ENDPOINT_FIELDS = {"port", "path", "interval", "honorLabels", "relabelings"}
_RELABEL_FIELDS = {
    "sourceLabels": "source_labels",
    "separator": "separator",
    "targetLabel": "target_label",
    "regex": "regex",
    "modulus": "modulus",
    "replacement": "replacement",
    "action": "action",
}


class UnsupportedField(ValueError):
    """A monitor uses a field this translation does not implement."""


def component_objects() -> list[JSON]:
    """The ServiceMonitor, PodMonitor and PrometheusRule of the component, as written."""
    found: list[JSON] = []
    for name in (
        "operator_service_monitor.yaml",
        "serving_pod_monitor.yaml",
        "prometheus_rule.yaml",
    ):
        found += [d for d in yaml.safe_load_all((COMPONENT / name).read_text()) if d]
    return found


def rule_file() -> JSON:
    """The PrometheusRule's groups as a Prometheus rule file."""
    (rule,) = [o for o in component_objects() if o["kind"] == "PrometheusRule"]
    return {"groups": rule["spec"]["groups"]}


def scrape_configs(kubeconfig_file: str) -> list[JSON]:
    """One scrape config per monitor endpoint; discovery authenticates with ``kubeconfig_file``."""
    configs: list[JSON] = []
    for obj in component_objects():
        if obj["kind"] == "ServiceMonitor":
            configs += _service_monitor(obj, kubeconfig_file)
        elif obj["kind"] == "PodMonitor":
            configs += _pod_monitor(obj, kubeconfig_file)
    return configs


def _check(where: str, given: JSON, known: set[str]) -> None:
    unknown = set(given) - known
    if unknown:
        raise UnsupportedField(f"{where}: {sorted(unknown)} not translated (tests/e2e/monitors.py)")


def _sanitize(label: str) -> str:
    """A Kubernetes label name as Prometheus' service discovery spells it in meta labels."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def _namespaces(monitor: JSON, kubeconfig_file: str, role: str) -> JSON:
    selector = monitor["spec"].get("namespaceSelector") or {}
    _check("namespaceSelector", selector, {"any", "matchNames"})
    sd: JSON = {"role": role, "kubeconfig_file": kubeconfig_file}
    if selector.get("any"):
        return sd
    names = selector.get("matchNames") or [monitor["metadata"]["namespace"]]
    return {**sd, "namespaces": {"names": names}}


def _selection(selector: JSON, kind: str) -> list[JSON]:
    """``keep`` relabellings for a label selector on the pod or service labels."""
    _check("selector", selector, _SELECTOR_FIELDS)
    meta = f"__meta_kubernetes_{kind}_label"
    present = f"__meta_kubernetes_{kind}_labelpresent"
    rules: list[JSON] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        rules.append(
            {
                "action": "keep",
                "source_labels": [f"{meta}_{_sanitize(key)}", f"{present}_{_sanitize(key)}"],
                "regex": f"({re.escape(value)});true",
            }
        )
    for expression in selector.get("matchExpressions") or []:
        key, operator = _sanitize(expression["key"]), expression["operator"]
        if operator == "Exists":
            rules.append({"action": "keep", "source_labels": [f"{present}_{key}"], "regex": "true"})
        elif operator == "DoesNotExist":
            rules.append({"action": "drop", "source_labels": [f"{present}_{key}"], "regex": "true"})
        else:
            values = "|".join(re.escape(v) for v in expression.get("values", []))
            action = "keep" if operator == "In" else "drop"
            rules.append(
                {"action": action, "source_labels": [f"{meta}_{key}"], "regex": f"({values})"}
            )
    return rules


def _relabelings(endpoint: JSON) -> list[JSON]:
    rules = []
    for rule in endpoint.get("relabelings") or []:
        _check("relabelings", rule, set(_RELABEL_FIELDS))
        translated = {_RELABEL_FIELDS[k]: v for k, v in rule.items()}
        if "action" in translated:
            translated["action"] = str(translated["action"]).lower()
        rules.append(translated)
    return rules


def _scrape(monitor: JSON, index: int, endpoint: JSON, sd: JSON, relabel: list[JSON]) -> JSON:
    _check("endpoint", endpoint, _ENDPOINT_FIELDS)
    meta = monitor["metadata"]
    kind = "serviceMonitor" if monitor["kind"] == "ServiceMonitor" else "podMonitor"
    config: JSON = {
        "job_name": f"{kind}/{meta['namespace']}/{meta['name']}/{index}",
        "honor_labels": bool(endpoint.get("honorLabels", False)),
        "metrics_path": endpoint.get("path", "/metrics"),
        "kubernetes_sd_configs": [sd],
        "relabel_configs": [*relabel, *_relabelings(endpoint)],
    }
    if "interval" in endpoint:
        config["scrape_interval"] = endpoint["interval"]
    return config


_FINISHED_PODS = {
    "action": "drop",
    "source_labels": ["__meta_kubernetes_pod_phase"],
    "regex": "(Failed|Succeeded)",
}


def _pod_monitor(monitor: JSON, kubeconfig_file: str) -> list[JSON]:
    spec = monitor["spec"]
    _check("PodMonitor spec", spec, {"namespaceSelector", "selector", "podMetricsEndpoints"})
    meta = monitor["metadata"]
    configs = []
    for index, endpoint in enumerate(spec["podMetricsEndpoints"]):
        relabel = [
            *_selection(spec["selector"], "pod"),
            _FINISHED_PODS,
            {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                "regex": endpoint["port"],
            },
            *_defaults("pod"),
            {"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"},
            {"target_label": "endpoint", "replacement": endpoint["port"]},
        ]
        sd = _namespaces(monitor, kubeconfig_file, "pod")
        configs.append(_scrape(monitor, index, endpoint, sd, relabel))
    return configs


def _service_monitor(monitor: JSON, kubeconfig_file: str) -> list[JSON]:
    spec = monitor["spec"]
    _check("ServiceMonitor spec", spec, {"namespaceSelector", "selector", "endpoints"})
    configs = []
    for index, endpoint in enumerate(spec["endpoints"]):
        relabel = [
            *_selection(spec["selector"], "service"),
            {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_endpoint_port_name"],
                "regex": endpoint["port"],
            },
            {
                "source_labels": [
                    "__meta_kubernetes_endpoint_address_target_kind",
                    "__meta_kubernetes_endpoint_address_target_name",
                ],
                "separator": ";",
                "regex": "Pod;(.*)",
                "replacement": "${1}",
                "target_label": "pod",
            },
            _FINISHED_PODS,
            *_defaults("service"),
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"},
            {"target_label": "endpoint", "replacement": endpoint["port"]},
        ]
        sd = _namespaces(monitor, kubeconfig_file, "endpoints")
        configs.append(_scrape(monitor, index, endpoint, sd, relabel))
    return configs


def _defaults(role: str) -> list[JSON]:
    """The target labels the Prometheus Operator sets before a monitor's own relabelings."""
    rules = [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
    ]
    if role == "service":
        rules.append(
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"}
        )
    rules.append({"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"})
    return rules


def prometheus_config(kubeconfig_file: str, rule_file_path: str) -> JSON:
    """A whole configuration: the monitors' scrape configs and the component's rules.

    Rules are evaluated every 15 s (a server setting, not the component's; the rules have no
    group interval, so a real install evaluates them at its own global interval).
    """
    return {
        "global": {"scrape_interval": "30s", "evaluation_interval": "15s"},
        "rule_files": [rule_file_path],
        "scrape_configs": scrape_configs(kubeconfig_file),
    }
