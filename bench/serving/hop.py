#!/usr/bin/env python3
"""What the A/B router costs: a plain server, a request served by the arm it lands on, and a
request forwarded to the other arm (the extra hop), measured side by side in one run.

Three ``modelwerk serve`` processes on 127.0.0.1, one worker each, serving the same model:

* ``plain``: no experiment;
* ``arm-a`` and ``arm-b``: the two arms of an experiment (50/50, key header ``x-user-id``),
  each the other's peer, as the operator configures them.

wrk sends the same body with a fixed ``x-user-id`` to ``plain`` (``direct``), to ``arm-a`` with
a key that hashes to A (``router, same arm``: the router's own cost), and to ``arm-a`` with a
key that hashes to B (``forwarded``: the hop through ``arm-b``). Repetitions alternate between
the three so that load from other work hits them alike; each records req/s, p50/p99 and the CPU
of every server process. Needs ``run.sh`` steps ``train prepare`` (or the baseline's models)
and wrk.

    flock /tmp/mw-build.lock .venv/bin/python bench/serving/hop.py --out bench/serving/results/hop
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "operator"))

import run  # bench/serving/run.py: servers, wrk, measurements

from modelwerk.runtime.server.experiment import assign

SALT = "bench-hop"


def key_for(arm: str) -> str:
    return next(f"user-{i}" for i in range(1000) if assign(SALT, f"user-{i}", 0.5) == arm)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="iris-rf")
    ap.add_argument("--conc", default="1,8,64")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "hop")
    ap.add_argument("--mw-batch-size", type=int, default=64)
    ap.add_argument("--mw-batch-delay-ms", type=float, default=2.0)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ports = [18601, 18611, 18621]

    def arm_env(arm: str, peer: int) -> dict[str, str]:
        return {
            "MODELWERK_EXPERIMENT_ARM": arm,
            "MODELWERK_EXPERIMENT_SHARE_B": "0.5",
            "MODELWERK_EXPERIMENT_SALT": SALT,
            "MODELWERK_EXPERIMENT_KEY": "header:x-user-id",
            "MODELWERK_EXPERIMENT_PEER_URL": f"http://127.0.0.1:{peer}",
        }

    plain = run.Server("modelwerk", 1, args.model, ports[0], args)
    arm_a = run.Server("modelwerk", 1, args.model, ports[1], args, arm_env("a", ports[2]))
    arm_b = run.Server("modelwerk", 1, args.model, ports[2], args, arm_env("b", ports[1]))
    plain.name, arm_a.name, arm_b.name = "plain", "arm-a", "arm-b"
    servers = [plain, arm_a, arm_b]
    cases = [
        ("direct", plain, f"x-user-id: {key_for('a')}"),
        ("router, same arm", arm_a, f"x-user-id: {key_for('a')}"),
        ("forwarded", arm_a, f"x-user-id: {key_for('b')}"),
    ]
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_start = os.getloadavg()
    results: list[dict[str, Any]] = []
    try:
        for s in servers:
            s.start(args.out)
        for conc in [int(c) for c in args.conc.split(",")]:
            for _, server, header in cases:  # unrecorded warm-up
                run.wrk(server, 1, conc, 3, header)
            for rep in range(args.reps):
                order = cases if rep % 2 == 0 else list(reversed(cases))
                for name, server, header in order:
                    run.wait_quiet([p for s in servers for p in s.pids])
                    others = [s for s in servers if s is not server]
                    r = run.measure(server, others, 1, conc, args.duration, header)
                    r.update(case=name, conc=conc, rep=rep, load=os.getloadavg()[0])
                    results.append(r)
                    print(
                        f"  {name:18s} c={conc:<2d} rep {rep}: {r['rps']:7.0f} req/s  "
                        f"p50 {r['p50_ms']:6.2f} p99 {r['p99_ms']:6.2f} ms  "
                        f"entry {r['server_cores']:.2f} other servers {r['idle_servers_cores']:.2f} "
                        f"cores  foreign {r['foreign_cores']:.2f}  errors {r['errors']}",
                        flush=True,
                    )
    finally:
        for s in servers:
            s.stop()
    with (args.out / "raw.jsonl").open("w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    summary = summarize(results)
    meta = (
        f"Measured {started} with bench/serving/hop.py, model {args.model}, 1 row per request, "
        f"{args.reps} x {args.duration} s per point, 1-minute load {load_start[0]:.2f} at the "
        f"start and {os.getloadavg()[0]:.2f} at the end.\n\n"
    )
    (args.out / "summary.md").write_text(meta + summary)
    print(meta + summary)


def summarize(results: list[dict[str, Any]]) -> str:
    import statistics

    lines = [
        "| case | conc | req/s (median) | p50 ms | p99 ms | server cores (all three) | p50 added |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    base: dict[int, float] = {}
    for conc in sorted({r["conc"] for r in results}):
        for case in ("direct", "router, same arm", "forwarded"):
            rs = [r for r in results if r["conc"] == conc and r["case"] == case]
            if not rs:
                continue
            rps = statistics.median(r["rps"] for r in rs)
            p50 = statistics.median(r["p50_ms"] for r in rs)
            p99 = statistics.median(r["p99_ms"] for r in rs)
            cores = statistics.median(r["server_cores"] + r["idle_servers_cores"] for r in rs)
            if case == "direct":
                base[conc] = p50
            added = p50 - base.get(conc, p50)
            lines.append(
                f"| {case} | {conc} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {cores:.2f} | "
                f"{added:+.2f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
