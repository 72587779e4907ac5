"""Inference capture with the artifact store on a real S3 server (versitygw), and an outage.

The operator's default store is a bucket of a versitygw of this test's own (so stopping it
disturbs no other test); the stand-in node runs the real serving pods (2 replicas x 2 worker
processes) and the real aggregator, which reach the bucket through s3fs with the keys from
the namespace's Secret. While the server is stopped, every prediction must still be answered,
the pods count what their full buffers drop, and the Deployment says capture is degraded;
once it is back, capture writes again and nothing flushed before the outage is gone.
"""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from modelwerk.logic.live import PodCapture, parse_capture
from tests.cluster.node import AutoDriver, StandInNode
from tests.cluster.rest import Rest
from tests.cluster.s3 import S3Server, running_s3
from tests.cluster.wait import wait_until
from tests.integration.serving import create_deployment, wait_for_status
from tests.integration.test_artifact_store import SECRET, OperatorWith, _store_settings
from tests.integration.test_capture import CAPTURE, Client, _caught_up, _live, _pods
from tests.integration.test_closed_loop import V1
from tests.integration.test_training_chain import FAST, apply, phase_is

BUCKET = "capture"
# The smallest buffer the API allows, so that an outage fills it with little traffic.
MONITORING = {"capture": {**CAPTURE["capture"], "bufferRows": 100}}


def _metrics(rest: Rest, namespace: str) -> list[str]:
    """The serving pods' /metrics (each covers all the pod's worker processes)."""
    out = []
    for _, ip in _pods(rest, namespace):
        with urllib.request.urlopen(f"http://{ip}:8080/metrics", timeout=10) as response:
            out.append(response.read().decode())
    return out


def _counters(rest: Rest, namespace: str) -> list[PodCapture]:
    return [parse_capture(text) for text in _metrics(rest, namespace)]


def _rows(rest: Rest, namespace: str) -> defaultdict[tuple[str, str], float]:
    """Rows (``written``/``dropped``, stream) over all serving pods."""
    out: defaultdict[tuple[str, str], float] = defaultdict(float)
    for text in _metrics(rest, namespace):
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                for what in ("written_rows", "dropped"):
                    if sample.name == f"modelwerk_capture_{what}_total":
                        out[what.removesuffix("_rows"), sample.labels["stream"]] += sample.value
    return out


def _accounted(rest: Rest, namespace: str, sent: int) -> defaultdict[tuple[str, str], float] | None:
    """The rows, once each of the ``sent`` rows of both streams is written or dropped."""
    rows = _rows(rest, namespace)
    done = all(rows["written", s] + rows["dropped", s] == sent for s in ("predictions", "labels"))
    return rows if done else None


def _logs(driver: AutoDriver) -> str:
    """The last lines of every pod the driver served (shown with a failure)."""
    return "\n".join(f"--- {name}\n{pod.log(60)}" for name, pod in driver.served.items())


def _degraded(status: dict[str, Any]) -> str | None:
    found = [c for c in status.get("conditions", []) if c["type"] == "CaptureDegraded"]
    return found[0]["status"] if found else None


def _production_files(server: S3Server, namespace: str) -> set[str]:
    root = f"modelwerk/{namespace}"
    return {
        key
        for stream in ("captures", "labels")
        for key in server.keys(BUCKET, f"{root}/{stream}/{namespace}/iris/")
        if key.endswith(".parquet")
    }


def test_capture_on_s3_joins_labels_and_rides_out_a_store_outage(
    admin_rest: Rest,
    namespace: str,
    node: StandInNode,
    operator_with: OperatorWith,
    tmp_path: Path,
) -> None:
    with running_s3(tmp_path / "s3", buckets=(BUCKET,)) as store:
        admin_rest.create(f"/api/v1/namespaces/{namespace}/secrets", store.secret(SECRET))
        settings = _store_settings(
            uri=f"s3://{BUCKET}/modelwerk", endpoint=store.endpoint, region=store.region,
            secret=SECRET,
        )  # fmt: skip
        with operator_with(settings) as operator:
            jobs = "app.kubernetes.io/component in (validation,training,verification)"
            node.auto(namespace, jobs, mode="run")
            servers = node.auto(namespace, "app.kubernetes.io/component=server", mode="serve")
            monitor = node.auto(namespace, "app.kubernetes.io/component=monitor", mode="serve")
            apply(admin_rest, namespace, "Dataset")
            apply(admin_rest, namespace, "TrainingJob", **FAST)
            wait_until(
                lambda: phase_is(admin_rest, namespace, "modelversions", V1, "Ready"),
                timeout=300, what="v1 trained on S3 and verified",
            )  # fmt: skip
            path = create_deployment(
                admin_rest, namespace, modelVersion=V1, monitoring=MONITORING, replicas=2,
                server={"workers": 2},
            )  # fmt: skip
            wait_for_status(
                admin_rest, path, lambda s: s.get("phase") == "Healthy", timeout=180,
                what="v1 served from S3",
            )  # fmt: skip
            wait_until(lambda: len(_pods(admin_rest, namespace)) == 2, timeout=60, what="2 pods")
            # No claim anywhere: the aggregator, like the serving pods, reads the bucket.
            assert (
                admin_rest.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims")["items"]
                == []
            )

            # 1. Labels posted to any pod are joined with the predictions of every process.
            client = Client(admin_rest, namespace)
            client.send(200)
            status = wait_for_status(
                admin_rest, path, _caught_up(client, V1), timeout=120,
                what="every label joined from the bucket",
            )  # fmt: skip
            offline, rows = client.offline_accuracy(V1)
            labels = status["liveMetrics"]["labels"]
            assert rows == client.labelled == 200 and client.refused == 0
            assert labels["matched"] >= 0.99 * 200 and labels["duplicates"] == 0, labels
            assert abs(_live(status, V1)["accuracy"] - offline) < 0.005
            assert _degraded(status) == "False", status["conditions"]
            assert status["capture"]["droppedRows"] == 0
            before = _production_files(store, namespace)
            assert any(f"/captures/{namespace}/iris/{V1}/date=" in k for k in before), before
            assert any(f"/labels/{namespace}/iris/date=" in k for k in before), before
            matched_before = labels["matched"]

            # 2. The store goes away: serving does not notice, capture drops and says so.
            store.pause()
            client.send(600, start=200)
            # Every prediction is answered. A label is answered 503 once its process's buffer
            # is full, so that its sender tries again later; nothing else may go wrong.
            assert len(client.answers) == 800, (client.errors, _logs(servers))
            assert set(client.errors) <= {"feedback: HTTPError: HTTP Error 503: Service "
                                          "Unavailable"}, (client.errors, _logs(servers))  # fmt: skip
            refused_labels = client.refused
            dropped = _rows(admin_rest, namespace)
            assert dropped["dropped", "predictions"] > 0, dropped
            # A label refused with 503 is a dropped row, and only such a label is.
            assert dropped["dropped", "labels"] == refused_labels, dropped
            status = wait_for_status(
                admin_rest, path, lambda s: _degraded(s) == "True", timeout=60,
                what="CaptureDegraded=True while the store is down",
            )  # fmt: skip
            degraded = next(c for c in status["conditions"] if c["type"] == "CaptureDegraded")
            assert degraded["reason"] in ("StoreWriteFailing", "RowsDropped", "StoreReadFailing")
            wait_for_status(
                admin_rest, path, lambda s: (s.get("capture") or {}).get("droppedRows", 0) > 0,
                timeout=60, what="the dropped rows in status",
            )  # fmt: skip
            assert admin_rest.get(path)["status"]["phase"] == "Healthy"

            # 3. Back again: the buffered rows and new traffic are written, labels join again.
            store.resume()
            wait_until(
                lambda: not any(pod.failing for pod in _counters(admin_rest, namespace)),
                timeout=30, what="every writer to write again",
            )  # fmt: skip
            refused = client.refused
            client.send(40, start=800)
            assert client.refused == refused, (client.errors, _logs(servers))
            status = wait_for_status(
                admin_rest, path,
                lambda s: _degraded(s) == "False"
                and s["liveMetrics"]["labels"]["matched"] >= matched_before + 40,
                timeout=120, what="capture to recover and new labels to be joined",
            )  # fmt: skip
            after = _production_files(store, namespace)
            assert before <= after, f"lost after the outage: {sorted(before - after)}"
            assert len(after - before) >= 4, "no new files after the outage"
            # Every row is accounted for: written (late, for those buffered during the outage)
            # or counted as dropped; none lost without a count.
            counted = wait_until(
                lambda: _accounted(admin_rest, namespace, 840), timeout=30,
                what="every row written or counted as dropped",
            )  # fmt: skip
            assert counted is not None and counted["dropped", "labels"] == refused_labels, counted
            # The pods said what happened, and never the store's keys.
            served = {**servers.served, **monitor.served}
            logs = {name: pod.log_path.read_text() for name, pod in served.items()}
            assert any("Could not read the store" in t for n, t in logs.items() if "monitor" in n)
            assert any("Could not write s3://" in t for n, t in logs.items() if "monitor" not in n)
            assert not [name for name, text in logs.items() if store.secret_key in text]
            assert store.secret_key not in operator.output
