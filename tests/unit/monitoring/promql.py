"""Which series modelwerk really exposes, and a PromQL checker that holds queries to them.

The catalog is read from the live registries: the operator's ``modelwerk.metrics.REGISTRY`` and
the registry of a freshly built model server ``ServerMetrics``. ``ROLLOUT_CONTRACT`` is what the
rollout contract of issue #5 promises; ``test_rules`` checks the operator registers exactly that.

Queries are parsed with ``promql-parser`` (the Rust parser GreptimeDB uses) and walked: every
selector must name an exposed series, every label a query matches or groups on must exist on the
series it uses, and rate-like functions only take counters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import promql_parser as pp
from prometheus_client import CollectorRegistry

import modelwerk.experiment_metrics  # noqa: F401  (registers the experiment gauges)
from modelwerk.metrics import REGISTRY as OPERATOR_REGISTRY
from modelwerk.runtime.server.experiment import ExperimentMetrics
from modelwerk.runtime.server.metrics import ServerMetrics

# Target labels the component's scrape configs attach (serving_pod_monitor.yaml,
# operator_service_monitor.yaml; the Prometheus Operator adds container/endpoint/service).
SCRAPE_LABELS = frozenset({"job", "instance", "namespace", "pod", "container", "endpoint"})
SERVING_TARGET_LABELS = SCRAPE_LABELS | {"deployment", "track"}
OPERATOR_TARGET_LABELS = SCRAPE_LABELS | {"service"}

# issue #5 contract: name (as registered, counters without _total) -> (type, labels).
ROLLOUT_CONTRACT: dict[str, tuple[str, frozenset[str]]] = {
    "modelwerk_rollout_phase": ("gauge", frozenset({"namespace", "deployment", "phase"})),
    "modelwerk_rollout_canary_weight": ("gauge", frozenset({"namespace", "deployment"})),
    "modelwerk_rollouts": ("counter", frozenset({"namespace", "outcome"})),
    "modelwerk_rollout_duration_seconds": ("histogram", frozenset({"namespace", "outcome"})),
    "modelwerk_analysis_measurements": (
        "counter",
        frozenset({"namespace", "deployment", "metric", "phase"}),
    ),
    "modelwerk_deployment_drift_score": ("gauge", frozenset({"namespace", "deployment"})),
    "modelwerk_drift_detected": ("counter", frozenset({"namespace", "deployment"})),
    "modelwerk_retraining_runs": ("counter", frozenset({"namespace", "deployment"})),
}

_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
    "info": ("_info",),
}
_RATE_FUNCTIONS = {"rate", "irate", "increase", "resets"}


@dataclass(frozen=True)
class Series:
    name: str
    """The exposed sample name, for example modelwerk_model_requests_total."""
    family: str
    type: str
    labels: frozenset[str]
    """The series' own labels plus the target labels of the job that scrapes it."""
    source: str
    """operator, server or prometheus."""
    own: frozenset[str] = frozenset()
    """The labels the exporting code sets itself."""

    def describes(self, label: str) -> bool:
        """Whether ``label`` says which modelwerk object the series is about.

        Serving pods are scraped per Deployment, so their target labels namespace and deployment
        name the object; the operator's target labels only name the operator's own pod.
        """
        return label in self.own or (self.source == "server" and label in SERVING_TARGET_LABELS)

    @property
    def is_counter_like(self) -> bool:
        return self.type == "counter" or self.name.endswith(("_bucket", "_sum", "_count"))


def families(registry: CollectorRegistry) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, label names) of every metric family registered on ``registry``."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    # prometheus_client has no public accessor for a collector's label names; these attributes
    # have been stable since 0.4. A rename makes this raise, never pass silently.
    for collector in list(registry._collector_to_names):
        if not hasattr(collector, "_name"):  # a custom collector: its families describe it
            for family in collector.describe():  # type: ignore[attr-defined]
                found[family.name] = (family.type, frozenset(family._labelnames))
            continue
        name, type_ = collector._name, collector._type  # type: ignore[attr-defined]
        found[name] = (type_, frozenset(collector._labelnames))  # type: ignore[attr-defined]
    return found


def server_families() -> dict[str, tuple[str, frozenset[str]]]:
    """Both shapes of the model server: classifier (class counts) and regressor (values)."""
    classifier = ServerMetrics("m", "1", "0" * 64, classes=["a", "b"])
    regressor = ServerMetrics("m", "1", "0" * 64, classes=None)
    ExperimentMetrics(classifier.registry, "1")  # the A/B router's, in the same registry
    return families(classifier.registry) | families(regressor.registry)


def _expand(
    found: dict[str, tuple[str, frozenset[str]]], source: str, target: frozenset[str]
) -> dict[str, Series]:
    out: dict[str, Series] = {}
    for family, (type_, labels) in found.items():
        for suffix in _SUFFIXES[type_]:
            extra = {"le"} if suffix == "_bucket" else set()
            if type_ == "summary" and suffix == "":
                extra = {"quantile"}
            # An own label and a target label of the same name: the operator's ServiceMonitor
            # sets honorLabels, so its series keep their own namespace.
            out[family + suffix] = Series(
                family + suffix, family, type_, labels | target | extra, source, labels
            )
    return out


def catalog() -> dict[str, Series]:
    """Every series name a query may use."""
    series = _expand(server_families(), "server", SERVING_TARGET_LABELS)
    series |= _expand(families(OPERATOR_REGISTRY), "operator", OPERATOR_TARGET_LABELS)
    # Prometheus writes up{} for every target itself.
    series["up"] = Series(
        "up", "up", "gauge", SERVING_TARGET_LABELS | OPERATOR_TARGET_LABELS, "prometheus"
    )
    return series


_GRAFANA_RANGES = re.compile(r"\$__(rate_interval|interval|range)(_ms|_s)?\b|\$\{__\w+\}")
_GRAFANA_VARS = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def grafana_to_promql(expr: str) -> str:
    """A Grafana target with its variables replaced, so that a PromQL parser accepts it.

    >>> grafana_to_promql('rate(x{namespace=~"$namespace"}[$__rate_interval])')
    'rate(x{namespace=~"namespace"}[5m])'
    """
    expr = _GRAFANA_RANGES.sub("5m", expr)
    return _GRAFANA_VARS.sub(lambda m: m.group(1) or m.group(2), expr)


def grafana_variables(expr: str) -> set[str]:
    """Template variables a Grafana target refers to (built-in ``$__`` ones excluded)."""
    return {
        name
        for m in _GRAFANA_VARS.finditer(expr)
        if not (name := m.group(1) or m.group(2)).startswith("__")
    }


@dataclass(frozen=True)
class Usage:
    """What one expression reads."""

    series: frozenset[str]
    problems: tuple[str, ...]


def check(expr: str, known: dict[str, Series]) -> Usage:
    """Parse ``expr`` and report every name or label it uses that is not exposed."""
    try:
        tree = pp.parse(expr)
    except Exception as exc:  # the parser raises a bare ValueError-like error
        return Usage(frozenset(), (f"does not parse: {exc}",))
    problems: list[str] = []
    used: set[str] = set()
    grouping: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, pp.VectorSelector):
            name = node.name
            matchers = node.matchers.matchers
            if name is None:
                problems.append(f"selector without a metric name: {node}")
                return
            used.add(name)
            series = known.get(name)
            if series is None:
                problems.append(f"unknown series {name}")
                return
            for matcher in matchers:
                if matcher.name not in series.labels:
                    problems.append(f"{name} has no label {matcher.name}")
        elif isinstance(node, pp.AggregateExpr) and node.modifier is not None:
            grouping.update(node.modifier.labels)
        elif isinstance(node, pp.BinaryExpr) and node.modifier is not None:
            modifier = node.modifier
            if modifier.matching is not None:
                grouping.update(modifier.matching.labels)
            grouping.update(modifier.group_labels or ())
        elif isinstance(node, pp.Call) and node.func.name in _RATE_FUNCTIONS:
            for arg in node.args:
                if isinstance(arg, pp.MatrixSelector):
                    name = arg.vector_selector.name
                    series = known.get(name or "")
                    if series is not None and not series.is_counter_like:
                        problems.append(f"{node.func.name}() of {name}, which is a {series.type}")
        elif isinstance(node, pp.Call) and node.func.name == "histogram_quantile":
            inner = _selectors(node.args[1])
            if not inner or not all(n.endswith("_bucket") for n in inner):
                problems.append(f"histogram_quantile over {sorted(inner)}, not buckets")

    pp.walk(tree, visit)
    available = set().union(*(known[n].labels for n in used if n in known))
    for label in sorted(grouping - available):
        problems.append(f"groups or matches on {label}, which none of {sorted(used)} has")
    return Usage(frozenset(used), tuple(problems))


def _selectors(node: pp.Expr) -> set[str]:
    names: set[str] = set()

    def visit(inner: object) -> None:
        if isinstance(inner, pp.VectorSelector) and inner.name:
            names.add(inner.name)

    pp.walk(node, visit)
    return names
