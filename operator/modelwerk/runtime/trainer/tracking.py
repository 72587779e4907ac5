"""Logging a training run to MLflow: params, metrics, trials, dataset, lineage, model card.

The server is the TrainingJob's ``spec.tracking.mlflow``, else the operator's default
(``MODELWERK_MLFLOW_TRACKING_URI`` and ``MODELWERK_MLFLOW_EXPERIMENT`` in the pod). What one run
becomes in MLflow:

* **params** — the estimator, its effective params (the search's choice included), the split
  and the search settings;
* **metrics** — the holdout metrics, ``fairness.*`` and ``robustness.*`` figures (``@`` in a
  noise level becomes ``_``: MLflow keys allow letters, digits, ``_ - . / :`` and spaces), and
  the best CV score;
* **tags** — lineage: ``modelwerk.namespace``, ``.trainingJob``, ``.trainingJobUid``, ``.run``,
  ``.model``, ``.dataset``, ``.datasetSha256`` (MLflow caps a dataset digest at 36 characters,
  the full sha256 lives here), ``.artifactSha256``, ``.gatesPassed``. The ModelVersion is not
  known yet when the trainer logs (the operator numbers versions after the gates): its
  verification pod adds ``modelwerk.modelVersion`` and ``.modelVersionNumber`` to the run later,
  with the same credentials (``modelwerk.runtime.version_tags``), and the ModelVersion's
  ``spec.tracking`` links back through the run id;
* **dataset input** — name, the first 36 hex digits of its sha256 as digest, the snapshot URI;
* **artifacts** — ``model-card.json`` and ``trials.json`` (an MLflow table: the Evaluation view
  shows it), and the best five trials as child runs (as MLflow's scikit-learn autologging does
  for a search).

Nothing here fails the training run: any error ends logging, the run is marked FAILED in MLflow
when it was created, and the error is returned for the TrainingJob's ``Tracked`` condition.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from modelwerk.api.v1alpha1.evaluation import Tracking
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.runtime.artifacts import ModelCard
from modelwerk.runtime.mlflow_rest import Client, MlflowError

URI_ENV = "MODELWERK_MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MODELWERK_MLFLOW_EXPERIMENT"
CHILD_RUNS = 5
_PARAM_LIMIT = 6000


@dataclass(frozen=True)
class Target:
    tracking_uri: str
    experiment: str


@dataclass(frozen=True)
class Logged:
    record: dict[str, Any] | None
    """``{"mlflow": {"trackingUri", "experimentId", "runId"}}`` once the run exists."""
    error: str | None = None


def target(spec: Tracking | None) -> Target | None:
    """The tracking server of this run, if any."""
    if spec is not None and spec.mlflow is not None:
        return Target(spec.mlflow.tracking_uri, spec.mlflow.experiment)
    uri = os.environ.get(URI_ENV)
    if uri:
        return Target(uri, os.environ.get(EXPERIMENT_ENV) or "modelwerk")
    return None


def log_run(
    where: Target,
    job: TrainingJob,
    data: Any,
    trained: Any,
    card: ModelCard,
    card_uri: str,
    gates: list[dict[str, Any]],
) -> Logged:
    """Log one finished training run; never raises."""
    client = Client(where.tracking_uri)
    record: dict[str, Any] | None = None
    run_id = None
    try:
        experiment = client.experiment_id(where.experiment)
        now = _ms()
        info = client.create_run(
            experiment, job.metadata.name, now - int(1000 * (card.duration_seconds or 0)),
            _tags(job, data, card, gates),
        )  # fmt: skip
        run_id = str(info["run_id"])
        record = {
            "mlflow": {
                "trackingUri": where.tracking_uri,
                "experimentId": experiment,
                "runId": run_id,
            }
        }
        client.log_batch(
            run_id, params=_params(job, card), metrics=_metrics(trained), timestamp_ms=now
        )
        client.log_dataset(run_id, _dataset(data))
        problems = []
        try:
            _artifacts(client, str(info.get("artifact_uri", "")), run_id, card, trained)
        except MlflowError as error:
            problems.append(f"artifacts not stored: {error}")
        for trial in trained.trials[:CHILD_RUNS]:
            _child(client, experiment, run_id, job.metadata.name, trial, now)
        client.finish(run_id, _ms())
        return Logged(record, "; ".join(problems) or None)
    except (MlflowError, KeyError, TypeError, ValueError) as error:
        if run_id is not None:
            with contextlib.suppress(MlflowError):
                client.finish(run_id, _ms(), status="FAILED")
        return Logged(record, f"{type(error).__name__}: {error}"[:1000])


def metric_key(name: str) -> str:
    """A gate name as an MLflow metric key.

    >>> metric_key("robustness.noise.flipRate@0.1")
    'robustness.noise.flipRate_0.1'
    """
    return name.replace("@", "_")


def _ms() -> int:
    return int(time.time() * 1000)


def _tags(
    job: TrainingJob, data: Any, card: ModelCard, gates: list[dict[str, Any]]
) -> dict[str, str]:
    meta = job.metadata
    tags = {
        "mlflow.runName": meta.name,
        "mlflow.source.name": "modelwerk",
        "mlflow.source.type": "JOB",
        "modelwerk.namespace": meta.namespace or "default",
        "modelwerk.trainingJob": meta.name,
        "modelwerk.trainingJobUid": meta.uid,
        "modelwerk.run": os.environ.get("MODELWERK_RUN", ""),
        "modelwerk.model": card.model,
        "modelwerk.estimator": card.estimator,
        "modelwerk.dataset": data.name,
        "modelwerk.datasetSha256": data.version.removeprefix("sha256:"),
        "modelwerk.artifactSha256": card.artifact.sha256,
        "modelwerk.artifactUri": card.artifact.uri,
        "modelwerk.gatesPassed": str(all(g["passed"] for g in gates)).lower(),
    }
    return {k: v for k, v in tags.items() if v}


def _params(job: TrainingJob, card: ModelCard) -> dict[str, str]:
    spec = job.spec
    params: dict[str, Any] = {
        "estimator": card.estimator,
        **card.params,
        **(card.best_params or {}),
    }
    params |= {"split.testSize": spec.split.test_size, "split.seed": spec.split.seed}
    if spec.search is not None:
        params |= {
            "search.strategy": spec.search.strategy,
            "search.cv": spec.search.cv,
            "search.scoring": spec.search.scoring or "",
        }
    if spec.features.drop:
        params["features.drop"] = ",".join(spec.features.drop)
    return {str(k)[:250]: json.dumps(v) if not isinstance(v, str) else v for k, v in params.items()}


def _metrics(trained: Any) -> dict[str, float]:
    metrics = dict(trained.metrics)
    if trained.fairness is not None:
        metrics |= {f"fairness.{k}": v for k, v in trained.fairness.figures.items()}
    if trained.robustness is not None:
        metrics |= {metric_key(f"robustness.{k}"): v for k, v in trained.robustness.figures.items()}
    if trained.search and trained.search.get("bestScore") is not None:
        metrics["cv.bestScore"] = float(trained.search["bestScore"])
    return {k: float(v) for k, v in metrics.items() if v == v}  # NaN is not JSON


def _dataset(data: Any) -> dict[str, Any]:
    digest = data.version.removeprefix("sha256:")
    scheme = data.snapshot_uri.split("://", 1)[0]
    return {
        "name": data.name,
        "digest": digest[:36],
        "source_type": "s3" if scheme == "s3" else "local",
        "source": json.dumps({"uri": data.snapshot_uri}),
    }


def _artifacts(
    client: Client, artifact_uri: str, run_id: str, card: ModelCard, trained: Any
) -> None:
    client.upload(
        artifact_uri,
        "model-card.json",
        card.model_dump_json(by_alias=True, indent=2).encode(),
        "application/json",
    )
    if not trained.trials:
        return
    columns = ["rank", "params", "mean_score", "std_score", "fit_seconds", "worker", "trial"]
    table = {
        "columns": columns,
        "data": [
            [t.rank, json.dumps(t.params, sort_keys=True), t.mean_score, t.std_score,
             t.fit_seconds, t.worker, t.trial]
            for t in trained.trials
        ],
    }  # fmt: skip
    client.upload(artifact_uri, "trials.json", json.dumps(table).encode(), "application/json")
    logged = [{"path": "trials.json", "type": "table"}]
    client.set_tag(run_id, "mlflow.loggedArtifacts", json.dumps(logged))


def _child(client: Client, experiment: str, parent: str, name: str, trial: Any, now: int) -> None:
    info = client.create_run(
        experiment,
        f"{name}-trial-{trial.rank}",
        now,
        {"mlflow.parentRunId": parent, "modelwerk.trialRank": str(trial.rank)},
    )
    child = str(info["run_id"])
    metrics = {
        "cv.meanScore": trial.mean_score,
        "cv.stdScore": trial.std_score,
        "cv.fitSeconds": trial.fit_seconds,
    }
    client.log_batch(
        child,
        params={k: json.dumps(v)[:_PARAM_LIMIT] for k, v in trial.params.items()},
        metrics={k: v for k, v in metrics.items() if v is not None},
        timestamp_ms=now,
    )
    client.finish(child, now)
