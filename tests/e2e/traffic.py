"""Real inference requests from inside the cluster, through a Service, counted per version.

A client pod (the runtime image, restricted profile) sends V2 inference requests to a
Service's ClusterIP, one new connection each (so kube-proxy balances every request), with
rows of the real iris data set, optionally shifted to drift. It prints one JSON line: the
responses per ``model_version``, the predictions and the errors. Running it in the cluster
works on every cluster alike, without NodePorts, port-forwards or host routes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tests.e2e import pods
from tests.e2e.kubectl import JSON, Kubectl

CLIENT = """
import collections, json, random, sys, time, urllib.request
from sklearn.datasets import load_iris

url, count, shift, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rows = load_iris().data.tolist()
rng = random.Random(7)
versions, predictions, errors = collections.Counter(), collections.Counter(), collections.Counter()
for _ in range(count):
    row = [v + shift for v in rng.choice(rows)]
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [row]}]}
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
        versions[answer["model_version"]] += 1
        predictions[str(answer["outputs"][0]["data"][0])] += 1
    except Exception as e:
        errors[f"{type(e).__name__}: {e}"[:120]] += 1
    time.sleep(pause)
print(json.dumps({"versions": versions, "predictions": predictions, "errors": errors}))
"""


@dataclass(frozen=True)
class Result:
    versions: dict[str, int]
    predictions: dict[str, int]
    errors: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.versions.values())


def service_url(kubectl: Kubectl, namespace: str, service: str, model: str) -> str:
    svc = kubectl.get("service", service, namespace)
    port = svc["spec"]["ports"][0]["port"]
    return f"http://{svc['spec']['clusterIP']}:{port}/v2/models/{model}/infer"


def start(
    kubectl: Kubectl,
    namespace: str,
    url: str,
    count: int,
    *,
    shift: float = 0.0,
    pause: float = 0.0,
    script: str = CLIENT,
    args: list[str] | None = None,
) -> str:
    """Start a client pod running ``script`` (default: the counting client, with ``url``,
    ``count``, ``shift`` and ``pause``; else ``args``); returns its name."""
    argv = args if args is not None else [url, str(count), str(shift), str(pause)]
    return pods.start(kubectl, namespace, "client", script, *argv)


def output(kubectl: Kubectl, namespace: str, pod: str, timeout: float = 300) -> JSON:
    """Wait for the client pod to finish; the JSON it printed last (the pod is deleted)."""
    data: JSON = json.loads(pods.output(kubectl, namespace, pod, timeout).strip().splitlines()[-1])
    return data


def result(kubectl: Kubectl, namespace: str, pod: str, timeout: float = 300) -> Result:
    """Wait for the counting client pod to finish; its counts."""
    data = output(kubectl, namespace, pod, timeout)
    return Result(data["versions"], data["predictions"], data["errors"])


def send(kubectl: Kubectl, namespace: str, url: str, count: int, *, shift: float = 0.0) -> Result:
    return result(kubectl, namespace, start(kubectl, namespace, url, count, shift=shift))
