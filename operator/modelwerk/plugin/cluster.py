"""The plugin's only contact with the API server: find it as kubectl would, then read, watch and
annotate modelwerk Deployments.

kubectl's conventions: ``--kubeconfig``, else ``$KUBECONFIG`` (a list of files, merged), else
``~/.kube/config``, else the pod's ServiceAccount; ``--context`` picks a context; the namespace
is ``-n``, else the context's, else ``default``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch

from modelwerk.api.commands import COMMAND_ANNOTATION
from modelwerk.plugin.names import GROUP, PLURAL, VERSION

FIELD_MANAGER = "kubectl-modelwerk"
"""Who wrote the annotation, as metadata.managedFields records it."""

_SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_DEFAULT_KUBECONFIG = "~/.kube/config"


class ConfigError(Exception):
    """No usable kubeconfig (or in-cluster identity), or an unknown context."""


class Deleted(Exception):
    """The Deployment was deleted while the plugin watched it."""


@dataclass
class Cluster:
    api: client.CustomObjectsApi
    namespace: str
    server: str

    def close(self) -> None:
        self.api.api_client.close()

    def get(self, name: str, plural: str = PLURAL) -> dict[str, Any]:
        obj: dict[str, Any] = self.api.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name
        )
        return obj

    def list(self, *, all_namespaces: bool, plural: str = PLURAL) -> list[dict[str, Any]]:
        if all_namespaces:
            found = self.api.list_cluster_custom_object(GROUP, VERSION, plural)
        else:
            found = self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)
        return list(found.get("items", []))

    def send_command(self, name: str, value: str) -> dict[str, Any]:
        """Write the command annotation, and nothing else (a merge patch of metadata only)."""
        patch = {"metadata": {"annotations": {COMMAND_ANNOTATION: value}}}
        obj: dict[str, Any] = self.api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            patch,
            field_manager=FIELD_MANAGER,
            _content_type="application/merge-patch+json",
        )
        return obj

    def changes(
        self, name: str, since: dict[str, Any], *, timeout: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Each new state of the Deployment after ``since``, until ``timeout`` seconds pass.

        A watch on this one object (field selector on its name). When the API server has
        compacted past our resourceVersion (410 Gone) the object is read again and yielded,
        so no change is lost. Raises ``Deleted`` when the object goes away.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        version = str(since["metadata"]["resourceVersion"])
        while True:
            remaining = 300.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return
            window = max(1, math.ceil(min(remaining, 300.0)))
            stream = watch.Watch().stream(
                self.api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                field_selector=f"metadata.name={name}",
                resource_version=version,
                timeout_seconds=window,
                _request_timeout=window + 10,
            )
            try:
                for event in stream:
                    obj = event["raw_object"]
                    if event["type"] == "DELETED":
                        raise Deleted(name)
                    version = str(obj["metadata"]["resourceVersion"])
                    yield obj
            except client.ApiException as e:
                if e.status != 410:
                    raise
                fresh = self.get(name)
                version = str(fresh["metadata"]["resourceVersion"])
                yield fresh


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Cluster:
    """A client for the chosen cluster and the namespace kubectl would use."""
    paths = kubeconfig or os.environ.get("KUBECONFIG") or _DEFAULT_KUBECONFIG
    existing = [p for p in paths.split(os.pathsep) if p and Path(p).expanduser().exists()]
    if kubeconfig and not existing:
        raise ConfigError(f"kubeconfig {kubeconfig} does not exist")
    if not existing:
        return _in_cluster(paths, context, namespace)
    joined = os.pathsep.join(existing)
    # kubectl takes current-context from the first file that sets it; the kubernetes package's
    # merger takes the last one, so the context is always named explicitly.
    context = context or _first_current_context(existing)
    try:
        contexts, current = config.list_kube_config_contexts(joined)
        chosen = current
        if context:
            chosen = next((c for c in contexts if c.get("name") == context), None)
            if chosen is None:
                raise ConfigError(f'context "{context}" does not exist in {joined}')
        api_client = config.new_client_from_config(
            config_file=joined, context=context, persist_config=False
        )
    except config.ConfigException as e:
        raise ConfigError(f"cannot use the kubeconfig {joined}: {e}") from None
    default_namespace = (chosen or {}).get("context", {}).get("namespace") or "default"
    return Cluster(
        api=client.CustomObjectsApi(api_client),
        namespace=namespace or default_namespace,
        server=str(api_client.configuration.host),
    )


def _first_current_context(paths: list[str]) -> str | None:
    for path in paths:
        try:
            loaded = yaml.safe_load(Path(path).expanduser().read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read the kubeconfig {path}: {e}") from None
        current = loaded.get("current-context") if isinstance(loaded, dict) else None
        if current:
            return str(current)
    return None


def _in_cluster(paths: str, context: str | None, namespace: str | None) -> Cluster:
    if context or not (_SA_DIR / "token").exists():
        raise ConfigError(
            f"no kubeconfig found (looked at {paths}); pass --kubeconfig or set KUBECONFIG"
        )
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)
    own = (_SA_DIR / "namespace").read_text().strip() if (_SA_DIR / "namespace").exists() else ""
    return Cluster(
        api=client.CustomObjectsApi(client.ApiClient(configuration)),
        namespace=namespace or own or "default",
        server=str(configuration.host),
    )
