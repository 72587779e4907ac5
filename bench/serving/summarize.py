#!/usr/bin/env python3
"""Turn <out>/raw.jsonl (run.py) and <out>/floor.json (floor.py) into markdown tables.

Per point the median over repetitions (min-max in brackets for req/s), and for each other
configuration the ratio to the ``--baseline`` one (default ``mlserver``) with the same number
of workers (``--baseline modelwerk`` compares capture on, ``modelwerk-capture``, with off), and
for each modelwerk configuration its share of the HTTP floor (``floor-w<n>``: the same server
with a model that does nothing).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def med(rs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--baseline", default="mlserver")
    args = ap.parse_args()
    out, baseline = Path(args.out), args.baseline
    title = {"mlserver": "MLServer", "modelwerk": "capture off"}.get(baseline, baseline)
    points: dict[tuple[str, str, int, int], list[dict[str, Any]]] = {}
    ready: dict[tuple[str, str], dict[str, Any]] = {}
    for line in (out / "raw.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("event") == "ready":
            ready[(r["server"], r["model"])] = r
        elif "rps" in r:
            points.setdefault((r["server"], r["model"], r["rows"], r["conc"]), []).append(r)
    lines = [
        "| server | model | rows/req | conc | req/s median [min-max] | rows/s | p50 ms | p99 ms | "
        f"server CPU cores | RSS MiB | other load cores (max) | errors | vs {title} req/s | "
        f"vs {title} p99 | share of HTTP floor req/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(points, key=lambda k: (k[1], k[2], k[3], k[0])):
        server, model, rows, conc = key
        rs = points[key]
        ratio = p99_ratio = share = ""
        workers = re.search(r"-w(\d+)", server).group(1)  # type: ignore[union-attr]
        base_name = f"{baseline}-w{workers}"
        base = points.get((base_name, model, rows, conc))
        floor_ = points.get((f"floor-w{workers}", model, rows, conc))
        served = server.startswith(("modelwerk", "onnx"))
        if not server.startswith(base_name) and base:
            ratio = f"{med(rs, 'rps') / med(base, 'rps'):.2f}x"
            p99_ratio = f"{med(rs, 'p99_ms') / med(base, 'p99_ms'):.2f}x"
        if served and floor_:
            share = f"{100 * med(rs, 'rps') / med(floor_, 'rps'):.0f} %"
        rps = sorted(r["rps"] for r in rs)
        lines.append(
            f"| {server} | {model} | {rows} | {conc} | "
            f"{med(rs, 'rps'):.0f} [{rps[0]:.0f}-{rps[-1]:.0f}] | "
            f"{med(rs, 'rows_per_s'):.0f} | {med(rs, 'p50_ms'):.1f} | {med(rs, 'p99_ms'):.1f} | "
            f"{med(rs, 'server_cores'):.2f} | {max(r['rss_mib'] for r in rs):.0f} | "
            f"{max(r['foreign_cores'] for r in rs):.2f} | {sum(r['errors'] for r in rs)} | "
            f"{ratio} | {p99_ratio} | {share} |"
        )
    mem = [
        "| server | model | processes | RSS MiB idle (sum) | startup to ready s |",
        "|---|---|---|---|---|",
    ]
    for (server, model), r in sorted(ready.items()):
        mem.append(
            f"| {server} | {model} | {r['nproc']} | {r['idle_rss_mib']:.0f} | {r['ready_s']:.1f} |"
        )
    text = "## Load tests\n\n" + "\n".join(lines) + "\n\n## Idle memory\n\n" + "\n".join(mem) + "\n"
    floor = out / "floor.json"
    if floor.exists():
        rows_ = ["| model | rows | path | median us/call | min us/call |", "|---|---|---|---|---|"]
        for p in json.loads(floor.read_text())["points"]:
            rows_.append(
                f"| {p['model']} | {p['rows']} | {p['what']} | {p['median_us']:.0f} | "
                f"{p['min_us']:.0f} |"
            )
        text += "\n## In-process floor\n\n" + "\n".join(rows_) + "\n"
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
