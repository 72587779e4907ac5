"""``kubectl modelwerk status``: one Deployment, everything a person steering a rollout needs.

Pure: the object as the API server returns it in, text out. Every status field may be missing
(a fresh object, an older operator), so nothing here assumes one is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from modelwerk.api.commands import COMMAND_ANNOTATION
from modelwerk.plugin.render_experiment import render_experiment
from modelwerk.plugin.render_shadow import render_shadow, shadow_step_text
from modelwerk.plugin.text import (
    NONE,
    age,
    cell,
    fields,
    human_duration,
    items,
    mapping,
    parse_time,
    percent,
    seconds_text,
    table,
)

DONE, CURRENT, FAILED = "✔", "▶", "✖"
_MEASUREMENTS_SHOWN = 10
_DEFAULT_ANALYSIS = {"count": 3, "intervalSeconds": 30}


def render_status(obj: Mapping[str, Any], now: datetime) -> str:
    """The full view of one modelwerk Deployment at ``now``."""
    view = _View(obj, now)
    sections = [
        view.summary(),
        view.steps(),
        view.blue_green(),
        view.analysis_runs(),
        render_experiment(obj, now),
        render_shadow(obj, now),
        view.conditions(),
        view.endpoints(),
        view.monitoring(),
        view.next_steps(),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def metric_value(metric: str, value: object) -> str:
    """A measured or configured value in the unit people read it in.

    >>> metric_value("errorRate", 0.0123), metric_value("latency", 0.25), metric_value("latency", 1.5)
    ('1.23%', '250ms', '1.5s')
    >>> metric_value("accuracy", 0.9312), metric_value("drift", 0.2), metric_value("latency", None)
    ('0.931', '0.2', '-')
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        return NONE
    if metric == "errorRate":
        return f"{value * 100:.2f}%"
    if metric == "latency":
        return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.3g}s"
    if metric == "accuracy":
        return f"{value:.3f}"
    return f"{value:.4g}"


def check_text(check: Mapping[str, Any]) -> str:
    """One analysis check as a bound, e.g. ``latency p99 ≤ 250ms``.

    >>> check_text({"metric": "latency", "quantile": 0.99, "max": 0.25})
    'latency p99 ≤ 250ms'
    >>> check_text({"metric": "accuracy", "min": 0.9}), check_text({"metric": "drift", "min": 0, "max": 0.3})
    ('accuracy ≥ 0.900', 'drift in [0, 0.3]')
    """
    metric = str(check.get("metric", "?"))
    name = metric
    if metric == "latency":
        name += f" p{float(check.get('quantile', 0.99)) * 100:g}"
    return f"{name} {bound_text(metric, check)}".rstrip()


def bound_text(metric: str, check: Mapping[str, Any]) -> str:
    low, high = check.get("min"), check.get("max")
    if low is not None and high is not None:
        return f"in [{metric_value(metric, low)}, {metric_value(metric, high)}]"
    if high is not None:
        return f"≤ {metric_value(metric, high)}"
    if low is not None:
        return f"≥ {metric_value(metric, low)}"
    return ""


def step_text(step: Mapping[str, Any], analysis: Mapping[str, Any] | None) -> str:
    """One canary step: its weight, its pause, or the analysis it runs (``analysis`` is the
    spec's, None when the spec has none).

    >>> step_text({"setWeight": 20}, None), step_text({"pause": {}}, None)
    ('setWeight 20%', 'pause until promoted')
    >>> step_text({"pause": {"durationSeconds": 90}}, None)
    'pause 1m30s'
    >>> step_text({"analysis": {"count": 5}}, {"checks": [{"metric": "errorRate", "max": 0.01}]})
    'analysis: errorRate ≤ 1.00%; 5 measurements 30s apart'
    >>> step_text({"analysis": {}}, None)
    'analysis: none configured (spec.analysis), passes at once'
    """
    if "setWeight" in step:
        return f"setWeight {percent(step['setWeight'])}"
    if "pause" in step:
        duration = mapping(step["pause"]).get("durationSeconds")
        return f"pause {seconds_text(duration)}" if duration is not None else "pause until promoted"
    if "analysis" in step:
        if analysis is None:
            return "analysis: none configured (spec.analysis), passes at once"
        settings = {**_DEFAULT_ANALYSIS, **analysis}
        count = mapping(step["analysis"]).get("count") or settings["count"]
        checks = [check_text(c) for c in items(analysis.get("checks"))] or ["pods Ready"]
        every = seconds_text(settings["intervalSeconds"])
        counted = f"{count} measurements {every} apart" if count != 1 else "1 measurement"
        return f"analysis: {', '.join(checks)}; {counted}"
    if "shadow" in step:
        return shadow_step_text(mapping(step["shadow"]))
    return "(unknown step)"


class _View:
    """Reads one object once; each method renders one section, or "" when it has nothing."""

    def __init__(self, obj: Mapping[str, Any], now: datetime) -> None:
        self.now = now
        self.meta = mapping(obj.get("metadata"))
        self.spec = mapping(obj.get("spec"))
        self.status = mapping(obj.get("status"))
        self.name = str(self.meta.get("name", "?"))
        strategy = mapping(self.spec.get("strategy"))
        self.canary = mapping(strategy.get("canary")) if "canary" in strategy else None
        self.bluegreen = mapping(strategy.get("blueGreen")) if "blueGreen" in strategy else None
        self.analysis = (
            mapping(self.spec["analysis"]) if self.spec.get("analysis") is not None else None
        )
        self.phase = self.status.get("phase")
        self.in_rollout = bool(self.status.get("canaryVersion"))
        index = self.status.get("currentStepIndex")
        # An aborted rollout keeps its step index: the view marks the step it failed at.
        tracked = self.in_rollout or self.phase == "Aborted"
        self.step_index = index if tracked and isinstance(index, int) else None

    # -- summary --------------------------------------------------------------------------

    def strategy(self) -> str:
        if self.status.get("strategy"):
            return str(self.status["strategy"])
        if self.canary is not None:
            return "Canary"
        return "BlueGreen" if self.bluegreen is not None else "Replace"

    def summary(self) -> str:
        s = self.status
        phase = cell(self.phase)
        if s.get("paused"):
            phase += " (paused by a person)"
        pairs = [
            ("Name", self.name),
            ("Namespace", cell(self.meta.get("namespace"))),
            ("Model", self._model()),
            ("Phase", phase),
            ("Message", cell(s.get("message"))),
            ("Strategy", self.strategy()),
            ("Stable", self._version(s.get("stableVersion"), s.get("activeColor"))),
        ]
        if self.in_rollout:
            label = {"Canary": "Canary", "BlueGreen": "Preview"}.get(self.strategy(), "New")
            pairs.append((label, self._version(s.get("canaryVersion"), self._idle_color())))
        if s.get("activeColor"):
            pairs.append(("Active color", str(s["activeColor"])))
        if self.canary is not None and self.step_index is not None:
            steps = items(self.canary.get("steps"))
            if steps:
                pairs.append(("Step", f"{min(self.step_index + 1, len(steps))}/{len(steps)}"))
        weighted = self.strategy() == "Canary" and self.in_rollout
        if weighted or s.get("canaryWeight") is not None or s.get("actualWeight") is not None:
            asked, actual = percent(s.get("canaryWeight")), percent(s.get("actualWeight"))
            pairs.append(("Weight", f"{asked} asked, {actual} actual"))
        pairs.append(("Replicas", self._replicas()))
        if s.get("rolloutStartTime") and self.in_rollout:
            pairs.append(("Rollout started", f"{age(s['rolloutStartTime'], self.now)} ago"))
        scale_down = parse_time(s.get("scaleDownTime"))
        if scale_down and scale_down > self.now:
            left = human_duration((scale_down - self.now).total_seconds())
            pairs.append(("Scale-down", f"previous color scales to zero in {left}"))
        if s.get("abortedVersion"):
            pairs.append(("Aborted", self._aborted()))
        pairs += self._command()
        pairs += self._notes()
        return fields(pairs)

    def _model(self) -> str:
        model = self.status.get("model")
        selector = mapping(self.spec.get("modelSelector"))
        if self.spec.get("modelVersion"):
            pinned = f"pinned: {self.spec['modelVersion']}"
            return f"{model} ({pinned})" if model else pinned
        if selector:
            stage = f" {selector['stage']}" if selector.get("stage") else ""
            return (
                f"{model or selector.get('model', NONE)} (follows the newest Ready{stage} version)"
            )
        return cell(model)

    def _version(self, version: object, color: object) -> str:
        if not version:
            return NONE
        return f"{version} ({color})" if color and self.strategy() == "BlueGreen" else str(version)

    def _idle_color(self) -> str | None:
        active = self.status.get("activeColor")
        return {"blue": "green", "green": "blue"}.get(str(active)) if active else None

    def _replicas(self) -> str:
        desired = self.spec.get("replicas", 1)
        current, ready = self.status.get("replicas"), self.status.get("readyReplicas")
        return f"{cell(desired)} desired, {cell(current)} current, {cell(ready)} ready"

    def _aborted(self) -> str:
        version = str(self.status["abortedVersion"])
        generation = self.status.get("abortedGeneration")
        at = f" at generation {generation}" if generation is not None else ""
        return f"{version}{at}; not retried until the spec changes or `retry` is sent"

    def _command(self) -> list[tuple[str, str]]:
        sent = mapping(self.meta.get("annotations")).get(COMMAND_ANNOTATION)
        done = self.status.get("lastCommand")
        pairs = []
        if done:
            pairs.append(("Last command", str(done)))
        if sent and sent != done:
            pairs.append(("Pending command", f"{sent} (the operator has not acted on it yet)"))
        return pairs

    def _notes(self) -> list[tuple[str, str]]:
        if not self.status:
            return [
                (
                    "Note",
                    "no status yet: the operator has not seen this Deployment (is it running?)",
                )
            ]
        generation, observed = self.meta.get("generation"), self.status.get("observedGeneration")
        if isinstance(generation, int) and isinstance(observed, int) and observed < generation:
            return [
                (
                    "Note",
                    f"status is for generation {observed}; generation {generation} is not reconciled yet",
                )
            ]
        return []

    # -- strategy -------------------------------------------------------------------------

    def steps(self) -> str:
        if self.canary is None:
            return ""
        steps = items(self.canary.get("steps"))
        if not steps:
            return "Steps: none (the new version is promoted as soon as it is Ready)"
        current = self.step_index
        aborted = self.phase == "Aborted"
        lines = ["Steps:"]
        for i, step in enumerate(steps):
            marker = " "
            if current is not None and i < current:
                marker = DONE
            elif current is not None and i == current:
                marker = FAILED if aborted else CURRENT
            text = step_text(step, self.analysis)
            if i == current and not aborted:
                text += self._step_progress(step)
            lines.append(f"  {marker} {i + 1:>2}  {text}")
        return "\n".join(lines)

    def _step_progress(self, step: Mapping[str, Any]) -> str:
        if "pause" in step:
            duration = mapping(step["pause"]).get("durationSeconds")
            started = parse_time(self.status.get("pauseStartTime"))
            if duration is None or started is None:
                return ""
            left = max(float(duration) - (self.now - started).total_seconds(), 0.0)
            return f" ({human_duration(left)} left)"
        if "setWeight" in step and self.status.get("actualWeight") != step["setWeight"]:
            return f" (now {percent(self.status.get('actualWeight'))})"
        return ""

    def blue_green(self) -> str:
        if self.bluegreen is None:
            return ""
        bg = self.bluegreen
        promote = (
            "as soon as the preview is Ready"
            if bg.get("autoPromote", True)
            else "when a person sends `promote`"
        )
        if bg.get("prePromotionAnalysis"):
            promote += ", after the pre-promotion analysis passes"
        replicas = bg.get("previewReplicas", self.spec.get("replicas", 1))
        delay = seconds_text(bg.get("scaleDownDelaySeconds", 30))
        pairs = [
            ("Switch", promote),
            ("Preview replicas", cell(replicas)),
            ("Old color kept", f"{delay} after the switch"),
        ]
        return "Blue-green:\n" + fields(pairs, indent="  ")

    # -- analysis, conditions, endpoints, monitoring ----------------------------------------

    def analysis_runs(self) -> str:
        runs = items(self.status.get("analysisRuns"))
        if not runs:
            return ""
        checks: dict[str, list[Mapping[str, Any]]] = {}
        for check in items((self.analysis or {}).get("checks")):
            checks.setdefault(str(check.get("metric")), []).append(check)
        blocks = ["Analysis runs:"]
        for run in runs:
            head = f"  {cell(run.get('name'))}   {cell(run.get('phase'))}"
            if run.get("startTime"):
                head += f"   started {age(run['startTime'], self.now)} ago"
            lines = [head]
            if run.get("message"):
                lines.append(f"    {run['message']}")
            measurements = items(run.get("measurements"))
            hidden = max(len(measurements) - _MEASUREMENTS_SHOWN, 0)
            rows = [
                self._measurement_row(m, checks.get(str(m.get("metric")), []))
                for m in measurements[hidden:]
            ]
            if rows:
                headers = ("METRIC", "VALUE", "LIMIT", "VERDICT", "AGE", "MESSAGE")
                lines.append(table(headers, rows, indent="    "))
            if hidden:
                lines.append(f"    ({hidden} earlier measurements not shown)")
            blocks.append("\n".join(lines))
        return "\n".join(blocks)

    def _measurement_row(
        self, measurement: Mapping[str, Any], checks: list[Mapping[str, Any]]
    ) -> list[str]:
        metric = str(measurement.get("metric", "?"))
        # With two checks on one metric (two latency quantiles) the bound is ambiguous.
        limit = bound_text(metric, checks[0]) if len(checks) == 1 else ""
        return [
            metric,
            metric_value(metric, measurement.get("value")),
            limit or NONE,
            cell(measurement.get("phase")),
            age(measurement.get("time"), self.now),
            cell(measurement.get("message")),
        ]

    def conditions(self) -> str:
        rows = [
            [
                cell(c.get("type")),
                cell(c.get("status")),
                cell(c.get("reason")),
                age(c.get("lastTransitionTime"), self.now),
                cell(c.get("message")),
            ]
            for c in items(self.status.get("conditions"))
        ]
        if not rows:
            return ""
        headers = ("TYPE", "STATUS", "REASON", "AGE", "MESSAGE")
        return "Conditions:\n" + table(headers, rows, indent="  ")

    def endpoints(self) -> str:
        endpoints = mapping(self.status.get("endpoints"))
        pairs = [
            (k, str(endpoints[k])) for k in ("stable", "preview", "canary") if endpoints.get(k)
        ]
        return "Endpoints:\n" + fields(pairs, indent="  ") if pairs else ""

    def monitoring(self) -> str:
        drift = mapping(self.status.get("drift"))
        config = mapping(mapping(self.spec.get("monitoring")).get("drift"))
        pairs = []
        if drift.get("score") is not None:
            text = f"{metric_value('drift', drift['score'])}"
            if drift.get("feature"):
                text += f' on "{drift["feature"]}"'
            if config:
                method = config.get("method", "psi")
                text += (
                    f" ({method}, threshold {metric_value('drift', config.get('threshold', 0.2))})"
                )
            if drift.get("measuredTime"):
                text += f", measured {age(drift['measuredTime'], self.now)} ago"
            pairs.append(("Drift", text))
        elif config:
            pairs.append(("Drift", "not measured yet"))
        retraining = mapping(self.status.get("retraining"))
        last, held = mapping(retraining.get("lastRun")), mapping(retraining.get("lastSuppressed"))
        if last:
            text = f"TrainingJob {last.get('trainingJob')} ({last.get('trigger')}: {last.get('reason')})"
            if last.get("time"):
                text += f", started {age(last['time'], self.now)} ago"
            pairs.append(("Retraining", text))
        elif drift.get("lastRetrainingJob"):
            text = f"TrainingJob {drift['lastRetrainingJob']}"
            if drift.get("lastRetrainingTime"):
                text += f", started {age(drift['lastRetrainingTime'], self.now)} ago"
            pairs.append(("Retraining", text))
        if held and (not last or str(held.get("time")) > str(last.get("time"))):
            text = f"{held.get('trigger')} held back: {held.get('suppressed')}"
            if held.get("time"):
                text += f", {age(held['time'], self.now)} ago"
            pairs.append(("Not retrained", text))
        return "Monitoring:\n" + fields(pairs, indent="  ") if pairs else ""

    # -- what a person can do next --------------------------------------------------------

    def next_steps(self) -> str:
        hints: list[tuple[str, str]] = []
        reasons = {str(c.get("reason")) for c in items(self.status.get("conditions"))}
        if self.status.get("paused"):
            hints.append(("resume", "to continue"))
        elif self.phase == "Aborted":
            hints.append(("retry", "to roll the aborted version out again"))
        elif "AnalysisInconclusive" in reasons:
            hints.append(("resume", "to measure again"))
            hints.append(("promote", "to go on without this analysis"))
        elif "WaitingForPromotion" in reasons or self._indefinite_pause():
            hints.append(("promote", "to go on"))
        if self.in_rollout and self.phase != "Aborted":
            hints.append(("abort", "to put all traffic back on the stable version"))
        if not hints:
            return ""
        rows = [[f"kubectl modelwerk {verb} {self.name}", why] for verb, why in hints]
        return "Next:\n" + table(("", ""), rows, indent="  ").split("\n", 1)[1]

    def _indefinite_pause(self) -> bool:
        if self.canary is None or not self.in_rollout:
            return False
        steps = items(self.canary.get("steps"))
        if self.step_index is None or not 0 <= self.step_index < len(steps):
            return False
        step = steps[self.step_index]
        return "pause" in step and mapping(step["pause"]).get("durationSeconds") is None
