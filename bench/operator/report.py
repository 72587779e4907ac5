"""Render the tables of results.md from the JSON the two benchmarks write.

.venv/bin/python -m bench.operator.report out/decision.json out/result.json out/rss.csv
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def _row(label: str, d: dict[str, float]) -> str:
    if not d.get("n"):
        return f"| {label} | 0 | | | | | |"
    return (
        f"| {label} | {d['n']:.0f} | {d['mean']:.2f} | {d['p50']:.2f} | {d['p90']:.2f} | "
        f"{d['p99']:.2f} | {d['max']:.2f} |"
    )


HEAD = "| what | n | mean ms | p50 ms | p90 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|"


def decision(result: dict[str, Any]) -> str:
    out = [
        f"{result['objects']} objects {result['mix']}, {result['rounds']} rounds, "
        f"{result['model_versions']} ModelVersions, analysis checks "
        f"{', '.join(result['analysis_checks'])}; the timing loop got "
        f"{result['cpu_share']:.2f} of a core (CPU/wall).",
        "",
        HEAD,
    ]
    for kind, parts in result["summary_ms"].items():
        for part in ("decide", "decide_cpu", "parse", "observe", "apply", "total", "total_cpu"):
            out.append(_row(f"{kind}: {part}", parts[part]))
    return "\n".join(out)


def end_to_end(result: dict[str, Any]) -> str:
    m = result["measured"]
    out = [HEAD]
    for phase in ("initial_sync", "resyncs"):
        for what in ("reconcile", "observe", "decide"):
            out.append(_row(f"{phase}: {what}", m[phase].get(what, {})))
    hist = m["histogram_deployment"]
    out += [
        "",
        f'`modelwerk_reconcile_duration_seconds{{kind="Deployment"}}` at the end: count '
        f"{hist['count']:.0f}, sum {hist['sum_seconds']:.1f} s, histogram_quantile p50 "
        f"{_s(hist['p50_seconds'])}, p99 {_s(hist['p99_seconds'])}; buckets (le: cumulative) "
        + ", ".join(f"{_le(b)}: {c:.0f}" for b, c in hist["buckets"]),
    ]
    return "\n".join(out)


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.0f} ms"


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else f"{bound:g}"


def memory(result: dict[str, Any], rss_csv: Path | None) -> str:
    m = result["measured"]
    out = ["| when | VmRSS MiB | VmHWM MiB | operator CPU s |", "|---|---:|---:|---:|"]
    for when, s in m["rss_mib"].items():
        out.append(f"| {when} | {s['VmRSS']:.1f} | {s['VmHWM']:.1f} | {s['cpu_seconds']:.1f} |")
    points = list(m["rss_mib"].values())
    resyncs = points[1:]
    if len(resyncs) >= 2:
        xs = list(range(1, len(resyncs) + 1))
        ys = [p["VmRSS"] for p in resyncs]
        slope = statistics.linear_regression(xs, ys).slope
        out += [
            "",
            f"Growth from resync 1 to resync {len(resyncs)}: {ys[-1] - ys[0]:+.2f} MiB; "
            f"least-squares slope {slope * 1024:+.0f} KiB per resync period; from the end of "
            f"the initial sync to the last resync {ys[-1] - points[0]['VmRSS']:+.2f} MiB.",
        ]
    if rss_csv is not None and rss_csv.exists():
        rows = [line.split(",") for line in rss_csv.read_text().splitlines()[1:]]
        rss = [float(r[1]) for r in rows]
        out.append(
            f"Sampled every second ({len(rss)} samples): min {min(rss):.1f}, "
            f"max {max(rss):.1f} MiB."
        )
    return "\n".join(out)


def main(argv: list[str]) -> int:
    decision_json, result_json = Path(argv[0]), Path(argv[1])
    rss_csv = Path(argv[2]) if len(argv) > 2 else None
    d = json.loads(decision_json.read_text())
    r = json.loads(result_json.read_text())
    print("## Pure decision\n")
    print(decision(d))
    print("\n## End to end\n")
    print(json.dumps({k: r[k] for k in ("machine", "mix", "setup", "census", "final_states")}))
    print(end_to_end(r))
    print("\n## Memory\n")
    print(memory(r, rss_csv))
    print("\n## Goals\n")
    print(json.dumps(r["goals"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
