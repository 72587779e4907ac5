#!/usr/bin/env python3
"""Load-test modelwerk's server and MLServer side by side, in one run, with wrk.

Per model, every configured server is started (each on its own 127.0.0.1 port) and checked to
return the same predictions as the estimator in-process. Then, for every (rows, concurrency)
point, each server gets an unrecorded warm-up, and the recorded repetitions alternate between
the servers (A B, B A, ...) so that load from other work on the shared machine hits both alike.
Each recorded run appends one JSON line to <out>/raw.jsonl: wrk's counts and latency
percentiles, the server's CPU (its whole process tree, from /proc), wrk's CPU, CPU used by
anything else on the machine ("foreign"), and the server's memory (RSS summed over its tree).

Servers: ``modelwerk:<workers>`` (``modelwerk serve --backend joblib``, the venv this script
runs in), ``onnx:<workers>`` (the same with the verified compiled model on ONNX Runtime),
``modelwerk-capture:<workers>`` (``modelwerk`` with inference capture on: every prediction and
its class probabilities, inputs at the default sample rate, written as Parquet to a directory of
the run), ``floor:<workers>`` (the same server with a model that does nothing: the HTTP floor)
and ``mlserver:<parallel_workers>`` (MLServer + mlserver-sklearn from $PERF_WORK/venv, installed
by the baseline's run_all.sh setup step), e.g. ``--servers modelwerk:1,mlserver:1``.
Only 127.0.0.1 is contacted; every server started here is stopped by its process group id.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
MODELWERK_KINDS = ("modelwerk", "modelwerk-capture", "onnx", "floor")
"""modelwerk serve with the joblib backend, with the ONNX backend, and the HTTP floor (the same
server whose backend does nothing, ``http_floor.py``)."""
WORK = Path(os.environ.get("PERF_WORK", str(Path(tempfile.gettempdir()) / "mlserver-baseline")))
HOST = "127.0.0.1"
TICK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


# ------------------------------------------------------------------ /proc
def tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2 :].split()[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total


def machine() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values[:8]), values[3] + values[4]


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def foreign_cores(pids: list[int], seconds: float = 2.0) -> float:
    own = [*pids, os.getpid()]
    (t0, i0), c0, w0 = machine(), cpu_ticks(own), time.time()
    time.sleep(seconds)
    (t1, i1), c1, w1 = machine(), cpu_ticks(own), time.time()
    busy = ((t1 - t0) - (i1 - i0)) / max(1, t1 - t0) * NCPU
    return max(0.0, busy - (c1 - c0) / TICK / (w1 - w0))


def wait_quiet(pids: list[int], limit: float = 0.2, max_wait: float = 30.0) -> float:
    started = time.time()
    while True:
        load = foreign_cores(pids)
        if load < limit or time.time() - started > max_wait:
            return load
        print(f"    waiting: other processes use {load:.2f} cores", flush=True)


# ------------------------------------------------------------------ servers
class Server:
    def __init__(
        self,
        kind: str,
        workers: int,
        model: str,
        port: int,
        args: argparse.Namespace,
        env: dict[str, str] | None = None,
    ):
        self.kind, self.workers, self.model, self.port = kind, workers, model, port
        self.env = env
        self.name = f"{kind}-w{workers}{args.tag if kind != 'mlserver' else ''}"
        self.store: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.args = args

    def command(self, rundir: Path) -> list[str]:
        a = self.args
        if self.kind in MODELWERK_KINDS:
            directory = WORK / "modelwerk" / self.model
            card = json.loads((directory / "model-card.json").read_text())
            program = (
                [sys.executable, str(HERE / "http_floor.py")]
                if self.kind == "floor"
                else [sys.executable, "-m", "modelwerk", "serve"]
            )
            backend = ["--backend", "joblib"]
            if self.kind == "onnx":
                backend = [
                    "--backend",
                    "onnx",
                    "--compiled-uri",
                    card["compiled"]["uri"],
                    "--compiled-sha256",
                    card["compiled"]["sha256"],
                ]
            capture: list[str] = []
            if self.kind == "modelwerk-capture":
                self.store = rundir / "store"
                capture = ["--capture", "--capture-root", str(self.store), "--namespace", "bench"]
            return [
                *program,
                "--model-uri",
                str(directory / "model.joblib"),
                "--sha256",
                card["artifact"]["sha256"],
                *backend,
                "--name",
                self.model,
                "--version",
                "v1",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--max-batch-size",
                str(a.mw_batch_size),
                "--max-batch-delay-ms",
                str(a.mw_batch_delay_ms),
                "--log-level",
                "warning",
                *capture,
            ]
        mdir = rundir / "models" / self.model
        mdir.mkdir(parents=True)
        os.symlink(WORK / "models" / self.model / "model.joblib", mdir / "model.joblib")
        (mdir / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": self.model,
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "max_batch_size": a.mls_batch_size,
                    "max_batch_time": a.mls_batch_time,
                    "parameters": {"uri": "./model.joblib", "version": "v1"},
                }
            )
        )
        (rundir / "settings.json").write_text(
            json.dumps(
                {
                    "debug": False,
                    "host": HOST,
                    "http_port": self.port,
                    "grpc_port": self.port + 1,
                    "metrics_port": self.port + 2,
                    "parallel_workers": self.workers,
                    "metrics_dir": str(rundir / ".metrics"),
                    "environments_dir": str(rundir / ".envs"),
                }
            )
        )
        return [str(WORK / "venv" / "bin" / "mlserver"), "start", str(rundir)]

    def start(self, logdir: Path) -> float:
        rundir = Path(tempfile.mkdtemp(prefix=f"{self.name}-{self.model}-", dir=WORK))
        log = (logdir / f"{self.name}-{self.model}.log").open("wb")
        started = time.time()
        self.proc = subprocess.Popen(
            self.command(rundir),
            cwd=rundir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if self.env is None else {**os.environ, **self.env},
        )
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; see {log.name}"
                )
            try:
                with urllib.request.urlopen(
                    f"{self.url}/v2/models/{self.model}/ready", timeout=1
                ) as r:
                    if r.status == 200:
                        return time.time() - started
            except OSError:
                pass
            if time.time() - started > 180:
                raise RuntimeError(f"{self.name} not ready after 180 s")
            time.sleep(0.25)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pids(self) -> list[int]:
        assert self.proc is not None
        return tree(self.proc.pid)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the server and its workers
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def capture_counts(self) -> dict[str, float]:
        """Rows the capturing server wrote and dropped, from its /metrics (all workers)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as r:
            text = r.read().decode()
        counts = {"written": 0.0, "dropped": 0.0, "files": 0.0}
        for line in text.splitlines():
            for key, name in (
                ("written", "modelwerk_capture_written_rows_total{"),
                ("dropped", "modelwerk_capture_dropped_total{"),
                ("files", "modelwerk_capture_files_total{"),
            ):
                if line.startswith(name) and 'stream="predictions"' in line:
                    counts[key] += float(line.rsplit(" ", 1)[1])
        return counts

    def check(self, rows: int) -> None:
        import joblib

        if self.kind == "floor":
            return  # it answers zeros on purpose
        body = (WORK / "bodies" / f"{self.model}-{rows}.json").read_bytes()
        request = urllib.request.Request(
            f"{self.url}/v2/models/{self.model}/infer",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            out = json.loads(r.read())["outputs"][0]
        want = joblib.load(WORK / "models" / self.model / "model.joblib").predict(
            np.load(WORK / "bodies" / f"{self.model}-{rows}.npy")
        )
        got = np.asarray(out["data"]).reshape(-1)
        if not np.array_equal(got.astype(want.dtype), want):
            raise RuntimeError(f"{self.name} {self.model} rows={rows}: wrong predictions")


# ------------------------------------------------------------------ wrk
def wrk(
    server: Server, rows: int, conc: int, seconds: int, header: str | None = None
) -> dict[str, Any]:
    env = dict(os.environ, BODY_FILE=str(WORK / "bodies" / f"{server.model}-{rows}.json"))
    if header:
        env["EXTRA_HEADER"] = header
    cmd = [
        "wrk",
        "-t",
        "1" if conc == 1 else "2",
        "-c",
        str(conc),
        "-d",
        f"{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "post.lua"),
        f"{server.url}/v2/models/{server.model}/infer",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed: {done.stdout}\n{done.stderr}")
    return dict(json.loads(lines[0].removeprefix("RESULT ")))


def measure(
    server: Server,
    others: list[Server],
    rows: int,
    conc: int,
    seconds: int,
    header: str | None = None,
) -> dict[str, Any]:
    pids = server.pids
    idle = [p for o in others for p in o.pids]
    me = [os.getpid()]
    c0, (t0, i0), o0, m0 = cpu_ticks(pids), machine(), cpu_ticks(idle), cpu_ticks(me)
    ru0, w0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    w = wrk(server, rows, conc, seconds, header)
    wall = time.time() - w0
    pids = server.pids
    c1, (t1, i1), o1, m1 = cpu_ticks(pids), machine(), cpu_ticks(idle), cpu_ticks(me)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cores = (c1 - c0) / TICK / wall
    wrk_cores = (ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime) / wall
    busy = ((t1 - t0) - (i1 - i0)) / max(1, t1 - t0) * NCPU
    idle_servers = (o1 - o0) / TICK / wall
    foreign = max(0.0, busy - server_cores - wrk_cores - idle_servers - (m1 - m0) / TICK / wall)
    secs = w["duration_us"] / 1e6
    return {
        "rps": w["requests"] / secs,
        "rows_per_s": w["requests"] * rows / secs,
        "p50_ms": w["p50_us"] / 1000,
        "p90_ms": w["p90_us"] / 1000,
        "p99_ms": w["p99_us"] / 1000,
        "max_ms": w["max_us"] / 1000,
        "errors": w["non200"] + w["socket_errors"],
        "server_cores": server_cores,
        "wrk_cores": wrk_cores,
        "idle_servers_cores": idle_servers,
        "foreign_cores": foreign,
        "rss_mib": rss_mib(pids),
        "nproc": len(pids),
        "wrk": w,
    }


def report(r: dict[str, Any]) -> None:
    print(
        f"  {r['server']:12s} {r['model']:7s} rows={r['rows']:<3d} c={r['conc']:<2d}"
        f" rep {r['rep']}: "
        f"{r['rps']:7.0f} req/s  p50 {r['p50_ms']:6.1f} p99 {r['p99_ms']:6.1f} ms  "
        f"srv {r['server_cores']:.2f} wrk {r['wrk_cores']:.2f} foreign {r['foreign_cores']:.2f} "
        f"rss {r['rss_mib']:.0f} MiB  errors {r['errors']}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", default="modelwerk:1,mlserver:1")
    ap.add_argument("--models", default="iris-rf,bc-gb")
    ap.add_argument("--rows", default="1,100")
    ap.add_argument("--conc", default="1,8,64")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--port", type=int, default=18600)
    ap.add_argument("--mw-batch-size", type=int, default=64)
    ap.add_argument("--mw-batch-delay-ms", type=float, default=2.0)
    ap.add_argument("--mls-batch-size", type=int, default=64)
    ap.add_argument("--mls-batch-time", type=float, default=0.01)
    ap.add_argument(
        "--quiet-wait", type=float, default=30.0, help="most seconds to wait for a quiet machine"
    )
    ap.add_argument("--tag", default="", help="suffix for modelwerk's server name, e.g. -d2")
    ap.add_argument("--out", default=str(HERE / "out"))
    a = ap.parse_args()
    out = Path(a.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # so finally: stops servers
    with (out / "raw.jsonl").open("a") as raw:
        for model in a.models.split(","):
            servers = []
            for i, spec in enumerate(a.servers.split(",")):
                kind, _, workers = spec.partition(":")
                servers.append(Server(kind, int(workers or 1), model, a.port + 10 * i, a))
            try:
                for s in servers:
                    ready_s = s.start(out / "logs")
                    for rows in a.rows.split(","):
                        s.check(int(rows))
                    time.sleep(1)
                    event = {
                        "event": "ready",
                        "server": s.name,
                        "model": model,
                        "ready_s": ready_s,
                        "idle_rss_mib": rss_mib(s.pids),
                        "nproc": len(s.pids),
                        "settings": vars(a),
                    }
                    raw.write(json.dumps(event) + "\n")
                    print(
                        f"[{s.name}] {model} ready in {ready_s:.1f}s, {len(s.pids)} processes, "
                        f"RSS {event['idle_rss_mib']:.0f} MiB",
                        flush=True,
                    )
                for rows in [int(r) for r in a.rows.split(",")]:
                    for conc in [int(c) for c in a.conc.split(",")]:
                        for s in servers:
                            wrk(s, rows, conc, a.warmup)
                        for rep in range(1, a.reps + 1):
                            order = servers if rep % 2 else servers[::-1]
                            for s in order:
                                others = [o for o in servers if o is not s]
                                quiet = wait_quiet(
                                    s.pids + [p for o in others for p in o.pids],
                                    max_wait=a.quiet_wait,
                                )
                                rec = measure(s, others, rows, conc, a.duration)
                                rec.update(
                                    server=s.name,
                                    model=model,
                                    rows=rows,
                                    conc=conc,
                                    rep=rep,
                                    foreign_before=quiet,
                                    duration=a.duration,
                                )
                                raw.write(json.dumps(rec) + "\n")
                                raw.flush()
                                report(rec)
                for s in servers:
                    if s.store is not None:
                        event = {"event": "capture", "server": s.name, "model": model}
                        event.update(s.capture_counts())
                        raw.write(json.dumps(event) + "\n")
                        print(f"[{s.name}] {model} capture: {event}", flush=True)
            finally:
                for s in servers:
                    s.stop()


if __name__ == "__main__":
    main()
