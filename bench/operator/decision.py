"""Time the pure Deployment decision over a realistic population of 1,000 objects.

What one reconcile of a modelwerk Deployment spends on CPU besides waiting for the API server,
timed per object and split into its parts:

* ``parse``: ``Deployment.from_k8s`` of the object as read (pydantic validation);
* ``observe``: parsing the namespace's ModelVersions as ``observe_deployment`` does on every
  reconcile (``--versions`` of them);
* ``decide``: ``reconcile_deployment`` -- the decision the goal is about (target resolution,
  the rollout state machine, analysis, drift, children and status);
* ``apply``: what ``apply_plan`` computes before its requests: the status diff and the JSON
  bodies of the children and the status.

Each round visits every object once in a new random order, with the garbage collector on as in
the operator; wall-clock nanoseconds per call (``perf_counter_ns``).

    .venv/bin/python -m bench.operator.decision [--objects 1000] [--rounds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

from bench.operator import population
from bench.operator.stats import distribution
from tests.unit.logic.conftest import WORKLOAD

from modelwerk.api.v1alpha1 import Deployment, ModelVersion
from modelwerk.logic.deployment import reconcile_deployment

PARTS = ("parse", "observe", "decide", "apply", "total", "decide_cpu", "total_cpu")
GOALS = {"decide": 0.100}  # seconds, p99 (issue #5)


def _version_bodies(count: int) -> list[dict[str, Any]]:
    """``count`` ModelVersions in the namespace: the bench's own plus other models' versions."""
    own = population.version_bodies()
    others = []
    for i in range(max(0, count - len(own))):
        body = json.loads(json.dumps(own[0]))
        body["metadata"]["name"] = f"other-model-{i // 5}-v{i % 5 + 1}"
        body["spec"]["model"] = f"other-model-{i // 5}"
        body["spec"]["version"] = i % 5 + 1
        others.append(body)
    return own + others


def time_case(case: population.Case, version_bodies: list[dict[str, Any]]) -> dict[str, int]:
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    c0 = cpu()
    t0 = clock()
    dep = Deployment.from_k8s(case.body)
    t1 = clock()
    for body in version_bodies:
        ModelVersion.from_k8s(body)
    c2 = cpu()
    t2 = clock()
    plan = reconcile_deployment(dep, case.observed, now=case.now, config=WORKLOAD)
    t3 = clock()
    c3 = cpu()
    desired = plan.status.to_k8s()
    changed = desired != dep.status.to_k8s()
    json.dumps([*plan.apply, desired if changed else None])
    t4 = clock()
    c4 = cpu()
    return {
        "parse": t1 - t0,
        "observe": t2 - t1,
        "decide": t3 - t2,
        "apply": t4 - t3,
        "total": t4 - t0,
        "decide_cpu": c3 - c2,
        "total_cpu": c4 - c0,
    }


def summarize(samples: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """kind (and "all") -> part -> {n, mean, p50, p90, p99, max} in milliseconds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for kind in (*population.KINDS, "all"):
        rows = [s for s in samples if kind in ("all", s["kind"])]
        if not rows:
            continue
        out[kind] = {part: distribution([r[part] / 1e6 for r in rows]) for part in PARTS}
    return out


def run(
    objects: int, rounds: int, versions: int, mix: dict[str, float], seed: int
) -> dict[str, Any]:
    started = time.perf_counter()
    cases = population.build(objects, mix)
    built = time.perf_counter() - started
    bodies = _version_bodies(versions)
    rng = random.Random(seed)
    for case in cases[:50]:  # warm-up: imports, caches, first-call costs
        time_case(case, bodies)
    samples: list[dict[str, Any]] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        order = list(range(len(cases)))
        rng.shuffle(order)
        for i in order:
            samples.append({"kind": cases[i].kind, **time_case(cases[i], bodies)})
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    summary = summarize(samples)
    return {
        "objects": len(cases),
        "mix": {k: sum(c.kind == k for c in cases) for k in population.KINDS},
        "rounds": rounds,
        "model_versions": len(bodies),
        "analysis_checks": [c["metric"] for c in population.checks()],
        "population_build_seconds": built,
        "loop_cpu_seconds": cpu,
        "loop_wall_seconds": wall,
        "cpu_share": cpu / wall if wall else 0.0,
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "summary_ms": summary,
        "goal_p99_ms": GOALS["decide"] * 1000,
        "goal_ratio": summary["all"]["decide"]["p99"] / (GOALS["decide"] * 1000),
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| objects | part | n | mean ms | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, parts in result["summary_ms"].items():
        for part, s in parts.items():
            lines.append(
                f"| {kind} | {part} | {s['n']:.0f} | {s['mean']:.3f} | {s['p50']:.3f} | "
                f"{s['p90']:.3f} | {s['p99']:.3f} | {s['max']:.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--versions",
        type=int,
        default=len(population.versions()),
        help="ModelVersions in the namespace (observe parses all of them)",
    )
    parser.add_argument("--mix", default="steady=0.7,canary=0.2,bluegreen=0.1")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    mix = {k: float(v) for k, v in (item.split("=") for item in args.mix.split(","))}
    result = run(args.objects, args.rounds, args.versions, mix, args.seed)
    print(table(result))
    decide = result["summary_ms"]["all"]["decide"]
    print(
        f"\ndecision p99 {decide['p99']:.3f} ms over {decide['n']:.0f} decisions "
        f"(goal < {result['goal_p99_ms']:.0f} ms: {result['goal_ratio']:.4f} of it); "
        f"mix {result['mix']}, {result['model_versions']} ModelVersions, "
        f"CPU share of the loop {result['cpu_share']:.2f}"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
