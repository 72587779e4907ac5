"""The index of who refers to whom, which wakes dependents when a referenced object changes."""

from __future__ import annotations

from modelwerk.handlers.dependents import Dependents, reference


def test_references_name_what_each_kind_points_at() -> None:
    assert reference("TrainingJob", {"datasetRef": {"name": "iris"}}) == "dataset:iris"
    assert reference("ModelVersion", {"model": "iris-classifier"}) == "model:iris-classifier"
    assert reference("Deployment", {"modelVersion": "iris-v2"}) == "version:iris-v2"
    assert reference("Deployment", {"modelSelector": {"model": "iris"}}) == "model:iris"
    assert reference("Dataset", {"source": {"builtin": "iris"}}) is None
    assert reference("TrainingJob", {}) is None


def test_a_dataset_change_wakes_the_training_jobs_reading_it() -> None:
    index = Dependents()
    index.seen("TrainingJob", "ns", "rf", {"datasetRef": {"name": "iris"}})
    index.seen("TrainingJob", "ns", "gb", {"datasetRef": {"name": "iris"}})
    index.seen("TrainingJob", "ns", "other", {"datasetRef": {"name": "wine"}})
    index.seen("TrainingJob", "elsewhere", "rf", {"datasetRef": {"name": "iris"}})
    assert index.of_change("Dataset", "ns", "iris", {}) == [
        ("TrainingJob", "ns", "gb"),
        ("TrainingJob", "ns", "rf"),
    ]


def test_a_model_version_change_wakes_its_siblings_and_the_deployments_serving_it() -> None:
    index = Dependents()
    for n in (1, 2, 3):
        index.seen("ModelVersion", "ns", f"iris-v{n}", {"model": "iris"})
    index.seen("ModelVersion", "ns", "wine-v1", {"model": "wine"})
    index.seen("Deployment", "ns", "pinned", {"modelVersion": "iris-v2"})
    index.seen("Deployment", "ns", "pinned-elsewhere", {"modelVersion": "iris-v1"})
    index.seen("Deployment", "ns", "follows", {"modelSelector": {"model": "iris"}})
    assert index.of_change("ModelVersion", "ns", "iris-v2", {"model": "iris"}) == [
        ("ModelVersion", "ns", "iris-v1"),
        ("ModelVersion", "ns", "iris-v3"),
        ("Deployment", "ns", "follows"),
        ("Deployment", "ns", "pinned"),
    ]


def test_a_changed_reference_replaces_the_old_one_and_a_deleted_object_is_forgotten() -> None:
    index = Dependents()
    index.seen("Deployment", "ns", "web", {"modelVersion": "iris-v1"})
    index.seen("Deployment", "ns", "web", {"modelVersion": "iris-v2"})
    assert index.referring("Deployment", "ns", "version:iris-v1") == []
    assert index.referring("Deployment", "ns", "version:iris-v2") == ["web"]
    index.forget("Deployment", "ns", "web")
    assert index.referring("Deployment", "ns", "version:iris-v2") == []
    assert len(index) == 0
    index.forget("Deployment", "ns", "never-seen")  # a DELETED event for an unknown object


def test_changes_of_other_kinds_wake_nobody() -> None:
    index = Dependents()
    index.seen("Deployment", "ns", "web", {"modelVersion": "iris-v1"})
    assert index.of_change("Deployment", "ns", "web", {"modelVersion": "iris-v1"}) == []
    assert index.of_change("TrainingJob", "ns", "rf", {"datasetRef": {"name": "iris"}}) == []
