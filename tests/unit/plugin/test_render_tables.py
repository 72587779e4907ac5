"""``kubectl modelwerk list`` and ``history``."""

from __future__ import annotations

from modelwerk.plugin.render_tables import render_history, render_list
from tests.unit.plugin.objects import NOW, aborted, blue_green_waiting, canary_at, fresh


def rows(text: str) -> list[list[str]]:
    """Cells split on the three-space column gap (cells may contain single spaces)."""
    return [
        [cell.strip() for cell in line.split("   ") if cell.strip()] for line in text.splitlines()
    ]


def test_list_has_one_row_per_deployment_sorted_by_name() -> None:
    second = canary_at(2)
    second["metadata"]["name"] = "wine"
    second["status"]["actualWeight"] = 10  # a canary pod lost readiness
    table = rows(render_list([second, canary_at(0)], NOW, all_namespaces=False))
    assert table == [
        ["NAME", "MODEL", "VERSION", "CANARY", "STRATEGY", "WEIGHT", "PHASE", "AGE"],
        [
            "iris",
            "iris-classifier",
            "iris-classifier-v1",
            "iris-classifier-v2",
            "Canary",
            "0%",
            "Progressing",
            "3d",
        ],
        [
            "wine",
            "iris-classifier",
            "iris-classifier-v1",
            "iris-classifier-v2",
            "Canary",
            "10% (asked 20%)",
            "Progressing",
            "3d",
        ],
    ]


def test_list_across_namespaces_adds_the_namespace_and_tolerates_missing_status() -> None:
    table = rows(render_list([blue_green_waiting(), fresh(), aborted()], NOW, all_namespaces=True))
    assert table[0][:2] == ["NAMESPACE", "NAME"]
    assert table[1] == ["demo", "iris", "-", "-", "-", "-", "-", "-", "3d"]
    assert table[2] == [
        "demo",
        "iris",
        "iris-classifier",
        "iris-classifier-v1",
        "-",
        "Canary",
        "0%",
        "Aborted",
        "3d",
    ]
    assert table[3] == [
        "payments",
        "fraud",
        "fraud",
        "fraud-v1",
        "fraud-v2",
        "BlueGreen",
        "-",
        "Paused",
        "3d",
    ]


def test_a_paused_deployment_says_so_in_the_phase_column() -> None:
    obj = canary_at(2)
    obj["status"]["paused"] = True
    assert rows(render_list([obj], NOW, all_namespaces=False))[1][6] == "Progressing (paused)"


def test_an_empty_list_renders_nothing() -> None:
    assert render_list([], NOW, all_namespaces=True) == ""


def test_history_newest_first_with_times_and_duration() -> None:
    table = rows(render_history(aborted()))
    assert table == [
        ["VERSION", "OUTCOME", "STARTED (UTC)", "FINISHED (UTC)", "TOOK", "MESSAGE"],
        [
            "iris-classifier-v2",
            "Aborted",
            "2026-11-22 10:05:00",
            "2026-11-22 10:14:40",
            "9m40s",
            "Analysis step-4 failed: errorRate 0.042 above 0.01",
        ],
        [
            "iris-classifier-v1",
            "Promoted",
            "2026-11-21 10:10:00",
            "2026-11-21 10:15:00",
            "5m",
            "all steps passed",
        ],
    ]


def test_a_rollout_in_progress_has_no_finish_time() -> None:
    table = rows(render_history(canary_at(1)))
    assert table[1] == ["iris-classifier-v2", "Progressing", "2026-11-22 10:05:00", "-", "-", "-"]


def test_no_history_renders_nothing() -> None:
    assert render_history(fresh()) == ""
