#!/usr/bin/env python3
"""``make demo``: the iris chain on whatever cluster is at hand, then where to send a prediction.

Picks, in order:

1. the current kubeconfig context, if its API server answers (images must be reachable by
   that cluster: a kind context gets them loaded, any other must be able to pull them);
2. kind, if ``kind`` and a Docker daemon work: creates the cluster from kind-config.yaml
   (or reuses it) and loads freshly built images;
3. the local node cluster (root; hack/node), with images built offline and imported.

Then it installs modelwerk (``kubectl apply -k manifests/overlays/...``), applies
``manifests/samples/iris``, waits for every step, sends one prediction and prints how to
send more. The cluster keeps running: ``make kind-down`` or ``make node-down`` removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
NAMESPACE = "modelwerk-demo"
KIND_CLUSTER = os.environ.get("KIND_CLUSTER", "modelwerk")
NODE_PORT = 30080
ROW = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [[6.7, 3.0, 5.2, 2.3]]}
    ]
}


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def works(*argv: str, timeout: float = 20) -> bool:
    if shutil.which(argv[0]) is None:
        return False
    try:
        return subprocess.run(argv, capture_output=True, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def run(*argv: str) -> str:
    say("$ " + " ".join(argv))
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, cwd=REPO)
    if done.returncode != 0:
        sys.exit(f"[demo] `{' '.join(argv)}` failed (exit {done.returncode})")
    return done.stdout


def predict(url: str, body: str, attempts: int = 30) -> str:
    """POST one inference request; retried while kube-proxy is still programming the NodePort."""
    for attempt in range(attempts):
        request = urllib.request.Request(url, body.encode(), {"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer: str = response.read().decode()
                return answer
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def current_context() -> str | None:
    if not works("kubectl", "get", "--raw=/readyz", "--request-timeout=5s"):
        return None
    return subprocess.run(
        ["kubectl", "config", "current-context"], capture_output=True, text=True
    ).stdout.strip()


def main() -> int:
    context = current_context()
    kubeconfig = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    if context:
        say(f"using the current context {context}")
        if context == f"kind-{KIND_CLUSTER}":
            run(PY, "hack/images/build.py", "--load", "kind", "--kind-cluster", KIND_CLUSTER)
            where = "kind"
        else:
            where = "context"
    elif works("kind", "version") and works("docker", "info"):
        say("no reachable context: using kind")
        clusters = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True)
        if KIND_CLUSTER not in clusters.stdout.split():
            run("kind", "create", "cluster", "--config", "kind-config.yaml", "--wait", "120s")
        run(PY, "hack/images/build.py", "--load", "kind", "--kind-cluster", KIND_CLUSTER)
        where = "kind"
    else:
        if os.geteuid() != 0:
            sys.exit(
                "[demo] no reachable kubeconfig context, no working kind + Docker, and the"
                " local node cluster needs root: run `sudo make demo`, or start a cluster"
            )
        say("no reachable context and no kind: using the local node cluster (hack/node)")
        run(PY, "hack/node/node.py", "prereqs", "--install", "--images")
        kubeconfig = run(PY, "hack/node/node.py", "up").strip().splitlines()[-1]
        run(PY, "hack/images/build.py", "--offline", "--load", "node")
        where = "node"

    overlay = "default" if where == "context" else "kind"  # kind overlay: never pull
    kubectl = ("kubectl", f"--kubeconfig={kubeconfig}")
    run(
        *kubectl,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-k",
        f"manifests/overlays/{overlay}",
    )
    run(
        *kubectl,
        "-n",
        "modelwerk-system",
        "rollout",
        "status",
        "deploy/modelwerk-operator",
        "--timeout=300s",
    )
    run(*kubectl, "apply", "--server-side", "-k", "manifests/samples/iris")
    waits = (
        ("dataset/iris", "condition=Ready"),
        ("trainingjob/iris-rf", "jsonpath={.status.phase}=Succeeded"),
        ("deployments.modelwerk.dev/iris", "condition=Available"),
    )
    for obj, condition in waits:
        run(*kubectl, "-n", NAMESPACE, "wait", obj, f"--for={condition}", "--timeout=600s")
    run(*kubectl, "-n", NAMESPACE, "get", "modelwerk")

    body = json.dumps(ROW)
    path = "/v2/models/iris-classifier/infer"
    if where == "node":
        base = f"http://10.88.0.1:{NODE_PORT}"
        say(f"prediction: {predict(base + path, body)}")
        how = f"curl -s {base}{path} -H 'content-type: application/json' -d '{body}'"
        down = "make node-down"
    elif where == "kind":
        how = f"curl -s localhost:8080{path} -H 'content-type: application/json' -d '{body}'"
        down = "make kind-down"
    else:
        how = (
            f"kubectl -n {NAMESPACE} port-forward svc/iris 8080:80 &\n"
            f"  curl -s localhost:8080{path} -H 'content-type: application/json' -d '{body}'"
        )
        down = "kubectl delete -k manifests/samples/iris"
    print(
        f"\nThe iris model is served. Send a prediction:\n  {how}\n"
        f"Watch it: kubectl --kubeconfig={kubeconfig} -n {NAMESPACE} get modelwerk\n"
        f"Remove it: {down}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
