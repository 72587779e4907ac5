"""Real inference requests from inside the cluster, through a Service, counted per version.

A client pod (the runtime image, restricted profile) sends V2 inference requests to a
Service's ClusterIP, one new connection each (so kube-proxy balances every request), with
rows of the real iris data set, optionally shifted to drift. It prints one JSON line: the
responses per ``model_version``, the predictions and the errors. Running it in the cluster
works on every cluster alike, without NodePorts, port-forwards or host routes.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from tests.e2e.kubectl import Kubectl, wait_for

RUNTIME_IMAGE = "modelwerk/runtime:0.1.0"

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
) -> str:
    """Start a client pod; returns its name."""
    name = f"client-{secrets.token_hex(3)}"
    restricted = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "e2e-client"}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 0,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "client",
                        "image": RUNTIME_IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "command": [
                            "python3",
                            "-c",
                            CLIENT,
                            url,
                            str(count),
                            str(shift),
                            str(pause),
                        ],
                        "securityContext": restricted,
                    }
                ],
            },
        },
        namespace,
    )
    return name


def result(kubectl: Kubectl, namespace: str, pod: str, timeout: float = 300) -> Result:
    """Wait for the client pod to finish; its counts (the pod is deleted afterwards)."""
    phase = wait_for(
        lambda: (
            kubectl.get("pod", pod, namespace).get("status", {}).get("phase")
            in ("Succeeded", "Failed")
            and kubectl.get("pod", pod, namespace)["status"]["phase"]
        ),
        timeout=timeout,
        what=f"client pod {pod} to finish",
    )
    logs = kubectl.logs(pod, namespace, "client")
    assert phase == "Succeeded", f"client pod {pod} {phase}:\n{logs}"
    kubectl.delete("pod", pod, namespace)
    data = json.loads(logs.strip().splitlines()[-1])
    return Result(data["versions"], data["predictions"], data["errors"])


def send(kubectl: Kubectl, namespace: str, url: str, count: int, *, shift: float = 0.0) -> Result:
    return result(kubectl, namespace, start(kubectl, namespace, url, count, shift=shift))
