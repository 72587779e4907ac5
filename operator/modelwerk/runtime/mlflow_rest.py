"""A small client of MLflow's REST API (``/api/2.0/mlflow``), standard library only.

Q: Why not the ``mlflow-skinny`` client?
A: It would add 84.6 MiB and 28 packages to the runtime image for eight HTTP calls
   (measured, README "Tracking with MLflow"); the REST API is MLflow's documented, versioned contract and
   the same one its own client speaks.

Credentials come from the environment variables MLflow's client reads:
``MLFLOW_TRACKING_TOKEN`` (a bearer token) or ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD`` (basic auth); the operator fills them from a Secret. They are sent
in headers only and never appear in an error message.

Artifacts go through the tracking server's artifact proxy (``mlflow server`` serves it unless
started with ``--no-serve-artifacts``): a run whose ``artifact_uri`` is ``mlflow-artifacts:/<path>``
takes ``PUT /api/2.0/mlflow-artifacts/artifacts/<path>/<file>``. A run whose artifacts live in a
store the server does not proxy (a local path, a bucket the trainer has no credentials for) gets
its params, metrics and tags but no files, and the caller reports why.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

TIMEOUT_ENV = "MODELWERK_MLFLOW_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT = 10.0
_API = "/api/2.0/mlflow"
_ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


class MlflowError(Exception):
    """The tracking server could not be reached or refused a request."""


class MlflowUnreachable(MlflowError):
    """No answer at all: the server is down, unknown or too slow (a refusal has an answer)."""


class Client:
    """One tracking server."""

    def __init__(self, tracking_uri: str, timeout: float | None = None) -> None:
        self.base = tracking_uri.rstrip("/")
        self.timeout = timeout or float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)

    def _headers(self) -> dict[str, str]:
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        if token:
            return {"Authorization": f"Bearer {token}"}
        if user:
            pair = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        return {}

    def _send(self, method: str, url: str, body: bytes | None, content_type: str) -> bytes:
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("Content-Type", content_type)
        for key, value in self._headers().items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as error:
            detail = error.read()[:300].decode(errors="replace")
            raise MlflowError(f"{method} {_path(url)}: HTTP {error.code}: {detail}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            # HTTPException: something answered, but not HTTP (a closed or garbled connection)
            reason = getattr(error, "reason", error)
            raise MlflowUnreachable(f"cannot reach {self.base}: {reason}") from None

    def call(
        self, method: str, endpoint: str, body: dict[str, Any] | None = None, **query: str
    ) -> dict[str, Any]:
        """One REST call; the JSON answer (``{}`` for an empty one)."""
        url = f"{self.base}{_API}/{endpoint}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        raw = self._send(method, url, data, "application/json")
        loaded: dict[str, Any] = json.loads(raw) if raw.strip() else {}
        return loaded

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created when it does not exist yet."""
        try:
            found = self.call("GET", "experiments/get-by-name", experiment_name=name)
            return str(found["experiment"]["experiment_id"])
        except MlflowError as error:
            if "RESOURCE_DOES_NOT_EXIST" not in str(error):
                raise
        try:
            return str(self.call("POST", "experiments/create", {"name": name})["experiment_id"])
        except MlflowError as error:  # created meanwhile by another run
            if "RESOURCE_ALREADY_EXISTS" not in str(error):
                raise
            found = self.call("GET", "experiments/get-by-name", experiment_name=name)
            return str(found["experiment"]["experiment_id"])

    def create_run(
        self, experiment_id: str, name: str, start_ms: int, tags: dict[str, str]
    ) -> dict[str, Any]:
        """The new run's ``info`` (run_id, artifact_uri, …)."""
        body = {
            "experiment_id": experiment_id,
            "run_name": name,
            "start_time": start_ms,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        }
        info: dict[str, Any] = self.call("POST", "runs/create", body)["run"]["info"]
        return info

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: dict[str, float] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        timestamp_ms: int = 0,
    ) -> None:
        """Params, metrics and tags, in chunks within the server's limits (100 params or tags,
        1000 entries per request)."""
        entries: list[tuple[str, dict[str, Any]]] = []
        entries += [("params", {"key": k, "value": v}) for k, v in (params or {}).items()]
        entries += [("tags", {"key": k, "value": v}) for k, v in (tags or {}).items()]
        entries += [
            ("metrics", {"key": k, "value": v, "timestamp": timestamp_ms, "step": 0})
            for k, v in (metrics or {}).items()
        ]
        for start in range(0, len(entries), 100):
            body: dict[str, Any] = {"run_id": run_id, "metrics": [], "params": [], "tags": []}
            for kind, entry in entries[start : start + 100]:
                body[kind].append(entry)
            self.call("POST", "runs/log-batch", body)

    def log_dataset(self, run_id: str, dataset: dict[str, Any], context: str = "training") -> None:
        body = {
            "run_id": run_id,
            "datasets": [
                {"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": context}]}
            ],
        }
        self.call("POST", "runs/log-inputs", body)

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.call("POST", "runs/set-tag", {"run_id": run_id, "key": key, "value": value})

    def finish(self, run_id: str, end_ms: int, status: str = "FINISHED") -> None:
        self.call("POST", "runs/update", {"run_id": run_id, "status": status, "end_time": end_ms})

    def upload(self, artifact_uri: str, name: str, data: bytes, content_type: str) -> None:
        """Store ``data`` as artifact ``name`` of a run whose artifacts the server proxies."""
        if not artifact_uri.startswith("mlflow-artifacts:"):
            raise MlflowError(
                f"the run's artifacts go to {artifact_uri.split('://')[0]}, which the tracking "
                "server does not proxy (start it with --serve-artifacts)"
            )
        path = urllib.parse.urlparse(artifact_uri).path.strip("/")
        url = f"{self.base}{_ARTIFACTS}/{urllib.parse.quote(path)}/{urllib.parse.quote(name)}"
        self._send("PUT", url, data, content_type)


def _path(url: str) -> str:
    """The URL without query string (a query may carry names; never credentials)."""
    return urllib.parse.urlparse(url).path
