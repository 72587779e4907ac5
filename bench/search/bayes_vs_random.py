"""Bayesian (Optuna TPE) vs random search on the same budget: best CV score reached vs trials.

    flock /tmp/mw-build.lock .venv/bin/python bench/search/bayes_vs_random.py [--quick]

Both strategies run through modelwerk's own search engine (``runtime.trainer.searching``), on
the training split the trainer would cut, with the same cross-validation folds, over the same
space (ranges: random search samples them with SciPy distributions, TPE models them). Pruning
is off, so every trial costs the same and "trials" measures sample efficiency alone. Several
seeds per case; the seed moves the split, the folds' subsamples, the sampler and the estimator.

Writes ``bench/search/results/bayes_vs_random.json`` (every trial's score, raw) and
``bench/search/results/bayes_vs_random.md`` (the running best at checkpoints, mean over seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "operator"))

from modelwerk.api.v1alpha1.training_job import TrainingJob  # noqa: E402
from modelwerk.runtime.data import load  # noqa: E402
from modelwerk.runtime.trainer import searching, train  # noqa: E402

CASES: dict[str, dict[str, Any]] = {
    "digits / SVC (C, gamma log-scaled)": {
        "dataset": "digits",
        "estimator": {"name": "SVC"},
        "space": {
            "C": {"low": 0.001, "high": 1000, "log": True},
            "gamma": {"low": 0.00001, "high": 1, "log": True},
        },
    },
    "breast_cancer / GradientBoosting (learning_rate log, max_depth, subsample)": {
        "dataset": "breast_cancer",
        "estimator": {"name": "GradientBoostingClassifier", "params": {"n_estimators": 30}},
        "space": {
            "learning_rate": {"low": 0.001, "high": 1, "log": True},
            "max_depth": {"low": 1, "high": 8, "type": "int"},
            "subsample": {"low": 0.3, "high": 1.0},
        },
    },
    "diabetes / HistGradientBoostingRegressor (rmse)": {
        "dataset": "diabetes",
        "estimator": {"name": "HistGradientBoostingRegressor", "params": {"max_iter": 30}},
        "space": {
            "learning_rate": {"low": 0.001, "high": 1, "log": True},
            "max_leaf_nodes": {"low": 2, "high": 64, "type": "int", "log": True},
            "l2_regularization": {"low": 0.0001, "high": 10, "log": True},
        },
        "scoring": "rmse",
    },
}
CHECKPOINTS = (5, 10, 15, 20, 25, 30)


def spec(case: dict[str, Any], strategy: str, trials: int, seed: int) -> Any:
    search = {
        "strategy": strategy,
        "space": case["space"],
        "cv": 3,
        "maxTrials": trials,
        "pruning": False,
    }
    if case.get("scoring"):
        search["scoring"] = case["scoring"]
    doc = {
        "metadata": {"name": "bench", "namespace": "bench"},
        "spec": {
            "datasetRef": {"name": "bench"},
            "model": {"name": "bench"},
            "estimator": case["estimator"],
            "search": search,
            "split": {"seed": seed},
        },
    }
    return TrainingJob.model_validate(doc).spec


def run_case(case: dict[str, Any], strategy: str, trials: int, seed: int) -> dict[str, Any]:
    frame = load.load_builtin(case["dataset"])
    tj = spec(case, strategy, trials, seed)
    ready = train.prepare(tj, frame, "target")
    started = time.perf_counter()
    records = searching.run_serial(ready.evaluator(tj), tj.search)
    seconds = time.perf_counter() - started
    ordered = sorted(records, key=lambda r: r.trial)
    return {
        "strategy": strategy,
        "seed": seed,
        "seconds": round(seconds, 2),
        "scoring": ordered[0].scoring,
        "scores": [r.mean_score for r in ordered],
        "params": [r.params for r in ordered],
    }


def import_seconds(module: str, repeats: int = 5) -> float:
    """Median time to import ``module`` in a fresh process that already has scikit-learn and
    pandas (what a training pod has loaded by the time it needs the module)."""
    import subprocess

    code = (
        "import sklearn, pandas, time; t = time.perf_counter(); "
        f"import {module}; print(time.perf_counter() - t)"
    )
    times = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(repeats)
    ]
    return round(statistics.median(times), 3)


def running_best(scores: list[float | None], lower: bool) -> list[float]:
    out: list[float] = []
    for s in scores:
        value = s if s is not None else (float("inf") if lower else float("-inf"))
        out.append(value if not out else (min if lower else max)(out[-1], value))
    return out


def report(raw: dict[str, Any]) -> str:
    lines = [
        "# Bayesian (TPE) vs random search: best CV score reached vs trials",
        "",
        "Generated by `bench/search/bayes_vs_random.py` (run under `flock /tmp/mw-build.lock`).",
        "",
        "## Environment",
        "",
        f"- {raw['env']['cpus']} logical CPUs; load average at start {raw['env']['load_start']}, "
        f"at end {raw['env']['load_end']}",
        f"- Python {raw['env']['python']}, scikit-learn {raw['env']['sklearn']}, "
        f"Optuna {raw['env']['optuna']}",
        f"- budget {raw['trials']} trials, 3-fold CV, pruning off, seeds {raw['seeds']}",
        "- import time on top of scikit-learn and pandas (median of 5 fresh processes): "
        + ", ".join(f"{m} {s:.2f} s" for m, s in raw["env"]["imports"].items()),
        "",
        "## Best mean CV score so far (mean over seeds; ± = standard deviation over seeds)",
        "",
    ]
    for name, runs in raw["cases"].items():
        lower = runs[0]["scoring"] in ("rmse", "mae")
        lines += [
            f"### {name} — {runs[0]['scoring']} ({'lower' if lower else 'higher'} is better)",
            "",
        ]
        points = [c for c in CHECKPOINTS if c <= raw["trials"]]
        lines.append("| strategy | " + " | ".join(f"after {c}" for c in points) + " | seconds |")
        lines.append("|---|" + "---:|" * (len(points) + 1))
        for strategy in ("random", "bayesian"):
            mine = [r for r in runs if r["strategy"] == strategy]
            bests = [running_best(r["scores"], lower) for r in mine]
            cells = []
            for c in points:
                values = [b[c - 1] for b in bests]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.mean(values):.4f} ± {sd:.4f}")
            secs = statistics.mean(r["seconds"] for r in mine)
            label = "TPE (bayesian)" if strategy == "bayesian" else "random"
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {secs:.1f} |")
        wins = 0
        for seed in raw["seeds"]:
            by = {
                r["strategy"]: running_best(r["scores"], lower)[-1]
                for r in runs
                if r["seed"] == seed
            }
            better = by["bayesian"] < by["random"] if lower else by["bayesian"] > by["random"]
            wins += better
        lines += ["", f"TPE ended better than random on {wins} of {len(raw['seeds'])} seeds.", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 15 trials")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.seeds = 15, [1, 2]
    import optuna
    import sklearn

    raw: dict[str, Any] = {
        "trials": args.trials,
        "seeds": args.seeds,
        "env": {
            "cpus": os.cpu_count(),
            "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "python": platform.python_version(),
            "sklearn": sklearn.__version__,
            "optuna": optuna.__version__,
        },
        "cases": {},
    }
    raw["env"]["imports"] = {m: import_seconds(m) for m in ("optuna", "xgboost", "lightgbm")}
    for name, case in CASES.items():
        runs = []
        for seed in args.seeds:
            for strategy in ("random", "bayesian"):
                run = run_case(case, strategy, args.trials, seed)
                print(
                    f"{name} {strategy} seed {seed}: best {max(s for s in run['scores'] if s is not None) if run['scoring'] not in ('rmse', 'mae') else min(s for s in run['scores'] if s is not None):.4f} in {run['seconds']} s",
                    flush=True,
                )
                runs.append(run)
        raw["cases"][name] = runs
    raw["env"]["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "bayes_vs_random.json").write_text(json.dumps(raw, indent=1) + "\n")
    (out / "bayes_vs_random.md").write_text(report(raw) + "\n")
    print(report(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
