"""Training overhead of modelwerk's trainer against a plain scikit-learn script.

Goal (issue): the trainer costs at most 10 % more than ``plain.py`` doing the same
fit and evaluation on the same data. Two comparisons per case:

* in-process — ``modelwerk.runtime.trainer.job.run`` (snapshot read + version check, pipeline,
  fit, holdout metrics, joblib, sha256, model card, publish) vs ``plain.train`` (parquet read,
  fit, the same metrics, joblib dump);
* CLI — a fresh ``python -m modelwerk train`` (pod mode, inputs from the environment, as the
  training Job runs it) vs a fresh ``python plain.py``: this adds interpreter start and imports.

Both wall time and CPU time (user + system, of this process or of the child) are measured.
On a shared machine wall time swings by tens of percent from run to run with the neighbours'
load, while CPU time counts only the work done, so it is the steadier measure of what the
trainer adds; both are reported. Runs alternate (plain, modelwerk, plain, …) so noise hits both
sides alike; medians of N runs. Writes ``results.md`` next to this file.

    .venv/bin/python bench/training/run.py [--repeat 7] [--cli-repeat 5] [--out results.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import plain  # noqa: E402  (the baseline script next to this file)

from modelwerk.api.v1alpha1.dataset import Dataset  # noqa: E402
from modelwerk.api.v1alpha1.training_job import TrainingJob  # noqa: E402
from modelwerk.runtime.data import job as data_job  # noqa: E402
from modelwerk.runtime.trainer import job as train_job  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    dataset: str
    estimator: str
    params: dict[str, Any]


CASES = (
    Case("iris / RandomForest(100)", "iris", "RandomForestClassifier", {"n_estimators": 100}),
    Case(
        "breast_cancer / GradientBoosting(100)",
        "breast_cancer",
        "GradientBoostingClassifier",
        {"n_estimators": 100},
    ),
    Case("digits / RandomForest(300)", "digits", "RandomForestClassifier", {"n_estimators": 300}),
)


@dataclass
class Runs:
    """Wall and CPU seconds of the plain script and of modelwerk, one entry per run."""

    plain_wall: list[float] = field(default_factory=list)
    plain_cpu: list[float] = field(default_factory=list)
    ours_wall: list[float] = field(default_factory=list)
    ours_cpu: list[float] = field(default_factory=list)


def _cpu() -> float:
    # Own process plus finished children: covers in-process runs and subprocesses alike.
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds, return value) of one call."""
    cpu, started = _cpu(), time.perf_counter()
    value = call(*args, **kwargs)
    return time.perf_counter() - started, _cpu() - cpu, value


def training_job(case: Case) -> TrainingJob:
    return TrainingJob.model_validate(
        {
            "metadata": {"name": "bench", "namespace": "bench"},
            "spec": {
                "datasetRef": {"name": case.dataset},
                "model": {"name": "bench"},
                "estimator": {"name": case.estimator, "params": case.params},
                "split": {"testSize": 0.2, "seed": 42, "stratify": True},
            },
        }
    )


def prepare(case: Case, root: Path) -> train_job.DatasetInput:
    dataset = Dataset.model_validate(
        {
            "metadata": {"name": case.dataset},
            "spec": {"source": {"builtin": case.dataset}, "target": "target"},
        }
    )
    result = data_job.validate(dataset, str(root)).result
    assert result["valid"], result
    return train_job.DatasetInput(
        name=case.dataset,
        version=result["version"],
        snapshot_uri=result["snapshotUri"],
        target="target",
        profile_uri=result["profileUri"],
    )


def bench_in_process(
    case: Case, data: train_job.DatasetInput, work: Path, repeat: int
) -> dict[str, Any]:
    tj = training_job(case)
    snapshot = data.snapshot_uri.removeprefix("file://")
    runs = Runs()
    metrics: dict[str, Any] = {}
    for i in range(repeat + 1):  # run 0 warms caches and is not counted
        out = str(work / f"plain-{i}.joblib")
        wall, cpu, expected = timed(
            plain.train, snapshot, "target", case.estimator, case.params, out
        )
        if i:
            runs.plain_wall.append(wall)
            runs.plain_cpu.append(cpu)
        wall, cpu, outcome = timed(train_job.run, tj, data, str(work / f"ours-{i}"))
        assert outcome.ok, outcome.result
        if i:
            runs.ours_wall.append(wall)
            runs.ours_cpu.append(cpu)
        metrics = {"plain": expected, "ours": outcome.result["metrics"]}
    return {"runs": runs, "metrics": metrics}


def bench_cli(case: Case, data: train_job.DatasetInput, work: Path, repeat: int) -> Runs:
    snapshot = data.snapshot_uri.removeprefix("file://")
    tj = training_job(case).model_dump(by_alias=True, mode="json", exclude_none=True)
    env = {
        **os.environ,
        "MODELWERK_TRAININGJOB": json.dumps(tj),
        "MODELWERK_DATASET_NAME": data.name,
        "MODELWERK_DATASET_VERSION": data.version,
        "MODELWERK_DATASET_SNAPSHOT_URI": data.snapshot_uri,
        "MODELWERK_DATASET_TARGET": data.target,
        "MODELWERK_DATASET_PROFILE_URI": data.profile_uri or "",
        "MODELWERK_TERMINATION_MESSAGE_PATH": str(work / "termination-log"),
    }
    runs = Runs()
    for i in range(repeat + 1):
        plain_argv = [
            sys.executable, str(HERE / "plain.py"), snapshot, "target", case.estimator,
            json.dumps(case.params), str(work / f"cli-plain-{i}.joblib"),
        ]  # fmt: skip
        wall, cpu, _ = timed(subprocess.run, plain_argv, check=True, capture_output=True)
        if i:
            runs.plain_wall.append(wall)
            runs.plain_cpu.append(cpu)
        ours_env = {**env, "MODELWERK_ARTIFACT_ROOT": str(work / f"cli-ours-{i}")}
        argv = [sys.executable, "-m", "modelwerk", "train"]
        wall, cpu, _ = timed(subprocess.run, argv, check=True, capture_output=True, env=ours_env)
        if i:
            runs.ours_wall.append(wall)
            runs.ours_cpu.append(cpu)
    return runs


def import_cost(repeat: int) -> tuple[float, float]:
    """Median CPU seconds of a fresh interpreter importing what both sides need, and that plus
    modelwerk's API models and runtime modules: the fixed part of the CLI overhead."""
    both = "import pandas, pyarrow.parquet, joblib, sklearn.ensemble, sklearn.metrics"
    ours = both + ", modelwerk.runtime.trainer.cli"
    base: list[float] = []
    extra: list[float] = []
    for _ in range(repeat):
        base.append(timed(subprocess.run, [sys.executable, "-c", both], check=True)[1])
        extra.append(timed(subprocess.run, [sys.executable, "-c", ours], check=True)[1])
    return statistics.median(base), statistics.median(extra)


def environment() -> list[tuple[str, str]]:
    import numpy
    import pandas
    import pyarrow
    import sklearn

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return [
        ("CPU", f"{cpu} ({os.cpu_count()} logical CPUs visible)"),
        ("Load average at start", ", ".join(f"{v:.2f}" for v in load)),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("scikit-learn", sklearn.__version__),
        (
            "NumPy / pandas / pyarrow",
            f"{numpy.__version__} / {pandas.__version__} / {pyarrow.__version__}",
        ),
    ]


def _overhead(plain_runs: list[float], ours_runs: list[float]) -> tuple[float, float, float]:
    base = statistics.median(plain_runs)
    ours = statistics.median(ours_runs)
    return base, ours, (ours / base - 1) * 100


def row(case: str, mode: str, runs: Runs) -> str:
    pw, ow, wall = _overhead(runs.plain_wall, runs.ours_wall)
    pc, oc, cpu = _overhead(runs.plain_cpu, runs.ours_cpu)
    verdict = "meets goal" if cpu <= 10 else "over goal"
    return (
        f"| {case} | {mode} | {pc:.3f} | {oc:.3f} | {oc - pc:+.3f} | **{cpu:+.1f} %** | "
        f"{pw:.3f} | {ow:.3f} | {wall:+.1f} % | {verdict} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="in-process runs per side")
    parser.add_argument("--cli-repeat", type=int, default=5, help="CLI runs per side")
    parser.add_argument("--out", default=str(HERE / "results.md"))
    args = parser.parse_args()

    env = environment()
    lines = []
    notes = []
    with tempfile.TemporaryDirectory(prefix="mw-bench-") as tmp:
        work = Path(tmp)
        for case in CASES:
            data = prepare(case, work / "store")
            inproc = bench_in_process(case, data, work, args.repeat)
            plain_m, ours_m = inproc["metrics"]["plain"], inproc["metrics"]["ours"]
            same = all(abs(plain_m[k] - ours_m[k]) < 1e-12 for k in plain_m)
            notes.append(
                f"- {case.name}: holdout accuracy plain {plain_m['accuracy']:.4f}, modelwerk "
                f"{ours_m['accuracy']:.4f} — {'identical metrics' if same else 'METRICS DIFFER'}"
            )
            line = row(case.name, f"in-process (n={args.repeat})", inproc["runs"])
            lines.append(line)
            print(line, flush=True)
            cli = bench_cli(case, data, work, args.cli_repeat)
            line = row(case.name, f"CLI, fresh process (n={args.cli_repeat})", cli)
            lines.append(line)
            print(line, flush=True)

    base_import, ours_import = import_cost(args.cli_repeat)
    load_end = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    out = [
        "# Training overhead: modelwerk trainer vs a plain scikit-learn script",
        "",
        "Generated by `bench/training/run.py`; goal: training overhead ≤ 10 %.",
        "",
        "## Environment",
        "",
        *(f"- {k}: {v}" for k, v in env),
        "",
        "## Results (medians)",
        "",
        "CPU = user + system seconds (steady under load); wall = elapsed seconds (noisy on "
        "this shared machine). The goal column judges the CPU overhead.",
        "",
        "| Case | Mode | Plain CPU (s) | modelwerk CPU (s) | Δ CPU (s) | CPU overhead "
        "| Plain wall (s) | modelwerk wall (s) | Wall overhead | Goal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *lines,
        "",
        "Same fit on both sides:",
        "",
        *notes,
        "",
        "## Where the difference goes",
        "",
        f"- Fresh-process imports (median CPU of {args.cli_repeat}): pandas + pyarrow + joblib + "
        f"scikit-learn {base_import:.3f} s; the same plus modelwerk's trainer CLI (pydantic API "
        f"models, fsspec) {ours_import:.3f} s — a fixed {ours_import - base_import:+.3f} s per "
        "training pod, whatever the data size.",
        "- In-process, modelwerk additionally re-hashes the snapshot to check its version, "
        "wraps the estimator in a ColumnTransformer pipeline, hashes the joblib stream while "
        "writing it and writes the model card; these scale with data and model size but stay "
        "small next to the fit.",
        f"- Load average at the end: {load_end} (the machine is shared; plain and modelwerk "
        "runs alternate so noise hits both sides).",
        "",
    ]
    Path(args.out).write_text("\n".join(out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
