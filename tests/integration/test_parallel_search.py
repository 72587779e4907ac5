"""A parallel search on the real control plane: Indexed Jobs made by the real Job controller,
their pods' real commands run by the node stand-in (JOB_COMPLETION_INDEX from the pod's
annotation), the final fit, and the failure policy of the search pods."""

from __future__ import annotations

from typing import Any

import pytest

from modelwerk.runtime.data import load
from modelwerk.runtime.trainer import searching, train
from tests.cluster.kopfrun import InProcessOperator
from tests.cluster.node import StandInNode
from tests.cluster.rest import Rest
from tests.cluster.wait import wait_until
from tests.integration.test_training_chain import apply, jobs, phase_is

SEARCH = {
    "strategy": "halving",
    "cv": 3,
    "space": {"max_depth": [1, 2, 3, None], "min_samples_leaf": [1, 4]},
    "parallelism": 2,
}
TREE = {"name": "DecisionTreeClassifier", "params": {}}


@pytest.fixture
def runner(node: StandInNode, namespace: str):  # type: ignore[no-untyped-def]
    return node.auto(namespace, "app.kubernetes.io/managed-by=modelwerk", mode="run")


def batch(rest: Rest, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = rest.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
    return items


def test_a_halving_search_over_two_pods_per_rung_finds_the_serial_winner(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, runner: Any
) -> None:
    apply(admin_rest, namespace, "Dataset")
    apply(admin_rest, namespace, "TrainingJob", estimator=TREE, search=SEARCH, gates=[])
    tj = wait_until(
        lambda: phase_is(admin_rest, namespace, "trainingjobs", "iris-rf", "Succeeded", "Failed"),
        timeout=400,
        what="the parallel search and the final fit",
    )
    assert tj["phase"] == "Succeeded", tj
    search = tj["search"]
    # 8 candidates, factor 3: rungs of 8 and 3 trials.
    assert (search["stages"], search["trialsDone"], search["trialsTotal"]) == (2, 11, 11)
    assert search["failedIndexes"] == 0
    assert tj["trialCount"] == 11

    indexed = [
        j for j in batch(admin_rest, namespace) if j["spec"].get("completionMode") == "Indexed"
    ]
    assert sorted(j["metadata"]["labels"]["modelwerk.dev/search-stage"] for j in indexed) == [
        "0",
        "1",
    ]
    for job in indexed:
        assert job["status"]["completedIndexes"] == "0,1"

    # The serial search of the same spec, in this process, on the same data and split.
    from modelwerk.api.v1alpha1.training_job import TrainingJob

    spec = TrainingJob.from_k8s(
        admin_rest.get(f"/apis/modelwerk.dev/v1alpha1/namespaces/{namespace}/trainingjobs/iris-rf")
    ).spec
    spec = spec.model_copy(update={"search": spec.search.model_copy(update={"parallelism": 1})})  # type: ignore[union-attr]
    ready = train.prepare(spec, load.load_builtin("iris"), "target")
    serial = searching.best(searching.run_serial(ready.evaluator(spec), spec.search))  # type: ignore[arg-type]
    assert tj["bestParams"] == serial.params
    assert search["bestParams"] is not None

    # An operator restart after the run starts nothing again.
    before = jobs(admin_rest, namespace)
    operator.restart()
    wait_until(
        lambda: "trainingjobs-enqueue" in operator.output,
        timeout=60,
        what="a reconcile after restart",
    )
    assert jobs(admin_rest, namespace) == before
    assert phase_is(admin_rest, namespace, "trainingjobs", "iris-rf", "Succeeded")


def test_a_search_pod_that_reports_a_spec_error_fails_its_index_at_once(
    admin_rest: Rest, namespace: str, operator: InProcessOperator, runner: Any
) -> None:
    apply(admin_rest, namespace, "Dataset")
    broken = {**SEARCH, "strategy": "grid", "space": {"max_depth": [2, -1]}}
    apply(admin_rest, namespace, "TrainingJob", estimator=TREE, search=broken, gates=[])
    tj = wait_until(
        lambda: phase_is(admin_rest, namespace, "trainingjobs", "iris-rf", "Failed"),
        timeout=300,
        what="the search to fail",
    )
    assert "InvalidParams" in tj["message"] and "max_depth" in tj["message"]
    assert "index " in tj["message"]
    (job,) = [
        j for j in batch(admin_rest, namespace) if j["spec"].get("completionMode") == "Indexed"
    ]
    # FailIndex: exit code 3 (a spec error) is not retried even with backoffLimitPerIndex 1.
    assert job["status"].get("failed", 0) <= 2
    names = [j["metadata"]["name"] for j in batch(admin_rest, namespace)]
    assert not any("-train-" in n for n in names)  # no final fit after a failed search
