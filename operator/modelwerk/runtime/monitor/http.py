"""The aggregator's HTTP face: ``/live`` (JSON for the operator), ``/metrics`` (Prometheus),
``/healthz`` (alive) and ``/readyz`` (the first read of the store is done).

A threaded stdlib server is plenty: the operator and Prometheus each ask every few seconds,
and every answer is rendered from the last snapshot without touching the store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelwerk.runtime.monitor.aggregator import Aggregator


class _Figures(Collector):
    """Series from the aggregator's snapshot. No ``deployment`` label: one aggregator serves
    one Deployment, and Prometheus adds the pod's labels."""

    def __init__(self, aggregator: Aggregator) -> None:
        self._aggregator = aggregator

    def collect(self) -> Iterable[Metric]:
        snap = self._aggregator.current()
        va = ["version", "arm"]
        accuracy = GaugeMetricFamily(
            "modelwerk_live_accuracy",
            "Share of matched labels the version predicted right, over the window.",
            labels=va,
        )
        mae = GaugeMetricFamily(
            "modelwerk_live_mae", "Mean absolute error over the window's matched labels.", labels=va
        )
        rmse = GaugeMetricFamily(
            "modelwerk_live_rmse",
            "Root mean squared error over the window's matched labels.",
            labels=va,
        )
        matched = GaugeMetricFamily(
            "modelwerk_live_matched_rows",
            "Labelled rows joined with the version's predictions, over the window.",
            labels=va,
        )
        reward = GaugeMetricFamily(
            "modelwerk_live_reward_mean", "Mean reward over the window.", labels=va
        )
        rewards = GaugeMetricFamily(
            "modelwerk_live_rewards", "Rewarded rows over the window.", labels=va
        )
        for f in snap.versions:
            key = [f.version, f.arm or ""]
            matched.add_metric(key, f.matched)
            rewards.add_metric(key, f.rewards)
            for family, value in (
                (accuracy, f.accuracy),
                (mae, f.mae),
                (rmse, f.rmse),
                (reward, f.mean_reward),
            ):
                if value is not None:
                    family.add_metric(key, value)
        labels = GaugeMetricFamily(
            "modelwerk_live_labels",
            "Label rows received in the window, by result (matched, unmatched, pending, "
            "duplicate).",
            labels=["result"],
        )
        counts = snap.labels
        for result, value in (
            ("matched", counts.matched),
            ("unmatched", counts.unmatched),
            ("pending", counts.pending),
            ("duplicate", counts.duplicates),
        ):
            labels.add_metric([result], value)
        files = CounterMetricFamily(
            "modelwerk_live_files_read", "Parquet files read from the store.", labels=["stream"]
        )
        for stream, value in snap.files_read.items():
            files.add_metric([stream], value)
        errors = CounterMetricFamily(
            "modelwerk_live_store_errors", "Rounds in which reading the store failed."
        )
        errors.add_metric([], snap.store_errors)
        deleted = CounterMetricFamily(
            "modelwerk_live_deleted_partitions", "Partitions deleted by retention."
        )
        deleted.add_metric([], snap.deleted_partitions)
        healthy = GaugeMetricFamily(
            "modelwerk_live_store_healthy", "1 when the last read of the store worked, else 0."
        )
        healthy.add_metric([], 1.0 if snap.store_error is None and snap.ready else 0.0)
        rows = GaugeMetricFamily(
            "modelwerk_live_join_rows", "Predictions held for the join (the horizon)."
        )
        rows.add_metric([], snap.join_rows)
        window = GaugeMetricFamily("modelwerk_live_window_seconds", "The figures' window.")
        window.add_metric([], snap.window_seconds)
        return [
            accuracy, mae, rmse, matched, reward, rewards, labels, files, errors, deleted,
            healthy, rows, window,
        ]  # fmt: skip


def serve(aggregator: Aggregator, host: str, port: int) -> ThreadingHTTPServer:
    """A started server (in the calling thread: call ``serve_forever``)."""
    registry = CollectorRegistry()
    registry.register(_Figures(aggregator))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/live":
                try:
                    since = _since(query)
                except ValueError as exc:
                    self._send(400, json.dumps({"error": str(exc)}).encode())
                    return
                if since is not None:
                    aggregator.read_back(since)
                self._send(200, json.dumps(aggregator.current().to_json(since)).encode())
            elif path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200, b'{"live":true}')
            elif path == "/readyz":
                ready = aggregator.current().ready
                self._send(
                    200 if ready else 503, b'{"ready":%s}' % (b"true" if ready else b"false")
                )
            else:
                self._send(404, b'{"error":"no such path"}')

        def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds would drown the log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _since(query: str) -> float | None:
    """The ``since`` parameter of ``/live``: seconds since the epoch, or absent."""
    values = parse_qs(query).get("since")
    if not values:
        return None
    try:
        since = float(values[0])
    except ValueError:
        raise ValueError("since must be seconds since the epoch, a number") from None
    if not math.isfinite(since) or since < 0:
        raise ValueError("since must be seconds since the epoch, a number")
    return since
