"""Volumes for PersistentVolumeClaims: a directory on the node per claim.

Owns: the node's default StorageClass and a small provisioner behind it. The operator's
artifact claim (one per namespace) needs a dynamic provisioner, as kind's local-path one
is on kind. The controller-manager's built-in hostPath provisioner creates its directories
0750 root, which the non-root pods (uid 65532) could not write; this one creates them
world-writable under the node's volume directory and deletes them with their claim.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from pathlib import Path
from typing import Any

from tests.cluster.rest import Rest, RestError

from nodectl import layout

PROVISIONER = "modelwerk.dev/node-hostpath"
STORAGE_CLASS = "modelwerk-node"


def storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


class Provisioner:
    """Polls claims and volumes every ``interval`` seconds in a daemon thread."""

    def __init__(self, rest: Rest, interval: float = 1.0) -> None:
        self.rest = rest
        self.interval = interval
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="provisioner", daemon=True)

    def start(self) -> None:
        with contextlib.suppress(RestError):  # already there on a restart of the supervisor
            self.rest.create("/apis/storage.k8s.io/v1/storageclasses", storage_class())
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.reconcile()
            except Exception as e:  # keep provisioning; the supervisor log shows why
                self.errors.append(repr(e))
                print(f"[provisioner] {e!r}", flush=True)

    def reconcile(self) -> None:
        for claim in self.rest.get("/api/v1/persistentvolumeclaims")["items"]:
            spec = claim["spec"]
            if (
                claim.get("status", {}).get("phase") == "Pending"
                and spec.get("storageClassName") == STORAGE_CLASS
                and not spec.get("volumeName")
            ):
                self._provision(claim)
        for volume in self.rest.get("/api/v1/persistentvolumes")["items"]:
            annotations = volume["metadata"].get("annotations", {})
            if annotations.get("pv.kubernetes.io/provisioned-by") == PROVISIONER and volume.get(
                "status", {}
            ).get("phase") in ("Released", "Failed"):
                self._delete(volume)

    def _provision(self, claim: dict[str, Any]) -> None:
        meta = claim["metadata"]
        path = layout.VOLUMES_DIR / f"{meta['namespace']}-{meta['name']}-{meta['uid'][:8]}"
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # pods run as arbitrary non-root users
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": f"pvc-{meta['uid']}",
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            },
            "spec": {
                "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
                "accessModes": claim["spec"]["accessModes"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": STORAGE_CLASS,
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        try:
            self.rest.create("/api/v1/persistentvolumes", volume)
        except RestError as e:
            if e.status != 409:
                raise

    def _delete(self, volume: dict[str, Any]) -> None:
        path = Path(volume["spec"].get("hostPath", {}).get("path", ""))
        if layout.VOLUMES_DIR in path.parents:  # never delete anything else
            shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(RestError):
            self.rest.delete(f"/api/v1/persistentvolumes/{volume['metadata']['name']}")
