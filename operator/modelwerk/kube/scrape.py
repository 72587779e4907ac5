"""Reads the serving pods' metrics for analysis and drift: from the pods, or from Prometheus.

Either way the result is the same cumulative :class:`MetricSample` (see ``logic.measure``).
Straight from the pods, every pod's ``/metrics`` is fetched at once with a short timeout; pods
that do not answer are left out (``pods`` counts those that did) and only a version none of
whose pods answered is an error. Through Prometheus, instant queries at ``now`` sum the same
counters over the version's series, which a PodMonitor labels with ``namespace`` and ``pod``
next to the server's own ``model`` and ``version``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from datetime import datetime
from typing import Any

import aiohttp

from modelwerk.api.v1alpha1.deployment import MetricSample
from modelwerk.builders.labels import child_name
from modelwerk.kube.session import LazySession
from modelwerk.logic import measure
from modelwerk.logic.rollout import COLORS

logger = logging.getLogger(__name__)

MAX_EXPOSITION_BYTES = 4 * 1024 * 1024
"""A model server's exposition is tens of KiB; anything far larger is not one."""
POD_NAME_PREFIX = 58
"""Characters of a ReplicaSet's name a pod's generated name keeps (63 minus 5 random)."""


class SampleError(Exception):
    """No sample could be taken; the message says why, for the analysis run's status."""


class MetricsReader:
    """Takes metric samples; one instance (and connection pool) per operator."""

    def __init__(self, *, pod_timeout: float = 2.0, prometheus_timeout: float = 10.0) -> None:
        self._pod_timeout = aiohttp.ClientTimeout(total=pod_timeout)
        self._prometheus_timeout = aiohttp.ClientTimeout(total=prometheus_timeout)
        # Pods change IPs all the time: no DNS cache to speak of, no keep-alive to a pod that
        # may be gone by the next sample.
        self._session = LazySession(lambda: aiohttp.TCPConnector(limit=32, force_close=True))

    async def close(self) -> None:
        await self._session.close()

    # ------------------------------------------------------------------ pods
    async def sample_pods(self, targets: list[tuple[str, int]], now: datetime) -> MetricSample:
        """Sum the ``/metrics`` of the pods at ``targets`` (IP, port); raises
        :class:`SampleError` when none of them answered."""
        if not targets:
            raise SampleError("no serving pod to read metrics from")
        outcomes = await asyncio.gather(*(self._pod(ip, port) for ip, port in targets))
        pods = [o for o in outcomes if isinstance(o, measure.PodMetrics)]
        if not pods:
            failures = "; ".join(str(o) for o in outcomes)
            raise SampleError(f"no serving pod answered: {_clip(failures, 900)}")
        return measure.combine(pods, now)

    async def _pod(self, ip: str, port: int) -> measure.PodMetrics | str:
        host = f"[{ip}]" if ":" in ip else ip
        url = f"http://{host}:{port}/metrics"
        try:
            async with self._session.get().get(
                url, timeout=self._pod_timeout, headers={"Accept": "text/plain"}
            ) as response:
                if response.status != 200:
                    return f"{host}:{port} answered {response.status}"
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > MAX_EXPOSITION_BYTES:
                        return f"{host}:{port} sent more than {MAX_EXPOSITION_BYTES} bytes"
            return measure.parse_pod(body.decode("utf-8", errors="replace"))
        except TimeoutError:
            return f"{host}:{port} did not answer within {self._pod_timeout.total:g} s"
        except aiohttp.ClientError as exc:
            return f"{host}:{port}: {_describe(exc)}"
        except ValueError as exc:
            return f"{host}:{port} sent no Prometheus metrics ({_clip(str(exc), 120)})"

    # ------------------------------------------------------------ Prometheus
    async def sample_prometheus(
        self, url: str, namespace: str, deployment: str, version: str, now: datetime
    ) -> MetricSample:
        """The same sample from the Prometheus at ``url``, as of ``now``; raises
        :class:`SampleError` when Prometheus fails or has no series of the version's pods."""
        queries = prometheus_queries(namespace, deployment, version)
        names = list(queries)
        results = await asyncio.gather(*(self._query(url, queries[n], now) for n in names))
        vectors = dict(zip(names, results, strict=True))
        pods = int(_scalar(vectors["pods"]))
        if pods == 0:
            raise SampleError(
                f"Prometheus has no metrics of version {version} of {namespace}/{deployment}"
            )
        buckets: dict[float, float] = {}
        for series in vectors["buckets"]:
            try:
                buckets[measure.parse_le(series["metric"].get("le", ""))] = _value(series)
            except ValueError:
                continue
        drift = {s["metric"].get("method", ""): _value(s) for s in vectors["drift"]}
        features = {
            (s["metric"].get("feature", ""), s["metric"].get("method", "")): _value(s)
            for s in vectors["features"]
        }
        score, feature = measure.worst_drift(
            {m: v for m, v in drift.items() if not math.isnan(v)},
            {k: v for k, v in features.items() if not math.isnan(v)},
        )
        rows = [_value(s) for s in vectors["drift_rows"]]
        needed = {s["metric"].get("feature", ""): _value(s) for s in vectors["rows_needed"]}
        accuracy = _scalar(vectors["accuracy"], default=math.nan)
        return MetricSample(
            time=now,
            pods=pods,
            requests=_scalar(vectors["requests"]),
            errors=_scalar(vectors["errors"]),
            latency_buckets=measure.histogram(buckets),
            drift_score=score,
            drift_feature=feature,
            drift_window=measure.drift_window(
                [r for r in rows if not math.isnan(r)],
                [{f: v for f, v in needed.items() if not math.isnan(v)}],
            ),
            accuracy=None if math.isnan(accuracy) else accuracy,
            labelled=_scalar(vectors["labelled"]),
        )

    async def _query(self, url: str, query: str, now: datetime) -> list[dict[str, Any]]:
        endpoint = url.rstrip("/") + "/api/v1/query"
        params = {"query": query, "time": f"{now.timestamp():.3f}"}
        try:
            async with self._session.get().get(
                endpoint, params=params, timeout=self._prometheus_timeout
            ) as response:
                text = await response.text()
                status = response.status
        except TimeoutError as exc:
            raise SampleError(
                f"Prometheus at {url} did not answer within {self._prometheus_timeout.total:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise SampleError(f"Prometheus at {url}: {_describe(exc)}") from exc
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise SampleError(f"Prometheus at {url} answered {status}: {_clip(text, 200)}")
        if payload.get("status") != "success":
            error = payload.get("error") or f"HTTP {status}"
            raise SampleError(f"Prometheus at {url} refused {query!r}: {_clip(str(error), 300)}")
        data = payload.get("data") or {}
        if data.get("resultType") != "vector":
            raise SampleError(f"Prometheus at {url} answered {query!r} with no vector")
        result: list[dict[str, Any]] = data.get("result") or []
        return result


def pod_pattern(deployment: str) -> str:
    """A PromQL regular expression for the names of the Deployment's serving pods: a pod's name
    is its ReplicaSet's (``<deployment>-<color>-<hash>``) cut to 58 characters plus 5 more.

    >>> pod_pattern("iris")
    '(iris-blue-|iris-green-).*'
    """
    prefixes = [(child_name(deployment, track) + "-")[:POD_NAME_PREFIX] for track in COLORS]
    return "(" + "|".join(p.replace(".", "\\.") for p in prefixes) + ").*"


def prometheus_queries(namespace: str, deployment: str, version: str) -> dict[str, str]:
    """The instant queries behind one sample, by what they give.

    >>> prometheus_queries("ml", "iris", "iris-v2")["errors"]
    'sum(modelwerk_model_requests_total{namespace="ml",version="iris-v2",pod=~"(iris-blue-|iris-green-).*",code=~"5.."})'
    """
    labels = (
        f'namespace="{_quote(namespace)}",version="{_quote(version)}",'
        f'pod=~"{_quote(pod_pattern(deployment))}"'
    )

    def sel(metric: str, extra: str = "") -> str:
        return f"{metric}{{{labels}{extra}}}"

    five_xx = ',code=~"5.."'
    classified = ',result=~"' + "|".join(measure.CLASSIFIED_FEEDBACK) + '"'
    return {
        "pods": f"count(count by (namespace, pod) ({sel('modelwerk_model_info')}))",
        "requests": f"sum({sel(measure.REQUESTS)})",
        "errors": f"sum({sel(measure.REQUESTS, five_xx)})",
        "buckets": f"sum by (le) ({sel(measure.LATENCY_BUCKET)})",
        "drift": f"max by (method) ({sel(measure.DRIFT_SCORE)})",
        "features": f"max by (feature, method) ({sel(measure.FEATURE_DRIFT)})",
        "drift_rows": f"max({sel(measure.DRIFT_ROWS)})",
        "rows_needed": f"max by (feature) ({sel(measure.DRIFT_ROWS_NEEDED)})",
        # Only pods with classified feedback: the gauge reads 0 before any, and on regressors.
        "accuracy": (
            f"min({sel(measure.LIVE_ACCURACY)} and on (namespace, pod) "
            f"({sel(measure.FEEDBACK, classified)} > 0))"
        ),
        "labelled": f"sum({sel(measure.LIVE_LABELLED)})",
    }


def _quote(value: str) -> str:
    """A PromQL double-quoted string's content (backslashes are escapes there)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _value(series: dict[str, Any]) -> float:
    try:
        return float(series["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return math.nan


def _scalar(vector: list[dict[str, Any]], default: float = 0.0) -> float:
    """The value of a one-series aggregation; an empty vector (no series matched) is
    ``default``."""
    if not vector:
        return default
    value = _value(vector[0])
    return default if math.isnan(value) else value


def _describe(exc: BaseException) -> str:
    return _clip(str(exc) or type(exc).__name__, 300)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
