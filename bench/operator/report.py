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
    for p in m["passes"]:
        for what in ("reconcile", "observe", "decide"):
            out.append(_row(f"{p['pass']}: {what}", p.get(what, {})))
    for what in ("reconcile", "observe", "decide"):
        out.append(_row(f"all resyncs: {what}", m["resyncs"].get(what, {})))
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
    out = [
        "| pass | ended (s after start) | took (s) | reconciles | errors | VmRSS MiB | VmHWM MiB "
        "| CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in m["passes"]:
        out.append(
            f"| {p['pass']} | {p['ended_seconds']:.0f} | {p['duration_seconds']:.0f} | "
            f"{p['reconciles']} | {p['errors']} | {p['VmRSS']:.1f} | {p['VmHWM']:.1f} | "
            f"{p['cpu_seconds']:.1f} |"
        )
    resyncs = m["passes"][1:]
    if len(resyncs) >= 2:
        ys = [p["VmRSS"] for p in resyncs]
        slope = statistics.linear_regression(range(1, len(ys) + 1), ys).slope
        out += [
            "",
            f"VmRSS from resync 1 to resync {len(ys)}: {ys[-1] - ys[0]:+.2f} MiB "
            f"(least-squares slope {slope * 1024:+.0f} KiB per pass); from the end of the initial "
            f"sync to the last resync: {ys[-1] - m['passes'][0]['VmRSS']:+.2f} MiB.",
        ]
    if rss_csv is not None and rss_csv.exists():
        rows = [line.split(",") for line in rss_csv.read_text().splitlines()[1:]]
        rss = [float(r[1]) for r in rows]
        out.append(
            f"Sampled every second ({len(rss)} samples): min {min(rss):.1f}, "
            f"max {max(rss):.1f} MiB; peak VmHWM {m['peak_rss_mib']:.1f} MiB."
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
    m = r["measured"]
    print(
        f"first Deployment reconciled {m['first_reconcile_seconds']:.1f}s after start; all "
        f"{sum(r['mix'].values())} reconciled once {m['initial_sync_seconds']:.1f}s after start; "
        f"errors {m['errors']}; other kinds {m['other_kinds_reconciled']}\n"
    )
    print(end_to_end(r))
    print("\n## Memory\n")
    print(memory(r, rss_csv))
    print("\n## Goals\n")
    print(json.dumps(r["goals"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
