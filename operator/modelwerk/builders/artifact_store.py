"""Where workload pods keep artifacts: the per-namespace claim, or a bucket on an object store.

Every pod the operator starts gets ``MODELWERK_ARTIFACT_ROOT`` (the namespace's root URI) and,
for an object store, the standard AWS variables: ``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``,
and the access key pair as ``secretKeyRef``s into a Secret of the pod's namespace. The key
values never pass through the operator: it never reads Secrets (its role has no verb on them),
so it cannot put one into a pod spec, a status, an Event or a log line.

Q: Why does the operator-wide bucket get a ``/<namespace>`` suffix and an override not?
A: One operator-wide bucket is shared by every namespace, so each one gets its own prefix (the
   runtime refuses paths that climb out of its root). A namespace's own override names a
   location its owner chose for that namespace alone; it is used as given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from modelwerk.api.base import DNS_SUBDOMAIN

STORE_CONFIGMAP = "modelwerk-artifact-store"
"""The ConfigMap a namespace owner creates to give the namespace its own artifact store."""
OVERRIDE_KEYS = ("uri", "endpoint", "region", "secretName")
ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN = "AWS_SESSION_TOKEN"

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9_.=+-]{1,255}$")
_ENDPOINT = re.compile(r"^https?://[^\s/?#@]+(/[^\s?#]*)?$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class StoreConfigError(ValueError):
    """An artifact store setting that cannot be used; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class ArtifactStore:
    """A validated artifact store: build one with :func:`parse_store`."""

    scheme: Literal["pvc", "s3"]
    location: str
    """The claim name (pvc) or ``<bucket>[/<prefix>]`` (s3)."""
    endpoint: str | None = None
    region: str | None = None
    secret: str | None = None
    per_namespace_prefix: bool = True
    """Add ``/<namespace>`` to an s3 root: true for the operator-wide store."""
    source: Literal["operator", "namespace"] = "operator"
    """Where the setting came from: the operator's settings or the namespace's ConfigMap."""

    @property
    def remote(self) -> bool:
        return self.scheme != "pvc"

    @property
    def claim(self) -> str | None:
        """The PersistentVolumeClaim the store lives on, for a pvc store."""
        return self.location if self.scheme == "pvc" else None

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.location}"

    def root(self, namespace: str) -> str:
        """``MODELWERK_ARTIFACT_ROOT`` of the pods in ``namespace``.

        >>> parse_store("s3://mlops/artifacts").root("team-a")
        's3://mlops/artifacts/team-a'
        >>> parse_store("pvc://modelwerk-artifacts").root("team-a")
        'pvc://modelwerk-artifacts'
        """
        if self.scheme == "s3" and self.per_namespace_prefix:
            return f"{self.uri}/{namespace}"
        return self.uri

    def env(self, namespace: str) -> list[dict[str, Any]]:
        """The pod's environment entries for this store; credentials only by reference."""
        env: list[dict[str, Any]] = [
            {"name": "MODELWERK_ARTIFACT_ROOT", "value": self.root(namespace)}
        ]
        if not self.remote:
            return env
        if self.endpoint:
            env.append({"name": "AWS_ENDPOINT_URL", "value": self.endpoint})
        if self.region:
            env.append({"name": "AWS_DEFAULT_REGION", "value": self.region})
        if self.secret:
            for key, optional in (
                (ACCESS_KEY_ID, False),
                (SECRET_ACCESS_KEY, False),
                (SESSION_TOKEN, True),
            ):
                ref: dict[str, Any] = {"name": self.secret, "key": key}
                if optional:
                    ref["optional"] = True
                env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
        return env


def parse_store(
    uri: str,
    *,
    endpoint: str | None = None,
    region: str | None = None,
    secret: str | None = None,
    source: Literal["operator", "namespace"] = "operator",
    fields: tuple[str, str, str, str] = OVERRIDE_KEYS,
) -> ArtifactStore:
    """Validate an artifact store setting; ``fields`` name the four inputs in errors.

    >>> parse_store("s3://ml-bucket/a/b", endpoint="http://10.0.0.1:7070").location
    'ml-bucket/a/b'
    >>> parse_store("gs://bucket")
    Traceback (most recent call last):
    ...
    modelwerk.builders.artifact_store.StoreConfigError: uri: 'gs://bucket' is not pvc://<claim> or s3://<bucket>[/<prefix>] (GCS: s3:// through its interoperability endpoint)
    """
    uri_field, endpoint_field, region_field, secret_field = fields
    scheme, sep, location = uri.strip().partition("://")
    location = location.rstrip("/")
    if not sep or scheme not in ("pvc", "s3") or not location:
        raise StoreConfigError(
            uri_field,
            f"{uri!r} is not pvc://<claim> or s3://<bucket>[/<prefix>]"
            " (GCS: s3:// through its interoperability endpoint)",
        )
    if scheme == "pvc":
        if not re.match(DNS_SUBDOMAIN, location) or len(location) > 253:
            raise StoreConfigError(uri_field, f"{location!r} is not a valid claim name")
        for name, value in ((endpoint_field, endpoint), (secret_field, secret)):
            if value:
                raise StoreConfigError(name, "only applies to an s3:// store")
        return ArtifactStore("pvc", location, source=source, per_namespace_prefix=False)
    bucket, _, prefix = location.partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise StoreConfigError(uri_field, f"{bucket!r} is not a valid bucket name")
    for segment in prefix.split("/") if prefix else ():
        if segment in (".", "..") or not _PREFIX_SEGMENT.match(segment):
            raise StoreConfigError(
                uri_field, f"prefix segment {segment!r} must be letters, digits or _.=+-"
            )
    if endpoint and not _ENDPOINT.match(endpoint):
        raise StoreConfigError(
            endpoint_field, f"{endpoint!r} is not an http(s) URL (credentials do not go here)"
        )
    if region and not _REGION.match(region):
        raise StoreConfigError(region_field, f"{region!r} is not a region name")
    if secret and (not re.match(DNS_SUBDOMAIN, secret) or len(secret) > 253):
        raise StoreConfigError(secret_field, f"{secret!r} is not a valid Secret name")
    return ArtifactStore(
        "s3",
        location,
        endpoint=endpoint or None,
        region=region or None,
        secret=secret or None,
        per_namespace_prefix=source == "operator",
        source=source,
    )


def claim_of(uri: str | None) -> str | None:
    """The PersistentVolumeClaim a ``pvc://`` URI lives on.

    >>> claim_of("pvc://modelwerk-artifacts/models/m/x/model.joblib")
    'modelwerk-artifacts'
    >>> claim_of("s3://bucket/model.joblib") is None
    True
    """
    if not uri or not uri.startswith("pvc://"):
        return None
    return uri.removeprefix("pvc://").split("/", 1)[0] or None


def is_remote(uri: str) -> bool:
    """Whether a pod must download ``uri`` rather than open it on a mounted volume.

    >>> is_remote("s3://b/m/model.joblib"), is_remote("pvc://c/m/model.joblib")
    (True, False)
    """
    return not uri.startswith(("pvc://", "file://"))
