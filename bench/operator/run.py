"""The operator with 1,000 modelwerk Deployments on a real control plane.

Steps (all on 127.0.0.1; the control plane of the integration tier, ``tests/cluster``):

1. Start etcd + kube-apiserver + controller-manager + scheduler, install the CRDs and the
   operator's RBAC, register the stand-in node (pod capacity raised so the scheduler places
   every serving pod) and create a namespace enforcing the restricted Pod Security Standard.
2. Start the operator as its own process (``python -m bench.operator.instrumented``: ``modelwerk
   run`` plus timing wrappers) under its ServiceAccount, and create ``--versions`` ModelVersions,
   verified by really running the verification Jobs on the stand-in node.
3. Create ``--objects`` Deployments, replicas 1, pinned to v1: 70 % steady (a third each of no
   strategy, blue-green and canary), 20 % canary, 10 % blue-green with ``autoPromote: false``.
   The stand-in node marks every serving pod Running and Ready. Wait until all are Healthy,
   then move the canary and blue-green ones to v2 and wait until the canaries are Paused at
   50 % on an indefinite pause step and the blue-green ones are Paused waiting for promotion.
   The node's background loop is then stopped: nothing changes any more, as in a quiet cluster.
4. Stop that operator. Start a fresh one with ``MODELWERK_RESYNC_SECONDS`` = ``--resync``:
   measure the time until every Deployment has been reconciled once (the initial sync, from a
   cold start), then ``--passes`` resync periods. The operator's RSS (VmRSS, VmHWM from
   /proc/<pid>/status) and CPU time are sampled every second.
5. Write ``out/result.json`` (every figure), ``out/rss.csv`` and the operator's /metrics.

Run from the repository root:

    .venv/bin/python -m bench.operator.run [--objects 1000] [--resync 60] [--passes 6]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.operator.image_env import operator_python
from bench.operator.stats import distribution
from prometheus_client.parser import text_string_to_metric_families
from tests.cluster import node as standin
from tests.cluster import process
from tests.cluster.controlplane import REPO_ROOT, ControlPlane, ensure_binaries, free_port
from tests.cluster.install import install_crds, install_operator_rbac, write_operator_kubeconfig
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.serving import verified_version

HERE = Path(__file__).resolve().parent
GROUP = "/apis/modelwerk.dev/v1alpha1"
NAMESPACE = "scale"
MODEL = "iris-classifier"
DEADLINE = 86400  # rollouts held on purpose must not hit progressDeadlineSeconds meanwhile
GOAL_DECISION_P99 = 0.100
GOAL_RSS_MIB = 150e6 / 2**20  # the goal says 150 MB; RSS is read in KiB

STRATEGIES: dict[str, dict[str, Any]] = {
    "steady-replace": {},
    "steady-bluegreen": {"blueGreen": {"scaleDownDelaySeconds": 0}},
    "steady-canary": {"canary": {"steps": [{"setWeight": 50}, {"setWeight": 100}]}},
    "canary": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]}},
    "bluegreen": {"blueGreen": {"autoPromote": False, "scaleDownDelaySeconds": 0}},
}
Sample = tuple[float, str, str, str, float]
"""(seconds, what, kind, name, duration) as the instrumented operator writes it."""
TARGET = {  # (phase, Ready reason) each kind ends in
    "steady": ("Healthy", "RolloutComplete"),
    "canary": ("Paused", "PausedByStep"),
    "bluegreen": ("Paused", "WaitingForPromotion"),
}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the population ------------------------------------------------------------------------


def plan_objects(n: int) -> dict[str, str]:
    """name -> strategy key (of STRATEGIES) for ``n`` Deployments in the 70/20/10 mix."""
    canary, bluegreen = round(n * 0.2), round(n * 0.1)
    steady = n - canary - bluegreen
    names: dict[str, str] = {}
    for i in range(steady):
        key = ("steady-replace", "steady-bluegreen", "steady-canary")[i % 3]
        names[f"steady-{i:04d}"] = key
    names.update({f"canary-{i:04d}": "canary" for i in range(canary)})
    names.update({f"bluegreen-{i:04d}": "bluegreen" for i in range(bluegreen)})
    return names


def kind_of(name: str) -> str:
    return name.split("-", 1)[0]


def create_deployments(rest: Rest, objects: dict[str, str]) -> None:
    def create(name: str) -> None:
        rest.create(
            f"{GROUP}/namespaces/{NAMESPACE}/deployments",
            {
                "apiVersion": "modelwerk.dev/v1alpha1",
                "kind": "Deployment",
                "metadata": {"name": name, "labels": {"bench": kind_of(name)}},
                "spec": {
                    "modelVersion": f"{MODEL}-v1",
                    "replicas": 1,
                    "strategy": STRATEGIES[objects[name]],
                    "progressDeadlineSeconds": DEADLINE,
                },
            },
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(create, objects))


def states(rest: Rest) -> dict[str, tuple[str, str, str]]:
    """name -> (phase, Ready reason, stable version) of every Deployment in the namespace."""
    items = rest.get(f"{GROUP}/namespaces/{NAMESPACE}/deployments")["items"]
    out = {}
    for item in items:
        status = item.get("status") or {}
        conditions: list[dict[str, str]] = status.get("conditions") or []
        ready = next((c for c in conditions if c["type"] == "Ready"), {})
        out[item["metadata"]["name"]] = (
            status.get("phase", ""),
            ready.get("reason", ""),
            status.get("stableVersion", ""),
        )
    return out


def wait_for_states(
    rest: Rest, want: Callable[[str], tuple[str, str]], names: list[str], *, timeout: float
) -> float:
    """Wait until every one of ``names`` is in ``want(name)``; returns the seconds it took."""
    started = time.monotonic()
    last_report = 0.0

    def done() -> bool:
        nonlocal last_report
        current = states(rest)
        missing = [n for n in names if current.get(n, ("", "", ""))[:2] != want(n)]
        if time.monotonic() - last_report > 30:
            last_report = time.monotonic()
            seen = Counter(current.get(n, ("?", "?", ""))[:2] for n in missing)
            say(f"  {len(names) - len(missing)}/{len(names)} there; others: {dict(seen)}")
        return not missing

    wait_until(done, timeout=timeout, interval=3, what="the Deployments' states")
    return time.monotonic() - started


# -- the operator process --------------------------------------------------------------------


@dataclass
class Operator:
    """The operator as a child process; its timing samples and log in ``workdir``."""

    kubeconfig: Path
    workdir: Path
    name: str
    python: Path
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)
    proc: process.ManagedProcess | None = None
    started: float = 0.0
    _read: int = 0

    @property
    def samples_path(self) -> Path:
        return self.workdir / f"{self.name}.samples"

    def start(self) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MODELWERK_")},
            "MODELWERK_KUBECONFIG": str(self.kubeconfig),
            "MODELWERK_METRICS_PORT": str(self.metrics_port),
            "MODELWERK_HEALTH_PORT": str(free_port()),
            "MODELWERK_IDENTITY": f"bench-{self.name}",
            "BENCH_SAMPLES": str(self.samples_path),
            **self.env,
        }
        self.started = time.monotonic()
        self.proc = process.ManagedProcess(
            f"operator-{self.name}",
            [str(self.python), "-m", "bench.operator.instrumented"],
            self.workdir / f"{self.name}.log",
            env=env,
            cwd=REPO_ROOT,
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def proc_status(self) -> dict[str, float]:
        """VmRSS and VmHWM (MiB) and CPU seconds (user + system) of the operator process."""
        assert self.proc is not None
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        fields["cpu_seconds"] = (int(stat[11]) + int(stat[12])) / ticks
        return fields

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    def new_samples(self) -> list[Sample]:
        """The samples written since the last call."""
        if not self.samples_path.exists():
            return []
        with open(self.samples_path) as f:
            f.seek(self._read)
            text = f.read()
        complete = text[: text.rfind("\n") + 1]
        self._read += len(complete.encode())
        return [_parse(line) for line in complete.splitlines()]

    def samples(self) -> list[Sample]:
        """(monotonic time, what, kind, name, seconds) of every timed call so far."""
        if not self.samples_path.exists():
            return []
        return [_parse(line) for line in self.samples_path.read_text().splitlines()]


def _parse(line: str) -> Sample:
    t, what, kind, name, seconds = line.split()
    return float(t), what, kind, name, float(seconds)


# -- figures -------------------------------------------------------------------------------


def histogram_quantiles(text: str, name: str, kind: str) -> dict[str, Any]:
    """Buckets of one kind of a Prometheus histogram, with p50/p99 estimated as Prometheus'
    ``histogram_quantile`` does (linear within the bucket)."""
    buckets: list[tuple[float, float]] = []
    count = total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.labels.get("kind") != kind:
                continue
            if sample.name.endswith("_bucket"):
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_count"):
                count = sample.value
            elif sample.name.endswith("_sum"):
                total = sample.value
    buckets.sort()

    def quantile(q: float) -> float | None:
        if not count:
            return None
        rank, lower, below = q * count, 0.0, 0.0
        for bound, cumulative in buckets:
            if cumulative >= rank:
                if bound == float("inf"):
                    return lower
                return lower + (bound - lower) * (rank - below) / max(cumulative - below, 1e-12)
            lower, below = bound, cumulative
        return None

    return {
        "count": count,
        "sum_seconds": total,
        "buckets": [[b, c] for b, c in buckets],
        "p50_seconds": quantile(0.5),
        "p99_seconds": quantile(0.99),
    }


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "load_average_at_start": os.getloadavg(),
    }


# -- the run -------------------------------------------------------------------------------


def setup_cluster(cp: ControlPlane, workdir: Path) -> tuple[Rest, StandInNode, Path]:
    install_crds(cp, REPO_ROOT / "crds", say)
    install_operator_rbac(cp, REPO_ROOT / "manifests" / "base" / "rbac")
    kubeconfig = write_operator_kubeconfig(cp, workdir / "operator.kubeconfig")
    rest = Rest.from_kubeconfig(cp.admin_kubeconfig)
    standin.POLL = 1.0  # the node's list calls compete with the operator for the two cores
    node = StandInNode(rest, workdir / "node")
    node.register()
    roomy = {"cpu": "2000", "memory": "4000Gi", "pods": "5000", "ephemeral-storage": "200Gi"}
    rest.merge_patch(
        f"/api/v1/nodes/{node.name}/status",
        {"status": {"capacity": roomy, "allocatable": roomy}},
    )
    rest.create(
        "/api/v1/namespaces",
        {
            "metadata": {
                "name": NAMESPACE,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            }
        },
    )
    wait_until(
        lambda: rest.get_or_none(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default"),
        timeout=60,
        what="the namespace's default ServiceAccount",
    )
    return rest, node, kubeconfig


def populate(
    rest: Rest, node: StandInNode, objects: dict[str, str], versions: int
) -> dict[str, Any]:
    node.auto(NAMESPACE, "app.kubernetes.io/component=verification", mode="run")
    node.auto(NAMESPACE, "app.kubernetes.io/component=server", mode="ready")
    for n in range(1, versions + 1):
        verified_version(rest, node, NAMESPACE, n)
    say(f"{versions} ModelVersions Ready; creating {len(objects)} Deployments")
    started = time.monotonic()
    create_deployments(rest, objects)
    created = time.monotonic() - started
    say(f"created in {created:.1f}s; waiting until all are Healthy on v1")
    healthy = wait_for_states(
        rest, lambda n: TARGET["steady"], list(objects), timeout=len(objects) * 3.0
    )
    say(f"all Healthy {healthy:.0f}s after the first create; starting v2 on the others")
    moving = [n for n in objects if kind_of(n) != "steady"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(
            pool.map(
                lambda name: rest.merge_patch(
                    f"{GROUP}/namespaces/{NAMESPACE}/deployments/{name}",
                    {"spec": {"modelVersion": f"{MODEL}-v2"}},
                ),
                moving,
            )
        )
    held = wait_for_states(
        rest, lambda n: TARGET[kind_of(n)], list(objects), timeout=len(objects) * 2.0
    )
    say(f"canaries and blue-greens held {held:.0f}s after the patches")
    return {"create_seconds": created, "all_healthy_seconds": healthy, "held_seconds": held}


def census(rest: Rest) -> dict[str, int]:
    """Objects in the namespace, by kind: what the operator's watches carry."""
    paths = {
        "modelwerk Deployments": f"{GROUP}/namespaces/{NAMESPACE}/deployments",
        "ModelVersions": f"{GROUP}/namespaces/{NAMESPACE}/modelversions",
        "apps/v1 Deployments": f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
        "ReplicaSets": f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets",
        "Services": f"/api/v1/namespaces/{NAMESPACE}/services",
        "Pods": f"/api/v1/namespaces/{NAMESPACE}/pods",
        "Jobs": f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs",
    }
    return {kind: len(rest.get(path)["items"]) for kind, path in paths.items()}


def measure(
    kubeconfig: Path,
    workdir: Path,
    n: int,
    resync: float,
    passes: int,
    workers: int,
    python: Path,
    trace: Path | None = None,
    name: str = "measured",
    env: dict[str, str] | None = None,
) -> tuple[list[Sample], list[dict[str, float]], str]:
    """A fresh operator until every Deployment was reconciled ``passes`` + 1 times (the initial
    sync, then ``passes`` resyncs); its process sampled every second."""
    op = Operator(
        kubeconfig,
        workdir,
        name,
        python,
        env={
            "MODELWERK_RESYNC_SECONDS": str(resync),
            "MODELWERK_WORKERS": str(workers),
            **({"BENCH_TRACEMALLOC": str(trace)} if trace else {}),
            **(env or {}),
        },
    )
    op.start()
    series: list[dict[str, float]] = []
    counts: Counter[str] = Counter()
    done = 0
    try:
        while done < passes + 1:
            time.sleep(1.0)
            if not op.alive():
                raise RuntimeError(f"the operator exited:\n{op.proc.tail() if op.proc else ''}")
            status = op.proc_status()
            series.append({"t": time.monotonic(), **status})
            counts.update(s[3] for s in op.new_samples() if s[1:3] == ("reconcile", "Deployment"))
            reached = min(counts.values()) if len(counts) >= n else 0
            if reached > done:
                done = reached
                if trace is not None and op.proc is not None:
                    os.kill(op.proc.pid, signal.SIGUSR1)
                say(
                    f"  {'initial sync' if done == 1 else f'resync {done - 1}'} done "
                    f"{time.monotonic() - op.started:.0f}s after start: RSS "
                    f"{status['VmRSS']:.1f} MiB, CPU {status['cpu_seconds']:.0f}s"
                )
            if time.monotonic() - op.started > 3600 * 2:
                raise TimeoutError(f"only {done} passes within two hours")
        metrics = op.metrics()
        # How much of the RSS is memory freed but kept by the allocators (see instrumented.py).
        before = op.proc_status()
        if op.proc is not None:
            os.kill(op.proc.pid, signal.SIGUSR2)
        time.sleep(5)
        after = op.proc_status()
        series.append({"t": time.monotonic(), **after, "trimmed": 1.0})
        say(f"  gc + malloc_trim: VmRSS {before['VmRSS']:.1f} -> {after['VmRSS']:.1f} MiB")
    finally:
        op.stop()
    for point in series:
        point["t"] -= op.started
    samples = [(t - op.started, what, kind, name, d) for t, what, kind, name, d in op.samples()]
    return samples, series, metrics


def analyse(
    samples: list[Sample], series: list[dict[str, float]], n: int, metrics: str
) -> dict[str, Any]:
    """Pass k ends when every Deployment has been reconciled k + 1 times (pass 0: the initial
    sync); durations of each pass, RSS at its end, and the timing distributions."""
    counts: Counter[str] = Counter()
    ends: list[float] = []
    for t, what, kind, name, _ in sorted(samples):
        if (what, kind) != ("reconcile", "Deployment"):
            continue
        counts[name] += 1
        if len(counts) >= n and min(counts.values()) > len(ends):
            ends.append(t)

    def at(t: float) -> dict[str, float]:
        return next((p for p in series if p["t"] >= t), series[-1])

    first = min(t for t, what, kind, _, _ in samples if (what, kind) == ("reconcile", "Deployment"))
    bounds = [0.0, *ends]
    passes = []
    for k, end in enumerate(ends):
        window = [s for s in samples if bounds[k] < s[0] <= end and s[2] == "Deployment"]
        by_what: dict[str, list[float]] = defaultdict(list)
        for _, what, _, _, seconds in window:
            by_what[what].append(seconds)
        point = at(end)
        passes.append(
            {
                "pass": "initial sync" if k == 0 else f"resync {k}",
                "ended_seconds": end,
                "duration_seconds": end - (first if k == 0 else bounds[k]),
                "reconciles": len(by_what["reconcile"]),
                "errors": len(by_what["reconcile-error"]),
                "VmRSS": point["VmRSS"],
                "VmHWM": point["VmHWM"],
                "cpu_seconds": point["cpu_seconds"],
                **{what: distribution([x * 1000 for x in v]) for what, v in by_what.items()},
            }
        )
    after_sync = [s for s in samples if s[0] > ends[0] and s[2] == "Deployment"]
    return {
        "first_reconcile_seconds": first,
        "initial_sync_seconds": ends[0],
        "passes": passes,
        "resyncs": {
            what: distribution([s[4] * 1000 for s in after_sync if s[1] == what])
            for what in ("reconcile", "observe", "decide")
        },
        # Reconciles cancelled when the operator is stopped at the end are not errors.
        "errors": sum(1 for s in samples if s[1] == "reconcile-error" and s[0] <= ends[-1]),
        "other_kinds_reconciled": dict(Counter(s[2] for s in samples if s[2] != "Deployment")),
        "peak_rss_mib": max(p["VmHWM"] for p in series),
        "rss_after_gc_and_malloc_trim_mib": next(
            (p["VmRSS"] for p in series if p.get("trimmed")), None
        ),
        "histogram_deployment": histogram_quantiles(
            metrics, "modelwerk_reconcile_duration_seconds", "Deployment"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=3, help="ModelVersions (at least 2)")
    parser.add_argument("--resync", type=float, default=60.0, help="MODELWERK_RESYNC_SECONDS")
    parser.add_argument("--passes", type=int, default=6, help="resync periods measured")
    parser.add_argument("--workers", type=int, default=8, help="MODELWERK_WORKERS")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument(
        "--dev-venv",
        action="store_true",
        help="run the operator with this interpreter (every extra installed) instead of a venv "
        "with the operator image's packages (image_env.py)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE,...",
        help="after the main measurement, measure a fresh operator on the same cluster with "
        "these environment variables (MODELWERK_* settings or instrumented.py's BENCH_* "
        "knobs; python=dev runs it in the development venv); repeatable; results in "
        "out/variants/NAME/",
    )
    parser.add_argument(
        "--variant-passes", type=int, default=1, help="resync periods measured per variant"
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="profile the operator's memory (out/tracemalloc.txt after each pass); "
        "its RSS is then not the operator's alone",
    )
    args = parser.parse_args(argv)
    variants = dict(parse_variant(v) for v in args.variant)
    args.out.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    objects = plan_objects(args.objects)
    info["mix"] = dict(Counter(objects.values()))
    python = Path(sys.executable) if args.dev_venv else operator_python(say)
    info["operator_python"] = {
        "executable": str(python),
        "packages": subprocess.run(
            [str(python), "-m", "pip", "freeze"], check=True, capture_output=True, text=True
        ).stdout.split(),
    }
    binaries = ensure_binaries(progress=say)
    # A /16 for Services: 1,000 Deployments have about 1,600 of them (the tests' /24 has 254).
    cp = ControlPlane(binaries, service_cidr="10.0.0.0/16", progress=say)
    cp.start()
    node: StandInNode | None = None
    setup_op: Operator | None = None
    try:
        rest, node, kubeconfig = setup_cluster(cp, cp.workdir)
        setup_op = Operator(kubeconfig, cp.workdir, "setup", python)
        setup_op.start()
        info["setup"] = populate(rest, node, objects, args.versions)
        setup_op.stop()
        node.close()  # from here on nothing changes: the node's polling would only add load
        node = None
        info["census"] = census(rest)
        say(f"cluster holds {info['census']}; measuring a fresh operator")
        samples, series, metrics = measure(
            kubeconfig,
            cp.workdir,
            args.objects,
            args.resync,
            args.passes,
            args.workers,
            python,
            (args.out / "tracemalloc.txt").resolve() if args.tracemalloc else None,
        )
        info["final_states"] = {
            f"{phase}/{reason}": count
            for (phase, reason), count in Counter(v[:2] for v in states(rest).values()).items()
        }
        write_raw(args.out, samples, series, metrics)
        info["measured"] = analyse(samples, series, args.objects, metrics)
        info["goals"] = goals(info["measured"])
        info["variants"] = {}
        for name, env in variants.items():
            info["variants"][name] = measure_variant(
                kubeconfig, cp.workdir, args, name, env, python
            )
        info["machine"]["load_average_at_end"] = os.getloadavg()
    finally:
        if setup_op is not None:
            setup_op.stop()
        if node is not None:
            node.close()
        cp.stop()
    (args.out / "result.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info["goals"], indent=1))
    return 0


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``NAME:VAR=VALUE,VAR=VALUE`` -> (NAME, {VAR: VALUE})."""
    name, _, assignments = text.partition(":")
    env = dict(a.split("=", 1) for a in assignments.split(",") if a)
    return name, env


def measure_variant(
    kubeconfig: Path,
    workdir: Path,
    args: argparse.Namespace,
    name: str,
    env: dict[str, str],
    python: Path,
) -> dict[str, Any]:
    """The operator again, from a cold start on the same cluster, with ``env``."""
    env = dict(env)
    if env.pop("python", None) == "dev":
        python = Path(sys.executable)
    say(f"variant {name}: {env} with {python}")
    samples, series, metrics = measure(
        kubeconfig,
        workdir,
        args.objects,
        args.resync,
        args.variant_passes,
        args.workers,
        python,
        name=f"variant-{name}",
        env=env,
    )
    out = args.out / "variants" / name
    out.mkdir(parents=True, exist_ok=True)
    write_raw(out, samples, series, metrics)
    measured = analyse(samples, series, args.objects, metrics)
    result = {
        "env": env,
        "python": str(python),
        "load_average": os.getloadavg(),
        "measured": measured,
        "goals": goals(measured),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return {k: v for k, v in result.items() if k != "measured"} | {
        "passes": [
            {k: p[k] for k in ("pass", "duration_seconds", "VmRSS", "VmHWM", "cpu_seconds")}
            for p in measured["passes"]
        ],
        "peak_rss_mib": measured["peak_rss_mib"],
        "initial_sync_seconds": measured["initial_sync_seconds"],
    }


def write_raw(
    out: Path, samples: list[Sample], series: list[dict[str, float]], metrics: str
) -> None:
    """The raw data behind result.json: every timed call, RSS each second, the /metrics page."""
    (out / "metrics.txt").write_text(metrics)
    with open(out / "samples.txt", "w") as f:
        for t, what, kind, name, seconds in samples:
            f.write(f"{t:.6f} {what} {kind} {name} {seconds:.9f}\n")
    with open(out / "rss.csv", "w") as f:
        f.write("seconds,vmrss_mib,vmhwm_mib,cpu_seconds\n")
        for p in series:
            f.write(f"{p['t']:.1f},{p['VmRSS']:.2f},{p['VmHWM']:.2f},{p['cpu_seconds']:.2f}\n")


def goals(measured: dict[str, Any]) -> dict[str, Any]:
    decide = measured["resyncs"]["decide"]["p99"] / 1000
    rss = max(p["VmRSS"] for p in measured["passes"])
    return {
        "decision_p99_seconds": decide,
        "decision_goal_ratio": decide / GOAL_DECISION_P99,
        "rss_max_mib": rss,
        "rss_goal_ratio": rss / GOAL_RSS_MIB,
        "peak_rss_mib": measured["peak_rss_mib"],
    }


if __name__ == "__main__":
    sys.exit(main())
