"""One validation run: load the source, check the contract, version, publish, and say so.

The result (camelCase, what the operator copies into ``Dataset.status``)::

    {"valid": bool, "version": "sha256:…", "rows": int, "columns": int,
     "snapshotUri": str | null, "profileUri": str | null,
     "inferredSchema": [{"name", "type", "missing"}], "violations": [{"column", "rule",
     "observed", "count", "message"}], "violationCount": int, "message": str}

Snapshot and profile are written only for valid data: an invalid version is never trained on,
so storing it would only cost space. When the source cannot be read at all the result is
``{"valid": false, "reason": "Unreadable", "error": "…"}``; a SQL source names its cause
instead (``ConnectionFailed``, ``QueryFailed``, ``QueryTimedOut``, ``InvalidSource``), its
error the database's message with the credentials removed. A production source adds
``provenance`` (see :mod:`~modelwerk.runtime.data.production`); with too few labelled rows the
result is ``{"valid": false, "reason": "InsufficientLabels", "labelledRows", "requiredRows",
"provenance", "message"}`` and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelwerk.api.v1alpha1.dataset import Dataset
from modelwerk.runtime import publish, termination
from modelwerk.runtime.data import contract, load, production, profiling, snapshot

EXIT_VERDICT = 0
"""The data was read and judged, valid or not: an invalid dataset is a verdict, not a crash."""
EXIT_FAILED = 1
"""Something else broke (the artifact store refused a write, an unexpected error)."""
EXIT_UNREADABLE = 2
"""The source could not be read: bad URI, missing file, unknown format, corrupt content."""
EXIT_BAD_INPUT = 3
"""The Dataset object or the command line was missing or invalid; retrying will not help."""


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]
    exit_code: int

    @property
    def valid(self) -> bool:
        return bool(self.result.get("valid"))


def failure(reason: str, error: str, exit_code: int) -> Outcome:
    return Outcome({"valid": False, "reason": reason, "error": error}, exit_code)


def validate(dataset: Dataset, root: str, context: production.Context | None = None) -> Outcome:
    """Validate ``dataset`` and publish its snapshot and profile under the artifact ``root``;
    a production source is read with the ``context`` the operator fixed (default: now)."""
    name = dataset.metadata.name
    spec = dataset.spec
    provenance: dict[str, Any] | None = None
    try:
        publish.segment(name)
        if spec.source.production is not None:
            context = context or production.Context.from_env()
            frame, provenance = production.load(dataset, root, context)
        else:
            frame = load.load_source(spec.source)
    except publish.PublishError as error:
        return failure("InvalidInput", str(error), EXIT_BAD_INPUT)
    except load.Unreadable as error:
        return failure(error.reason, str(error), EXIT_UNREADABLE)
    except production.InsufficientLabels as scarce:
        # A verdict on the data, not a failure: the current version stays, nothing is written.
        verdict = {
            "valid": False,
            "reason": "InsufficientLabels",
            "labelledRows": scarce.rows,
            "requiredRows": scarce.required,
            "provenance": scarce.provenance,
            "message": str(scarce),
        }
        return Outcome(verdict, EXIT_VERDICT)

    violations = contract.check(frame, spec.contract, spec.target)
    version = snapshot.version_of(frame)
    valid = not violations
    snapshot_uri: str | None = None
    profile_uri: str | None = None
    if valid:
        root = publish.root_uri(root)
        try:
            if snapshot.is_published(root, name, version):
                # Same content as an earlier run: the directory is immutable, reuse it.
                snapshot_uri, profile_uri = snapshot.uris(snapshot.location(root, name, version))
            else:
                profile = profiling.build_profile(frame, name, version, spec.target)
                snapshot_uri, profile_uri, _ = snapshot.write(frame, profile, root, name)
        except Exception as error:  # any store failure (permissions, full disk, network)
            return failure("ArtifactStoreError", f"{type(error).__name__}: {error}", EXIT_FAILED)

    rows, columns = frame.shape
    short = version.removeprefix("sha256:")[:12]
    if valid:
        message = f"{rows} rows, {columns} columns, version {short}"
    else:
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        message = f"{len(violations)} contract violations: {first.message}{more}"
    result: dict[str, Any] = {
        "valid": valid,
        "version": version,
        "rows": rows,
        "columns": columns,
        "snapshotUri": snapshot_uri,
        "profileUri": profile_uri,
        "inferredSchema": [c.to_k8s() for c in contract.infer_schema(frame)],
        "violations": [v.to_k8s() for v in violations],
        "violationCount": len(violations),
        "message": message,
    }
    if provenance is not None:
        result["provenance"] = provenance
    return Outcome(result, EXIT_VERDICT)


def compact(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` cut to the termination-message limit: violations go first, then the tail of
    the inferred schema (``violationCount`` and ``columns`` keep the full numbers)."""
    return termination.fit(
        result,
        lists=("violations", "inferredSchema", "provenance.production.modelVersions"),
        droppable=("message",),
    )
