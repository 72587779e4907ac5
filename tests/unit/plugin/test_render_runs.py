"""``kubectl modelwerk runs`` and ``diff``: runs side by side, versions compared."""

from __future__ import annotations

from typing import Any

from modelwerk.plugin import cli
from modelwerk.plugin.render_runs import render_diff, render_runs


def _training(name: str, created: str, phase: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {
            "datasetRef": {"name": "hiring"},
            "model": {"name": "hiring-screen"},
            "estimator": {"name": "LogisticRegression", "params": {"max_iter": 500}},
        },
        "status": {"phase": phase, "datasetVersion": "sha256:" + "ab" * 32, **status},
    }


def _version(name: str, created: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"model": "hiring-screen", "version": 1, "stage": "Staging", **spec},
        "status": {"phase": "Ready"},
    }


REJECTED = _training(
    "hiring-with-proxy",
    "2026-01-01T10:00:00Z",
    "Rejected",
    bestParams={"C": 10.0},
    metrics={"accuracy": 0.709},
    fairness={"figures": {"demographicParityRatio": 0.7648}},
    robustness={"figures": {"noise.flipRate@0.1": 0.027}},
    gateResults=[
        {"metric": "accuracy", "operator": ">=", "threshold": 0.6, "value": 0.709, "passed": True},
        {
            "metric": "fairness.demographicParityRatio",
            "operator": ">=",
            "threshold": 0.8,
            "value": 0.7648,
            "passed": False,
        },
    ],
    trialCount=3,
    durationSeconds=19.2,
)
REGISTERED = _training(
    "hiring-without-proxy",
    "2026-01-01T11:00:00Z",
    "Succeeded",
    modelVersion="hiring-screen-v1",
    bestParams={"C": 0.1},
    metrics={"accuracy": 0.695},
    fairness={"figures": {"demographicParityRatio": 0.9743}},
    gateResults=[{"metric": "accuracy", "passed": True}],
)


def lines(text: str) -> dict[str, list[str]]:
    return {
        line.split()[0]: [c.strip() for c in line.split("   ") if c.strip()][1:]
        for line in text.splitlines()
    }


def test_runs_are_columns_newest_first_with_every_figure() -> None:
    text = render_runs(
        "hiring-screen",
        [REJECTED, REGISTERED],
        [
            _version("hiring-screen-v1", "2026-01-01T11:01:00Z"),
            _version("other-v1", "x", model="o"),
        ],
    )
    table = lines(text)
    assert table["RUN"] == ["hiring-without-proxy", "hiring-with-proxy"]
    assert table["phase"] == ["Succeeded", "Rejected"]
    assert table["version"] == ["hiring-screen-v1", "-"]
    assert table["stage"] == ["Staging", "-"]
    assert table["dataset"] == ["hiring@abababababab"] * 2
    assert table["gates"] == ["1/1 passed", "1/2 passed"]
    assert table["failed"] == ["-", "fairness.demographicParityRatio"]
    assert table["params.C"] == ["0.1", "10"] and table["params.max_iter"] == ["500", "500"]
    assert table["accuracy"] == ["0.695", "0.709"]
    assert table["fairness.demographicParityRatio"] == ["0.9743", "0.7648"]
    assert table["robustness.noise.flipRate@0.1"] == ["-", "0.027"]
    assert table["duration"] == ["-", "19s"]


def test_versions_without_a_run_in_view_get_their_own_column() -> None:
    text = render_runs(
        "hiring-screen", [], [_version("hiring-screen-v7", "t", metrics={"accuracy": 0.5})]
    )
    assert lines(text)["RUN"] == ["(hiring-screen-v7)"] and lines(text)["accuracy"] == ["0.5"]
    assert render_runs("nothing", [REJECTED], []) == ""


def test_diff_shows_only_what_differs() -> None:
    a = _version(
        "hiring-screen-v1",
        "t",
        params={"C": 10.0},
        metrics={"accuracy": 0.709},
        environment={"python": "3.11.2", "libraries": {"scikit-learn": "1.8.0"}},
        lineage={"datasetVersion": "sha256:aa"},
    )
    b = _version(
        "hiring-screen-v2",
        "t",
        version=2,
        params={"C": 0.1},
        metrics={"accuracy": 0.709},
        environment={"python": "3.11.2", "libraries": {"scikit-learn": "1.9.1"}},
        lineage={"datasetVersion": "sha256:aa"},
        fairness={"figures": {"demographicParityRatio": 0.97}},
    )
    table = lines(render_diff(a, b))
    assert table == {
        "FIELD": ["hiring-screen-v1", "hiring-screen-v2"],
        "environment.libraries.scikit-learn": ["1.8.0", "1.9.1"],
        "fairness.figures.demographicParityRatio": ["-", "0.97"],
        "params.C": ["10", "0.1"],
    }
    assert "do not differ" in render_diff(a, a)


def test_the_commands_are_wired() -> None:
    parser = cli._parser()
    assert parser.parse_args(["runs", "m"]).run is cli._runs
    args = parser.parse_args(["diff", "a", "b", "-n", "ns"])
    assert (args.a, args.b, args.namespace, args.run) == ("a", "b", "ns", cli._diff)
