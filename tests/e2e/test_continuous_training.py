"""The continuous-training loop on a real cluster, with real learning (issue 17 item 7).

A model trained on iris serves with every prediction and label captured in the artifact
store (an S3 server, as tests/e2e/test_s3_store.py sets it up). Clients send iris rows
through the stable Service and post each row's label. Then the concept shifts: from that
moment the labels of versicolor and virginica are swapped (the same flowers, named the other
way round), so the served model is wrong on two thirds of the rows and its live accuracy
falls below the policy's bound: the ``liveMetric`` trigger fires.

Retraining on the original data would be hollow (that data made the served model): the
Deployment says it waits for new labelled data and starts nothing. A production Dataset
(the iris base, then the labelled rows captured since the shift) publishes a version; pointed
at a template that trains on it, the trigger starts exactly one run, pinned to that version.
There each flower of the new concept is at least four times as frequent as the base's, so
the challenger learns it, and it beats the champion (the served version, scored by the training
pod on the challenger's own holdout rows) by far more than the margin. It rolls out by canary
(an analysis on the canary's live accuracy, from the labels the clients keep posting) and the
live accuracy on fresh labelled traffic recovers.

The figures are printed (run with ``-s`` or ``-rP``): live accuracy before the shift, at the
trigger and after; champion and challenger on the same holdout.

The tests run in file order and build on each other. Without ``MODELWERK_E2E_S3_HOST`` (set
by hack/e2e.sh node) the module is skipped with that reason.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.s3 import S3Server
from tests.e2e import traffic
from tests.e2e.chain import (
    DEPLOYMENT,
    JOB_TIMEOUT,
    MODEL,
    SERVE_TIMEOUT,
    deployment,
    sample,
    status,
    train,
    wait_deployment,
    wait_only,
    wait_registered,
)
from tests.e2e.kubectl import JSON, Kubectl, condition, wait_for

HOST_ENV = "MODELWERK_E2E_S3_HOST"
BUCKET = "modelwerk-loop"

pytestmark = pytest.mark.skipif(
    not os.environ.get(HOST_ENV),
    reason=f"{HOST_ENV} is not set: no host address the cluster's pods can reach an S3 server on",
)

# A seeded simulation of this design (sklearn, the template's estimator and split, 50 seeds of
# 600 new-concept rows after iris): challenger 0.80-0.90 vs champion at most 0.54 on the
# holdout (gap at least 0.28), the new model right on at least 95 % of fresh rows, the old one
# on 34 %. More rows only widen the gaps.
RECENT = "iris-recent"  # the production Dataset
TEMPLATE = "iris-loop"  # the retraining template that trains on it
BOUND = 0.8  # the liveMetric trigger fires below this live accuracy
MIN_LABELLED_ROWS = 600  # four new-concept rows per base row at least (see below)
MARGIN = 0.05  # the champion-challenger gate's margin
RETRAINING = "modelwerk.dev/retraining-for"
ESTIMATOR = {"name": "RandomForestClassifier", "params": {"n_estimators": 50, "max_depth": 5}}

state: dict[str, Any] = {}

# Iris rows through the stable Service, each label posted as soon as the prediction came back.
# With concept=1 the labels of classes 1 and 2 are swapped: the inputs do not change, what
# they mean does. It prints the (version, prediction, label) of every answer.
CLIENT = """
import collections, json, random, sys, time, urllib.request
from sklearn.datasets import load_iris

base, count, pause, seed, concept = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])
meaning = {0: 0, 1: 2, 2: 1} if concept else {0: 0, 1: 1, 2: 2}
data = load_iris()
rng = random.Random(seed)
def post(path, body):
    request = urllib.request.Request(
        base + path, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)
answers, errors = [], collections.Counter()
for _ in range(count):
    i = rng.randrange(len(data.data))
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                        "data": [data.data[i].tolist()]}]}
    try:
        answer = post("/v2/models/{MODEL}/infer", body)
        predicted, truth = int(answer["outputs"][0]["data"][0]), meaning[int(data.target[i])]
        post("/v2/models/{MODEL}/feedback", {"id": answer["id"], "label": truth})
        answers.append([answer["model_version"], predicted, truth])
    except Exception as e:
        errors[f"{type(e).__name__}: {e}"[:120]] += 1
    time.sleep(pause)
print(json.dumps({"answers": answers, "errors": errors}))
""".replace("{MODEL}", MODEL)


def needs(*keys: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        pytest.fail(f"an earlier step did not complete: {missing}")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with tempfile.TemporaryDirectory(prefix="mw-e2e-loop-s3-") as workdir:
        server = S3Server(Path(workdir), host=os.environ[HOST_ENV])
        server.start()
        try:
            server.create_bucket(BUCKET)
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def store(kubectl: Kubectl, namespace: str, s3: S3Server) -> Iterator[str]:
    """The namespace's artifact store on the S3 server (its Secret and override ConfigMap);
    the new-concept client still running when the module ends is stopped."""
    kubectl.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "artifact-store"},
                "stringData": s3.credentials,
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "modelwerk-artifact-store"},
                "data": {
                    "uri": f"s3://{BUCKET}/loop",
                    "endpoint": s3.endpoint,
                    "region": s3.region,
                    "secretName": "artifact-store",
                },
            },
        ],
        namespace,
    )
    yield f"s3://{BUCKET}/loop"
    if state.get("client"):
        kubectl.delete("pod", state.pop("client"), namespace)


def base_url(kubectl: Kubectl, namespace: str) -> str:
    svc = kubectl.get("service", DEPLOYMENT, namespace)
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


def clients(
    kubectl: Kubectl, namespace: str, count: int, pause: float, seed: int, concept: int
) -> str:
    return traffic.start(
        kubectl, namespace, "", count, script=CLIENT,
        args=[base_url(kubectl, namespace), str(count), str(pause), str(seed), str(concept)],
    )  # fmt: skip


def answers(kubectl: Kubectl, namespace: str, pod: str) -> list[list[int | str]]:
    out = traffic.output(kubectl, namespace, pod, timeout=600)
    got: list[list[int | str]] = out["answers"]
    assert len(got) >= 0.98 * (len(got) + sum(out["errors"].values())), out["errors"]
    return got


def live(status_: JSON, version: str) -> JSON | None:
    """The live figures of ``version`` (its row outside any experiment arm)."""
    rows = (status_.get("liveMetrics") or {}).get("versions") or []
    return next((v for v in rows if v["version"] == version and not v.get("arm")), None)


def joined(kubectl: Kubectl, namespace: str, version: str, rows: int, after: str) -> JSON:
    """The live figures of ``version`` once a reading after ``after`` has joined at least
    ``rows`` of its labels and none is pending."""

    def caught_up(s: JSON) -> bool:
        metrics = s.get("liveMetrics") or {}
        figure = live(s, version)
        return (
            metrics.get("measuredTime") is not None
            and parse(metrics["measuredTime"]) > parse(after)
            and (metrics.get("labels") or {}).get("pending", 1) == 0
            and figure is not None
            and figure.get("matched", 0) >= rows
            and figure.get("accuracy") is not None
        )

    what = f"the join of {rows} labels of {version} after {after}"
    figure = live(wait_deployment(kubectl, namespace, what, caught_up)["status"], version)
    assert figure is not None
    return figure


def offline(rows: list[list[int | str]], version: str) -> tuple[float, int]:
    mine = [(p, t) for v, p, t in rows if v == version]
    assert mine, f"no answer from {version}"
    return sum(p == t for p, t in mine) / len(mine), len(mine)


def now(later: float = 0.0) -> str:
    """The time (UTC, whole seconds) ``later`` seconds from now, as the API writes times."""
    at = datetime.now(UTC) + timedelta(seconds=later)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(time: str) -> datetime:
    return datetime.fromisoformat(time.replace("Z", "+00:00"))


def retraining_runs(kubectl: Kubectl, namespace: str) -> list[JSON]:
    return kubectl.list("trainingjobs", namespace, f"{RETRAINING}={DEPLOYMENT}")


def test_a_model_of_the_old_concept_serves_with_capture_on_s3(
    kubectl: Kubectl, namespace: str, store: str
) -> None:
    kubectl.apply(sample("dataset"), namespace)
    # No search: the loop's figures do not need one, and every minute counts on 2 cores.
    v1 = train(kubectl, namespace, "iris-rf", search=None, estimator=ESTIMATOR)
    artifact = kubectl.get("modelversion", v1, namespace)["spec"]["artifact"]
    assert artifact["uri"].startswith(f"{store}/"), artifact
    kubectl.apply(
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": DEPLOYMENT},
            "spec": {
                # Follows the model: a version a retraining run registers rolls out.
                "modelSelector": {"model": MODEL},
                "replicas": 2,
                "service": {"type": "ClusterIP", "port": 80},
                "strategy": {"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
                "analysis": {
                    "intervalSeconds": 10,
                    "count": 3,
                    "minRequests": 30,
                    "inconclusiveLimit": 30,
                    "checks": [{"metric": "accuracy", "min": BOUND}],
                },
                "monitoring": {
                    "capture": {
                        "inputSampleRate": 1.0,  # a labelled row without inputs is no row
                        "flushIntervalSeconds": 2,
                        "intervalSeconds": 5,
                        "windowSeconds": 300,
                    },
                    # First the template that made v1, on the original data: the negative case.
                    "retraining": {
                        "trainingJobRef": {"name": "iris-rf"},
                        # One run in this module: none started while the winner's canary runs.
                        "minIntervalSeconds": 3600,
                        "triggers": {
                            "drift": False,
                            "liveMetric": {
                                "metric": "accuracy",
                                "bound": BOUND,
                                "minLabelled": 100,
                            },
                        },
                        "gate": {"margin": MARGIN},
                    },
                },
            },
        },
        namespace,
    )
    wait_deployment(
        kubectl, namespace, f"2 Ready serving pods of {v1}",
        lambda s: s.get("phase") == "Healthy" and s.get("readyReplicas") == 2
        and s.get("stableVersion") == v1,
    )  # fmt: skip
    wait_for(
        lambda: [
            p for p in kubectl.list("pods", namespace, f"modelwerk.dev/monitor-for={DEPLOYMENT}")
            if condition(p, "Ready") == "True"
        ],
        timeout=SERVE_TIMEOUT,
        what="the aggregator pod to be Ready",
    )  # fmt: skip
    state["v1"] = v1


def test_live_accuracy_is_high_on_the_old_concept(kubectl: Kubectl, namespace: str) -> None:
    needs("v1")
    v1, start = state["v1"], now()
    rows = answers(kubectl, namespace, clients(kubectl, namespace, 200, 0.0, 1, 0))
    accuracy, count = offline(rows, v1)
    figure = joined(kubectl, namespace, v1, int(0.98 * count), start)
    print(
        f"[loop] before the shift: live accuracy of {v1} {figure['accuracy']:.4f} "
        f"({figure['matched']} labels; the client's own count {accuracy:.4f} of {count})"
    )
    assert figure["accuracy"] >= 0.9 and abs(figure["accuracy"] - accuracy) < 0.02
    dep = deployment(kubectl, namespace)
    assert condition(dep, "Retraining") != "True" and retraining_runs(kubectl, namespace) == []
    state["before"] = figure["accuracy"]


def test_the_concept_shifts_and_retraining_on_the_original_data_would_be_hollow(
    kubectl: Kubectl, namespace: str
) -> None:
    needs("before")
    v1 = state["v1"]
    state["shift"] = shift = now()
    # The new concept's labelled traffic runs from here until the winner has rolled out
    # (about 14 requests a second); it feeds the trigger, the Dataset and the canary analysis.
    state["client"] = clients(kubectl, namespace, 30000, 0.02, 2, 1)
    # What users add once they want a model of what production says now: the rows captured
    # since the shift, after the original data, and a template that trains on them. The
    # template is suspended, so that it never runs by itself (it would train on the first
    # version and make it "seen"); retraining runs are copies without suspend, pinned to the
    # version they start for.
    kubectl.apply(
        {
            "apiVersion": "modelwerk.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": RECENT},
            "spec": {
                "target": "target",
                "refreshIntervalSeconds": 60,
                "source": {
                    "production": {
                        "deployment": DEPLOYMENT,
                        "window": {"start": shift},
                        "minLabelledRows": MIN_LABELLED_ROWS,
                        "base": {"name": "iris"},
                    }
                },
            },
        },
        namespace,
    )
    template = sample("trainingjob")
    template["metadata"]["name"] = TEMPLATE
    template["spec"].update(
        datasetRef={"name": RECENT},
        suspend=True,
        search=None,
        estimator=ESTIMATOR,
        # The holdout mixes base rows (old concept) and production rows (new): a challenger
        # that learnt the new concept scores 0.8 to 0.9 on it; the champion gate does the rest.
        gates=[{"metric": "accuracy", "operator": ">=", "threshold": 0.6}],
    )
    kubectl.apply(template, namespace)

    waiting = wait_deployment(
        kubectl, namespace, "the liveMetric trigger held back: Retraining=False WaitingForNewData",
        lambda s: any(
            c["type"] == "Retraining" and c["reason"] == "WaitingForNewData"
            for c in s.get("conditions", [])
        ),
    )["status"]  # fmt: skip
    held = waiting["retraining"]["lastSuppressed"]
    figure = live(waiting, v1)
    assert figure is not None
    message = next(c["message"] for c in waiting["conditions"] if c["type"] == "Retraining")
    print(f"[loop] at the trigger: live accuracy of {v1} {figure['accuracy']:.4f} "
          f"({figure['matched']} labels); {message}")  # fmt: skip
    assert (held["trigger"], held["suppressed"]) == ("liveMetric", "WaitingForNewData"), held
    assert figure["accuracy"] < BOUND and figure["matched"] >= 100
    assert "waiting for new labelled data" in message and "iris" in message
    assert retraining_runs(kubectl, namespace) == [], "a hollow run started"
    state["trigger"] = figure["accuracy"]


def test_the_production_dataset_publishes_the_base_and_the_new_concept(
    kubectl: Kubectl, namespace: str
) -> None:
    needs("trigger")
    kubectl.wait(f"dataset/{RECENT}", "Ready", namespace, timeout=JOB_TIMEOUT)
    ds = status(kubectl, "dataset", RECENT, namespace)
    provenance = ds["provenance"]
    print(f"[loop] {RECENT} version {ds['version'][7:19]}: {ds['rows']} rows, {provenance}")
    assert provenance["base"]["dataset"] == "iris" and provenance["base"]["rows"] == 150
    production = provenance["production"]
    assert production["labelledRows"] >= MIN_LABELLED_ROWS, production
    # inputSampleRate 1: every labelled row has its inputs.
    assert production["rows"] >= 0.99 * production["labelledRows"], production
    assert production["modelVersions"] == [state["v1"]], production
    assert ds["rows"] == 150 + production["rows"]
    # The template never ran by itself: it is Suspended, with no Job and no version.
    template = status(kubectl, "trainingjob", TEMPLATE, namespace)
    assert template.get("phase") == "Suspended" and not template.get("modelVersion"), template
    state["published"] = ds["version"]


def test_on_production_data_the_trigger_starts_one_run_that_beats_the_champion(
    kubectl: Kubectl, namespace: str
) -> None:
    needs("published")
    v1 = state["v1"]
    kubectl.merge_patch(
        "deployments.modelwerk.dev", DEPLOYMENT, namespace,
        {"spec": {"monitoring": {"retraining": {"trainingJobRef": {"name": TEMPLATE}}}}},
    )  # fmt: skip
    (run,) = wait_for(
        lambda: retraining_runs(kubectl, namespace),
        timeout=180,
        what=f"the liveMetric trigger to start a run on {RECENT}",
    )
    name, meta = run["metadata"]["name"], run["metadata"]
    pinned = meta["annotations"]["modelwerk.dev/retraining-dataset-version"]
    recent = status(kubectl, "dataset", RECENT, namespace)
    history = [recent["version"], *(h["version"] for h in recent.get("history") or [])]
    print(f"[loop] started {name}: {meta['annotations']['modelwerk.dev/retraining-reason']}")
    assert meta["labels"]["modelwerk.dev/retraining-trigger"] == "liveMetric"
    assert run["spec"]["datasetRef"] == {"name": RECENT, "version": pinned} and pinned in history
    assert run["spec"]["champion"]["deployment"] == DEPLOYMENT

    v2 = wait_registered(kubectl, namespace, name)
    tj = status(kubectl, "trainingjob", name, namespace)
    verdict = tj["champion"]
    print(
        f"[loop] champion {verdict['version']} {verdict['champion']:.4f} vs challenger "
        f"{v2} {verdict['challenger']:.4f} ({verdict['metric']}, "
        f"{verdict['holdoutRows']} holdout rows of version {pinned[7:19]})"
    )
    assert tj["datasetVersion"] == pinned and tj["championVersion"] == v1
    assert verdict["passed"] is True and verdict["version"] == v1
    # The served model is right on setosa only, a third of the new concept's rows; the
    # challenger on almost all of them and wrong on two thirds of the base rows.
    assert verdict["challenger"] - verdict["champion"] > 0.15, verdict
    assert len(retraining_runs(kubectl, namespace)) == 1
    last = deployment(kubectl, namespace)["status"]["retraining"]["lastRun"]
    assert (last["trigger"], last["trainingJob"], last["datasetVersion"]) == (
        "liveMetric", name, pinned,
    )  # fmt: skip
    state["v2"] = v2
    state["champion"] = verdict


def test_the_challenger_rolls_out_by_canary_on_its_live_accuracy(
    kubectl: Kubectl, namespace: str
) -> None:
    needs("v2")
    v2 = state["v2"]
    wait_deployment(
        kubectl, namespace, f"{v2} to become the canary",
        lambda s: s.get("canaryVersion") == v2 or s.get("stableVersion") == v2,
    )  # fmt: skip
    done = wait_deployment(
        kubectl, namespace, f"the canary analysis to promote {v2} (or abort it)",
        lambda s: not s.get("canaryVersion") and v2 in (s.get("stableVersion"), s.get("abortedVersion")),
    )["status"]  # fmt: skip
    measured = [
        m for r in done.get("analysisRuns") or [] for m in r["measurements"]
        if m["metric"] == "accuracy"
    ]  # fmt: skip
    print(f"[loop] canary analysis of {v2}: {[(m['phase'], m.get('value')) for m in measured]}")
    assert done["stableVersion"] == v2, f"the canary was aborted: {done.get('analysisRuns')}"
    passed = [m for m in measured if m["phase"] == "Successful"]
    assert passed and all(m["value"] >= BOUND for m in passed), measured
    assert not [m for m in measured if m["phase"] == "Failed"], measured
    kubectl.delete("pod", state.pop("client"), namespace)
    wait_only(kubectl, namespace, v2, f"only {v2} pods to serve")
    state["promoted"] = v2


def test_live_accuracy_recovers_on_fresh_labelled_traffic(kubectl: Kubectl, namespace: str) -> None:
    needs("promoted")
    v2 = state["v2"]
    rows = answers(kubectl, namespace, clients(kubectl, namespace, 300, 0.0, 3, 1))
    accuracy, count = offline(rows, v2)
    assert count == len(rows), "every fresh answer came from the new version"
    # v2 already has the new concept's labels of its canary: wait for a reading taken after
    # the fresh labels were flushed (every 2 s) and joined.
    figure = joined(kubectl, namespace, v2, count, now(later=10))
    champion = state["champion"]
    print(
        f"[loop] live accuracy: before the shift {state['before']:.4f}, at the trigger "
        f"{state['trigger']:.4f}, after {figure['accuracy']:.4f} ({figure['matched']} labels of "
        f"{v2}; fresh rows {accuracy:.4f} of {count}); champion {champion['champion']:.4f} vs "
        f"challenger {champion['challenger']:.4f}"
    )
    assert accuracy >= 0.9 and figure["accuracy"] >= 0.9
    # The trigger fired at the first reading below the bound; the new model is far above it.
    assert figure["accuracy"] - state["trigger"] > 0.1
    dep = deployment(kubectl, namespace)["status"]
    assert dep["stableVersion"] == v2 and len(retraining_runs(kubectl, namespace)) == 1
