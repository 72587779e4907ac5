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
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import aiohttp

from modelwerk.api.v1alpha1.deployment import MetricSample
from modelwerk.builders.labels import child_name
from modelwerk.kube.session import LazySession
from modelwerk.logic import experiment_figures as figures
from modelwerk.logic import live, measure, shadow
from modelwerk.logic.tracks import COLORS

logger = logging.getLogger(__name__)

MAX_EXPOSITION_BYTES = 4 * 1024 * 1024
"""A model server's exposition is tens of KiB; anything far larger is not one."""
POD_NAME_PREFIX = 58
"""Characters of a ReplicaSet's name a pod's generated name keeps (63 minus 5 random)."""


T = TypeVar("T")


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
        outcomes = await asyncio.gather(
            *(self._pod(ip, port, measure.parse_pod) for ip, port in targets)
        )
        pods = [o for o in outcomes if isinstance(o, measure.PodMetrics)]
        if not pods:
            failures = "; ".join(str(o) for o in outcomes)
            raise SampleError(f"no serving pod answered: {_clip(failures, 900)}")
        return measure.combine(pods, now)

    async def capture_counts(self, targets: list[tuple[str, int]]) -> list[live.PodCapture] | str:
        """The capture counters of the serving pods at ``targets``; why none answered."""
        if not targets:
            return "no serving pod to read"
        outcomes = await asyncio.gather(
            *(
                self._get(ip, port, "/metrics", live.parse_capture, "metrics")
                for ip, port in targets
            )
        )
        pods = [o for o in outcomes if isinstance(o, live.PodCapture)]
        return pods or f"no serving pod answered: {_clip('; '.join(map(str, outcomes)), 900)}"

    async def shadow_pairs(
        self, ip: str, port: int, stable: str, candidate: str
    ) -> shadow.JoinedPairs | str:
        """The aggregator's paired outcomes of the two versions, or why they could not be read."""
        return await self._get(
            ip,
            port,
            "/live",
            lambda text: shadow.parse_pairs(json.loads(text), stable, candidate),
            "paired outcomes",
        )

    async def read_live(self, ip: str, port: int) -> live.LiveReading | str:
        """The aggregator's figures, or why they could not be read."""
        return await self._get(
            ip, port, "/live", lambda text: live.parse_live(json.loads(text)), "live figures"
        )

    async def experiment_figures(
        self,
        a: list[tuple[str, int]],
        b: list[tuple[str, int]],
        joined: tuple[str, int, float, str, str] | str | None = None,
    ) -> figures.ExperimentFigures:
        """Both arms' experiment counters, from the pods of arm A (``a``) and arm B (``b``);
        raises :class:`SampleError` unless every pod answered (a look at part of an arm's
        units would show a sample-ratio mismatch that is not there). With capture on,
        ``joined`` is the aggregator (IP, port), the experiment's start (seconds since the
        epoch) and the two versions, or why there is no aggregator; its figures must be had
        too."""
        counters = [
            figures.combine(await self._every_pod(targets, figures.parse_pod, f"arm {name}: "))
            for name, targets in (("A", a), ("B", b))
        ]
        labels = None
        if isinstance(joined, str):
            raise SampleError(f"no joined labels: {joined}")
        if joined is not None:
            ip, port, since, version_a, version_b = joined
            read = await self._get(
                ip,
                port,
                f"/live?since={since:.3f}",
                lambda text: figures.parse_joined(json.loads(text), version_a, version_b),
                "experiment figures",
            )
            if isinstance(read, str):
                raise SampleError(f"no joined labels from the aggregator: {read}")
            labels = read
        return figures.ExperimentFigures(counters[0], counters[1], labels)

    async def shadow_figures(self, targets: list[tuple[str, int]]) -> shadow.ShadowFigures:
        """The stable pods' shadow counters, summed; raises :class:`SampleError` unless every
        pod answered (a reading without some pods would undercount)."""
        return shadow.combine(await self._every_pod(targets, shadow.parse_pod, "stable "))

    async def _every_pod(
        self, targets: list[tuple[str, int]], parse: Callable[[str], T], what: str
    ) -> list[T]:
        outcomes = await asyncio.gather(*(self._pod(ip, port, parse) for ip, port in targets))
        failures = [o for o in outcomes if isinstance(o, str)]
        if not targets or failures:
            raise SampleError(
                f"{what}{len(targets) - len(failures)} of {len(targets)} serving pods answered"
                + (f": {_clip('; '.join(failures), 600)}" if failures else "")
            )
        return [o for o in outcomes if not isinstance(o, str)]

    async def _pod(self, ip: str, port: int, parse: Callable[[str], T]) -> T | str:
        return await self._get(ip, port, "/metrics", parse, "Prometheus metrics")

    async def _get(
        self, ip: str, port: int, path: str, parse: Callable[[str], T], what: str
    ) -> T | str:
        host = f"[{ip}]" if ":" in ip else ip
        url = f"http://{host}:{port}{path}"
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
            return parse(body.decode("utf-8", errors="replace"))
        except TimeoutError:
            return f"{host}:{port} did not answer within {self._pod_timeout.total:g} s"
        except aiohttp.ClientError as exc:
            return f"{host}:{port}: {_describe(exc)}"
        except ValueError as exc:
            return f"{host}:{port} sent no {what} ({_clip(str(exc), 120)})"

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
