"""Soak test of the model server: sustained load on loopback, errors and memory over time.

    .venv/bin/python bench/soak/server.py                  # 5 minutes, writes bench/soak/results.md
    .venv/bin/python bench/soak/server.py --seconds 60 --out /tmp/soak.md

Steps: train an iris RandomForest with the runtime trainer (validator + trainer, exactly as the
pods do, into a temporary artifact store), start `modelwerk serve` on 127.0.0.1 in its own
session, then run wrk (bench/serving/post.lua: V2 infer requests of --rows rows) for
--seconds at --connections connections. Meanwhile the RSS of the server's whole process tree is
sampled every --sample-seconds, and /metrics is scraped as Prometheus would (which also makes
the server recompute drift), and a prediction is checked against the model loaded here.

Pass: no error of any kind (non-200 answer, socket error, failed check) and RSS growth from
the first minute of load to the last below --max-growth-percent. Exit 0 on pass, 1 on fail.
Needs wrk (Debian: apt-get install wrk). Contacts nothing but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
POST_LUA = HERE.parent / "serving" / "post.lua"
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Model:
    uri: str
    sha256: str
    features: list[str]


def train(root: Path) -> Model:
    """The iris model as a TrainingJob's pod makes it: validated snapshot, trainer, artifact."""
    from modelwerk.api.v1alpha1.dataset import Dataset
    from modelwerk.api.v1alpha1.training_job import TrainingJob
    from modelwerk.runtime import storage
    from modelwerk.runtime.data import job as data_job
    from modelwerk.runtime.trainer import job

    meta = {"namespace": "soak", "uid": "soak"}
    dataset = Dataset.model_validate(
        {
            "kind": "Dataset",
            "metadata": {"name": "iris", **meta},
            "spec": {"source": {"builtin": "iris"}, "target": "target"},
        }
    )
    data = data_job.validate(dataset, str(root)).result
    if not data.get("valid"):
        raise SystemExit(f"validation failed: {data}")
    tj = TrainingJob.model_validate(
        {
            "kind": "TrainingJob",
            "metadata": {"name": "iris-rf", **meta},
            "spec": {
                "datasetRef": {"name": "iris"},
                "model": {"name": "iris"},
                "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 100}},
            },
        }
    )
    source = job.DatasetInput(
        name="iris",
        version=data["version"],
        snapshot_uri=data["snapshotUri"],
        target="target",
        profile_uri=data["profileUri"],
    )
    outcome = job.run(tj, source, str(root))
    if outcome.exit_code != 0:
        raise SystemExit(f"training failed: {outcome.result}")
    artifact = outcome.result["artifact"]
    return Model(
        uri=storage.to_local(artifact["uri"]),
        sha256=artifact["sha256"],
        features=[t[0] for t in outcome.result["signature"]["inputs"]],
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (uvicorn workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
        todo.extend(children.get(current, []))
    return total


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return int(response.status), bytes(response.read())


def post(url: str, body: dict[str, Any], timeout: float = 10) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(response.status), json.loads(response.read())


@dataclass
class Sampler:
    """RSS samples and side checks (scrape, prediction) while wrk runs."""

    pid: int
    base: str
    check_body: dict[str, Any]
    expected: list[Any]
    every: float
    samples: list[tuple[float, int]] = field(default_factory=list)
    checks: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.is_set():
            self.samples.append((time.monotonic() - started, tree_rss(self.pid)))
            try:
                status, _ = get(f"{self.base}/metrics")
                if status != 200:
                    self.failures.append(f"/metrics answered {status}")
                status, answer = post(f"{self.base}/v2/models/iris/infer", self.check_body)
                got = answer["outputs"][0]["data"]
                if status != 200 or got != self.expected:
                    self.failures.append(f"check: {status} {got} != {self.expected}")
            except Exception as error:  # any failed side check is an error of the soak
                self.failures.append(f"check: {error!r}")
            self.checks += 1
            self.stop.wait(self.every)


def v2_body(frame: Any, features: list[str]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": c, "shape": [len(frame)], "datatype": "FP64", "data": frame[c].tolist()}
            for c in features
        ]
    }


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()[-3000:]}")
        try:
            if get(f"{base}/v2/health/ready", timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server was not ready within 120 s")


def mean_mib(samples: list[tuple[float, int]]) -> float:
    return statistics.fmean(rss for _, rss in samples) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300, help="load duration (default 300)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=10, help="rows per request (default 10)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--warmup-seconds", type=int, default=20)
    parser.add_argument("--max-growth-percent", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    args = parser.parse_args(argv)
    if args.seconds < 120:
        parser.error("--seconds must be at least 120: first and last minute are compared")

    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).data
    with tempfile.TemporaryDirectory(prefix="modelwerk-soak-") as tmp:
        work = Path(tmp)
        print("training the iris model with the runtime trainer ...", flush=True)
        model = train(work / "artifacts")
        import joblib

        expected = joblib.load(model.uri).predict(frame.iloc[:3]).tolist()
        body_file = work / "body.json"
        rows = frame.sample(n=args.rows, replace=True, random_state=0)
        body_file.write_text(json.dumps(v2_body(rows, model.features)))

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = work / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELWERK_")}
        command = [
            sys.executable, "-m", "modelwerk", "serve",
            "--model-uri", model.uri, "--sha256", model.sha256,
            "--name", "iris", "--version", "v1",
            "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(args.workers), "--log-level", "warning",
        ]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            wait_ready(base, proc, log)
            idle_rss = tree_rss(proc.pid)
            wrk = [
                "wrk", "-t", str(args.threads), "-c", str(args.connections),
                "--timeout", "10s", "-s", str(POST_LUA), f"{base}/v2/models/iris/infer",
            ]  # fmt: skip
            wrk_env = dict(os.environ, BODY_FILE=str(body_file))
            print(f"warm-up: {args.warmup_seconds} s", flush=True)
            warm = run_wrk([*wrk, "-d", f"{args.warmup_seconds}s"], wrk_env)
            sampler = Sampler(
                proc.pid, base, v2_body(frame.iloc[:3], model.features), expected,
                args.sample_seconds,
            )  # fmt: skip
            thread = threading.Thread(target=sampler.run, daemon=True)
            print(f"soak: {args.seconds} s at {args.connections} connections", flush=True)
            started = datetime.now(UTC)
            thread.start()
            result = run_wrk([*wrk, "-d", f"{args.seconds}s"], wrk_env)
            sampler.stop.set()
            thread.join()
            final_rss = tree_rss(proc.pid)
            alive = proc.poll() is None
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        server_log = log.read_text()

    first = [s for s in sampler.samples if s[0] < 60]
    last = [s for s in sampler.samples if s[0] >= sampler.samples[-1][0] - 60]
    growth = (mean_mib(last) / mean_mib(first) - 1) * 100
    errors = result["non200"] + result["socket_errors"] + len(sampler.failures) + (not alive)
    passed = errors == 0 and growth < args.max_growth_percent
    figures = {
        "started": started.isoformat(timespec="seconds"),
        "seconds": args.seconds,
        "connections": args.connections,
        "rows": args.rows,
        "workers": args.workers,
        "warmup": warm,
        "load": result,
        "requests_per_second": result["requests"] / (result["duration_us"] / 1e6),
        "checks": sampler.checks,
        "check_failures": sampler.failures[:5],
        "server_alive": alive,
        "errors": errors,
        "rss_idle_mib": idle_rss / 2**20,
        "rss_first_minute_mib": mean_mib(first),
        "rss_last_minute_mib": mean_mib(last),
        "rss_final_mib": final_rss / 2**20,
        "rss_growth_percent": growth,
        "rss_samples_mib": [(round(t, 1), round(r / 2**20, 1)) for t, r in sampler.samples],
        "max_growth_percent": args.max_growth_percent,
        "passed": passed,
        "server_log_tail": server_log[-1000:],
    }
    args.out.write_text(report(figures, argv if argv is not None else sys.argv[1:]))
    print(json.dumps({k: v for k, v in figures.items() if k != "rss_samples_mib"}, indent=2))
    print(f"{'PASS' if passed else 'FAIL'}; wrote {args.out}")
    return 0 if passed else 1


def run_wrk(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    seconds = int(command[command.index("-d") + 1].removesuffix("s"))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"wrk failed: {done.stdout}\n{done.stderr}")
    return dict(json.loads(lines[0].removeprefix("RESULT ")))


def report(f: dict[str, Any], argv: list[str]) -> str:
    load = f["load"]
    samples = ", ".join(f"{t:.0f} s {r:.1f}" for t, r in f["rss_samples_mib"][::6])
    verdict = "PASS" if f["passed"] else "FAIL"
    return f"""# Model server soak

`python bench/soak/server.py {" ".join(argv)}`, started {f["started"]} on the shared 2-core dev
machine (other work running). `modelwerk serve` ({f["workers"]} worker) serving an iris
RandomForest(100) trained by the runtime trainer, under wrk at {f["connections"]} connections with
V2 infer requests of {f["rows"]} rows, for {f["seconds"]} s after a {f["warmup"]["duration_us"] / 1e6:.0f} s
warm-up. RSS is that of the server's whole process tree, sampled every few seconds; /metrics is
scraped and one prediction checked against the model at each sample.

**{verdict}**: {f["errors"]} errors (bound: 0); RSS growth first to last minute
{f["rss_growth_percent"]:+.2f} % (bound: < {f["max_growth_percent"]:g} %).

| figure | value |
|---|---:|
| requests | {load["requests"]:,} |
| requests/s | {f["requests_per_second"]:,.0f} |
| latency p50 / p99 / max | {load["p50_us"] / 1000:.1f} / {load["p99_us"] / 1000:.1f} / {load["max_us"] / 1000:.1f} ms |
| non-200 answers | {load["non200"]} |
| socket errors (connect, read, write, timeout) | {load["socket_errors"]} |
| side checks (scrape + prediction) / failed | {f["checks"]} / {len(f["check_failures"])} |
| server alive at the end | {"yes" if f["server_alive"] else "no"} |
| RSS idle (before load) | {f["rss_idle_mib"]:.1f} MiB |
| RSS mean, first minute of load | {f["rss_first_minute_mib"]:.1f} MiB |
| RSS mean, last minute of load | {f["rss_last_minute_mib"]:.1f} MiB |
| RSS at the end | {f["rss_final_mib"]:.1f} MiB |
| RSS growth, first to last minute | {f["rss_growth_percent"]:+.2f} % |

RSS every 30 s (MiB): {samples}.
"""


if __name__ == "__main__":
    sys.exit(main())
