"""``modelwerk run`` with timing wrappers, for the scale benchmark (never used in production).

The operator runs exactly as ``modelwerk run`` does, with three functions of its Deployment
path wrapped, so their durations can be told apart:

* ``reconcile``: one whole reconcile (read, observe, decide, apply), as the
  ``modelwerk_reconcile_duration_seconds`` histogram measures it, for every kind;
* ``observe``: ``observe_deployment`` (the API reads a Deployment decision needs);
* ``decide``: ``reconcile_deployment``, the pure decision.

Knobs for comparisons (``run.py --variant``):

* ``BENCH_WATCH_SERVING_PODS=1`` watches serving pods again, as the operator did before
  ``kinds.child_selector`` left them out;
* ``BENCH_LABELLED_GAUGES=1`` keeps six labelled Gauge objects per Deployment again;
* ``BENCH_KOPF="queueing.idle_timeout=0.5;watching.chunk_size=100"`` overrides kopf settings
  after the operator's own start-up has set its own.

Each duration is appended as one line to the file named by ``BENCH_SAMPLES``
(``<monotonic time> <what> <kind> <name> <seconds>``); nothing is kept in memory, so the
operator's memory measured by the benchmark is the operator's own.

    BENCH_SAMPLES=/tmp/samples.txt MODELWERK_KUBECONFIG=... python -m bench.operator.instrumented
"""

from __future__ import annotations

import ast
import collections
import ctypes
import gc
import os
import signal
import sys
import time
import tracemalloc
from typing import Any, TextIO

import modelwerk.handlers  # noqa: F401  (registers the handlers, as `modelwerk run` does)
from modelwerk.builders.labels import MANAGED_SELECTOR
from modelwerk.handlers import kinds, startup
from modelwerk.handlers.main import main

_sink: TextIO | None = None


def _record(what: str, kind: str, name: str, seconds: float) -> None:
    if _sink is not None:
        _sink.write(f"{time.monotonic():.6f} {what} {kind} {name} {seconds:.9f}\n")


def _wrap() -> None:
    # Module namespaces, so each wrapper replaces the name the calling code looks up.
    startup_names, kinds_names = vars(startup), vars(kinds)
    reconcile = startup_names["reconcile"]
    observe = kinds_names["observe_deployment"]
    decide = kinds_names["reconcile_deployment"]

    async def timed_reconcile(ctx: Any, kind: Any, key: Any) -> float | None:
        started = time.perf_counter()
        what = "reconcile-error"
        try:
            result: float | None = await reconcile(ctx, kind, key)
            what = "reconcile"
            return result
        finally:
            _record(what, key.kind, key.name, time.perf_counter() - started)

    async def timed_observe(kube: Any, metrics: Any, dep: Any, now: Any) -> Any:
        started = time.perf_counter()
        try:
            return await observe(kube, metrics, dep, now)
        finally:
            _record("observe", "Deployment", dep.metadata.name, time.perf_counter() - started)

    def timed_decide(dep: Any, observed: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return decide(dep, observed, **kwargs)
        finally:
            _record("decide", "Deployment", dep.metadata.name, time.perf_counter() - started)

    if os.environ.get("BENCH_WATCH_SERVING_PODS"):
        # Before/after comparisons only: watch every managed pod, serving pods included, as
        # the operator did before kinds.child_selector left them out.
        startup_names["child_selector"] = lambda rt: ",".join(
            f"{k}={v}" for k, v in MANAGED_SELECTOR.items()
        )
    if os.environ.get("BENCH_LABELLED_GAUGES"):
        _labelled_gauges(kinds_names)
    startup_names["reconcile"] = timed_reconcile
    kinds_names["observe_deployment"] = timed_observe
    kinds_names["reconcile_deployment"] = timed_decide


def _labelled_gauges(kinds_names: dict[str, Any]) -> None:
    """Keep, besides the operator's own, the six labelled Gauge objects per Deployment that
    metrics.py had before DEPLOYMENT_GAUGES (on a registry nobody scrapes)."""
    from prometheus_client import CollectorRegistry, Gauge

    from modelwerk.metrics import ROLLOUT_PHASES

    registry = CollectorRegistry()
    labels = ["namespace", "deployment"]
    phase = Gauge("before_rollout_phase", "", [*labels, "phase"], registry=registry)
    weight = Gauge("before_rollout_canary_weight", "", labels, registry=registry)
    record = kinds_names["record_rollout"]

    def labelled(dep: Any, plan: Any) -> None:
        record(dep, plan)
        ns, name = dep.metadata.namespace, dep.metadata.name
        for p in ROLLOUT_PHASES:
            phase.labels(ns, name, p).set(1 if plan.status.phase == p else 0)
        weight.labels(ns, name).set(plan.status.actual_weight or 0)

    kinds_names["record_rollout"] = labelled


def _trace_memory(path: str) -> None:
    """Trace allocations; each SIGUSR1 appends the largest live allocation sites and the most
    numerous object types to ``path`` (profiling only: tracing costs memory and time)."""
    tracemalloc.start(12)

    def dump(signum: int, frame: object) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        current, peak = tracemalloc.get_traced_memory()
        types = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
        with open(path, "a") as f:
            f.write(f"===== traced {current / 2**20:.1f} MiB (peak {peak / 2**20:.1f} MiB)\n")
            for stat in snapshot.statistics("traceback")[:25]:
                f.write(f"--- {stat.size / 2**20:.2f} MiB in {stat.count} blocks\n")
                f.write("\n".join(stat.traceback.format(limit=12)) + "\n")
            f.write("--- by file\n")
            for stat in snapshot.statistics("filename")[:25]:
                f.write(f"{stat.size / 2**20:8.2f} MiB {stat.count:8d} {stat.traceback}\n")
            f.write("--- gc objects by type\n")
            for name, count in types.most_common(25):
                f.write(f"{count:9d} {name}\n")

    signal.signal(signal.SIGUSR1, dump)


def _trim_on_signal() -> None:
    """SIGUSR2: collect garbage and hand free heap memory back to the OS (glibc malloc_trim),
    to tell memory still in use from memory freed but kept by the allocators."""
    libc = ctypes.CDLL("libc.so.6")

    def trim(signum: int, frame: object) -> None:
        gc.collect()
        libc.malloc_trim(0)

    signal.signal(signal.SIGUSR2, trim)


def _kopf_overrides(spec: str) -> None:
    import kopf

    overrides = [item.split("=", 1) for item in spec.split(";") if item]

    @kopf.on.startup(id="bench-overrides")
    async def _override(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Registered after the operator's own start-up handler, so kopf runs it afterwards.
        for path, value in overrides:
            section, name = path.split(".")
            setattr(getattr(settings, section), name, ast.literal_eval(value))


def run(argv: list[str]) -> int:
    global _sink
    path = os.environ.get("BENCH_SAMPLES")
    if path:
        _sink = open(path, "a", buffering=1)  # noqa: SIM115  (open for the process' lifetime)
    if trace := os.environ.get("BENCH_TRACEMALLOC"):
        _trace_memory(trace)
    _trim_on_signal()
    _wrap()
    if spec := os.environ.get("BENCH_KOPF"):
        _kopf_overrides(spec)
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
