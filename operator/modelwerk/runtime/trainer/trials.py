"""The trial table of a hyperparameter search: one record per candidate, kept with the run.

Where: ``runs/<namespace>/<trainingjob>/<uid>/<run>/trials/part-<worker>.parquet`` under the
artifact root. A run is keyed by the TrainingJob's uid (names are reused, uids are not) and the
run fingerprint (an edited spec is a new run), not by the model's sha256: a Rejected run
registers no model, yet its trials are the evidence of why. Each worker writes its own part, so
a search spread over several pods needs no coordination; :func:`read` joins the parts and ranks
them again.

Schema (:data:`SCHEMA`), one row per candidate:

=================  =========  ======================================================
``trial``          int64      the candidate's number within the run's search (unique across
                              workers; the plan order: ties rank the lower number first)
``worker``         string     who evaluated it: "0" in the training pod, "<stage>-<index>"
                              for a search pod
``params``         string     the candidate's estimator params as JSON (sorted keys)
``scoring``        string     the metric (our name: accuracy, rmse, …)
``mean_score``     float64    mean over the folds, in the metric's own sign
``std_score``      float64    standard deviation over the folds
``fold_scores``    list<f64>  each fold's score, in the metric's own sign
``fit_seconds``    float64    mean fit time of one fold
``score_seconds``  float64    mean scoring time of one fold
``resources``      int64      samples per fold (successive halving), else null
``iteration``      int64      halving rung, else null
``rank``           int64      1 = best mean score over every part of the run (halving: the
                              last rung's candidates first)
``state``          string     complete, or pruned (a Bayesian trial stopped after a fold:
                              no mean score, the folds it ran)
=================  =========  ======================================================
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from modelwerk.api.v1alpha1.search import LOWER_IS_BETTER
from modelwerk.runtime import storage

__all__ = ["LOWER_IS_BETTER", "Trial", "ranked", "read", "run_dir", "table", "write"]

TRIALS_DIR = "trials"


@dataclass(frozen=True)
class Trial:
    """One candidate of a search."""

    trial: int
    params: dict[str, Any]
    scoring: str
    mean_score: float | None
    std_score: float | None
    fold_scores: list[float]
    fit_seconds: float | None
    score_seconds: float | None
    worker: str = "0"
    resources: int | None = None
    iteration: int | None = None
    rank: int = 0
    state: str = "complete"

    def summary(self) -> dict[str, Any]:
        """The camelCase form kept in status (TrialSummary)."""
        return {
            "rank": self.rank,
            "params": self.params,
            "meanScore": _round(self.mean_score),
            "stdScore": _round(self.std_score),
            "fitSeconds": _round(self.fit_seconds),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("trial", pa.int64()),
            ("worker", pa.string()),
            ("params", pa.string()),
            ("scoring", pa.string()),
            ("mean_score", pa.float64()),
            ("std_score", pa.float64()),
            ("fold_scores", pa.list_(pa.float64())),
            ("fit_seconds", pa.float64()),
            ("score_seconds", pa.float64()),
            ("resources", pa.int64()),
            ("iteration", pa.int64()),
            ("rank", pa.int64()),
            ("state", pa.string()),
        ]
    )


def ranked(records: Sequence[Trial]) -> list[Trial]:
    """Best first, ``rank`` set; ties share the better rank (as scikit-learn ranks them) and
    are listed in trial order. Halving's later rungs rank before earlier ones: a candidate that
    survived further was measured on more samples."""
    if not records:
        return []
    lower = records[0].scoring in LOWER_IS_BETTER

    def key(t: Trial) -> tuple[int, float]:
        rung = -(t.iteration or 0)
        if t.mean_score is None:
            return (rung, math.inf)
        return (rung, t.mean_score if lower else -t.mean_score)

    ordered = sorted(records, key=lambda t: (key(t), t.trial, t.worker))
    out: list[Trial] = []
    for position, record in enumerate(ordered, start=1):
        same = out and key(out[-1]) == key(record)
        out.append(replace(record, rank=out[-1].rank if same else position))
    return out


def run_dir(root: str, namespace: str, name: str, uid: str, run: str) -> str:
    """The run-scoped directory of one TrainingJob run."""
    return storage.join(root, "runs", namespace, name, uid or "local", run or "local")


def table(directory: str) -> str:
    """The trial table's directory within a run's directory."""
    return storage.join(directory, TRIALS_DIR)


def write(records: Sequence[Trial], directory: str, *, worker: str = "0") -> str:
    """Write one worker's part (its records are stamped with ``worker``); returns the trial
    table's directory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {**asdict(r), "worker": worker, "params": json.dumps(r.params, sort_keys=True)}
        for r in records
    ]
    arrow = pa.Table.from_pylist(rows, schema=_schema())
    target = table(directory)
    fs, path = storage.fs_and_path(target)
    fs.makedirs(path, exist_ok=True)
    with storage.open_uri(storage.join(target, f"part-{worker}.parquet"), "wb") as handle:
        pq.write_table(arrow, handle)
    return target


def read(directory: str) -> list[Trial]:
    """Every part of a run's trial table (``directory`` as :func:`write` returned it), ranked."""
    import pyarrow.parquet as pq

    fs, path = storage.fs_and_path(directory)
    records: list[Trial] = []
    for part in sorted(fs.glob(f"{path.rstrip('/')}/part-*.parquet")):
        with fs.open(part, "rb") as handle:
            for row in pq.read_table(handle).to_pylist():
                row["params"] = json.loads(row["params"])
                row["state"] = row.get("state") or "complete"  # parts written before pruning
                records.append(Trial(**row))
    return ranked(records)
