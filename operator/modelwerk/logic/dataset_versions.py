"""A TrainingJob pinned to a past Dataset version (``spec.datasetRef.version``).

Snapshots are content-addressed and never overwritten, so a past version stays readable
after the Dataset moved on. The version is looked up in the Dataset's ``status.history`` (a
prefix of 12 or more hex digits is enough when it names one entry); a full hash that fell off
the bounded history is still found where every version of the Dataset is stored, next to the
current one (``datasets/<name>/<hex>/``), and the trainer checks the snapshot's hash when it
reads it, so a version that is not there fails the run with that cause.

The run then sees the Dataset as if that version were current and Ready: every Job of the
run reads the pinned snapshot, and the run is not disturbed by newer versions.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.api.v1alpha1.dataset_production import DatasetHistoryEntry
from modelwerk.api.v1alpha1.training_job import TrainingJob
from modelwerk.logic.plan import Plan
from modelwerk.logic.training_launch import (
    DATASET_READY,
    WAIT_FOR_DATASET_SECONDS,
    ObservedTraining,
    training_status,
)

_SNAPSHOT_DIR = "/datasets/"


def find_version(dataset: Dataset, wanted: str) -> DatasetHistoryEntry | str:
    """The entry of ``wanted``, or why it cannot be used."""
    hexes = wanted.removeprefix("sha256:")
    status = dataset.status
    entries = list(status.history or [])
    if status.version and status.snapshot_uri and all(e.version != status.version for e in entries):
        entries.insert(0, _current(dataset))
    found = {e.version: e for e in entries if e.version.removeprefix("sha256:").startswith(hexes)}
    if len(found) == 1:
        return next(iter(found.values()))
    name = dataset.metadata.name
    if len(found) > 1:
        return f"version {wanted} of Dataset {name} is ambiguous: it begins {len(found)} versions"
    derived = _derived(dataset, hexes)
    if derived is not None:
        return derived
    known = ", ".join(e.version.removeprefix("sha256:")[:12] for e in entries[:5]) or "none yet"
    return f"Dataset {name} has no version {wanted} (known: {known})"


def pinned_view(dataset: Dataset, entry: DatasetHistoryEntry) -> Dataset:
    """``dataset`` as if ``entry`` were its current, Ready version."""
    status = dataset.status.model_copy(
        update={
            "phase": "Ready",
            "observed_generation": dataset.metadata.generation,
            "version": entry.version,
            "short_version": entry.version.removeprefix("sha256:")[:12],
            "snapshot_uri": entry.snapshot_uri,
            "profile_uri": entry.profile_uri,
            "rows": entry.rows,
            "columns": entry.columns,
        }
    )
    return dataset.model_copy(update={"status": status})


def _current(dataset: Dataset) -> DatasetHistoryEntry:
    s = dataset.status
    assert s.version is not None
    return DatasetHistoryEntry(
        version=s.version,
        rows=s.rows,
        columns=s.columns,
        snapshot_uri=s.snapshot_uri,
        profile_uri=s.profile_uri,
        published_time=s.last_validated_time,
        provenance=s.provenance,
    )


def _derived(dataset: Dataset, hexes: str) -> DatasetHistoryEntry | None:
    """The full version ``hexes`` stored beside the current snapshot, by the store's layout."""
    s = dataset.status
    if len(hexes) != 64 or not s.version or not s.snapshot_uri or not s.profile_uri:
        return None
    current = s.version.removeprefix("sha256:")
    marker = f"{_SNAPSHOT_DIR}{dataset.metadata.name}/{current}/"
    if marker not in s.snapshot_uri or marker not in s.profile_uri:
        return None
    moved = f"{_SNAPSHOT_DIR}{dataset.metadata.name}/{hexes}/"
    return DatasetHistoryEntry(
        version=f"sha256:{hexes}",
        snapshot_uri=s.snapshot_uri.replace(marker, moved),
        profile_uri=s.profile_uri.replace(marker, moved),
    )


def pin_dataset(
    tj: TrainingJob, observed: ObservedTraining, *, now: datetime
) -> ObservedTraining | Plan:
    """``observed`` with the pinned version as the Dataset's current one, or the status that
    says the version cannot be found (checked again every 30 s: a run may name a version
    that a Dataset is about to publish)."""
    wanted = tj.spec.dataset_ref.version
    if wanted is None or observed.dataset is None:
        return observed
    entry = find_version(observed.dataset, wanted)
    if isinstance(entry, str):
        new = training_status(
            tj,
            now=now,
            phase="Pending",
            ready="False",
            reason="DatasetVersionNotFound",
            message=entry,
            conditions=[(DATASET_READY, "False", "DatasetVersionNotFound")],
        )
        return Plan(status=new, requeue_after=WAIT_FOR_DATASET_SECONDS)
    return replace(observed, dataset=pinned_view(observed.dataset, entry))
