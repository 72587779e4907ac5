"""Where the API server is and how to authenticate, from a kubeconfig or the pod's identity.

The result feeds both kopf's login and our own HTTP client, so both act as the same identity.

Kubeconfigs are read here, not with the kubernetes package: kopf imports that package's
generated models whenever it is installed, which costs the operator about 42 MiB of memory
(bench/operator/results.md), and the operator needs only a kubeconfig's static parts. Users
that authenticate through an ``exec`` plugin or an ``auth-provider`` are the exception: for
them the kubernetes package is imported, only then (the ``plugin`` extra installs it).

The conventions are kubectl's: ``$KUBECONFIG`` is a list of files merged in order (the first
definition of a name wins, as does the first ``current-context``); relative file paths in a
kubeconfig are relative to the file that holds them; ``token`` wins over ``tokenFile``; the
``-data`` fields are base64.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_TOKEN_REREAD_SECONDS = 60.0
_DEFAULT_KUBECONFIG = "~/.kube/config"


class ConfigError(Exception):
    """No usable kubeconfig or in-cluster identity; the message says what is wrong."""


@dataclass
class Credentials:
    server: str
    ca_path: str | None = None
    ca_data: str | None = None
    """PEM text of the CA bundle (a kubeconfig's ``certificate-authority-data``, decoded)."""
    insecure: bool = False
    token: str | None = None
    token_file: str | None = None
    """Read instead of ``token``, and again every minute: projected tokens rotate."""
    cert_path: str | None = None
    cert_data: str | None = None
    key_path: str | None = None
    key_data: str | None = None
    namespace: str | None = None
    """The context's namespace, or the pod's own namespace in a cluster."""
    _token_read_at: float | None = field(default=None, repr=False)

    def bearer_token(self) -> str | None:
        """The current token; projected service-account tokens rotate, so re-read the file."""
        now = time.monotonic()
        if self.token_file and (
            self._token_read_at is None or now - self._token_read_at > _TOKEN_REREAD_SECONDS
        ):
            self.token = Path(self.token_file).read_text().strip()
            self._token_read_at = now
        return self.token

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_path, cadata=self.ca_data)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_data is not None or self.key_data is not None:
            _load_key_pair(context, self)
        elif self.cert_path and self.key_path:
            context.load_cert_chain(self.cert_path, self.key_path)
        return context


def _load_key_pair(context: ssl.SSLContext, creds: Credentials) -> None:
    """``ssl`` loads client key pairs only from files: write inline ones to a private
    temporary file for the moment it takes."""
    cert = creds.cert_data if creds.cert_data is not None else _read(creds.cert_path)
    key = creds.key_data if creds.key_data is not None else _read(creds.key_path)
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as pem:  # mode 0600
        pem.write(f"{cert.rstrip()}\n{key.rstrip()}\n")
        pem.flush()
        context.load_cert_chain(pem.name)


def _read(path: str | None) -> str:
    assert path is not None  # load() pairs every certificate with a key
    return Path(path).read_text()


def load(kubeconfig: str | None, context: str | None = None) -> Credentials:
    """Credentials from ``kubeconfig`` (one file, or several joined by ``os.pathsep``), else
    in-cluster, else ``$KUBECONFIG``, else ``~/.kube/config``; ``context`` overrides the
    kubeconfig's current context."""
    if kubeconfig:
        return from_kubeconfig(kubeconfig.split(os.pathsep), context)
    if (SA_DIR / "token").exists():
        return in_cluster()
    # Kubernetes' own conventions, not operator settings (those are MODELWERK_*).
    return from_kubeconfig(
        (os.environ.get("KUBECONFIG") or _DEFAULT_KUBECONFIG).split(os.pathsep), context
    )


def in_cluster(sa_dir: Path = SA_DIR, environ: Mapping[str, str] = os.environ) -> Credentials:
    """The pod's ServiceAccount: the API server's Service from the environment the kubelet
    sets, the token (re-read as it rotates), the cluster's CA and the pod's namespace."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError(
            "a ServiceAccount token is mounted but KUBERNETES_SERVICE_HOST and "
            "KUBERNETES_SERVICE_PORT are not set; set MODELWERK_KUBECONFIG to run outside a pod"
        )
    if ":" in host:  # IPv6
        host = f"[{host}]"
    ca, namespace = sa_dir / "ca.crt", sa_dir / "namespace"
    return Credentials(
        server=f"https://{host}:{port}",
        ca_path=str(ca) if ca.exists() else None,
        token_file=str(sa_dir / "token"),
        namespace=namespace.read_text().strip() if namespace.exists() else None,
    )


@dataclass
class _Entry:
    """A named cluster, user or context, and the directory its relative paths start from."""

    fields: dict[str, Any]
    base: Path


@dataclass
class _Merged:
    files: list[str]
    current: str | None = None
    clusters: dict[str, _Entry] = field(default_factory=dict)
    users: dict[str, _Entry] = field(default_factory=dict)
    contexts: dict[str, _Entry] = field(default_factory=dict)


def _merge(paths: list[str]) -> _Merged:
    named = [p for p in paths if p]
    merged = _Merged(files=[])
    for raw in named:
        path = Path(raw).expanduser()
        if not path.is_file():
            if len(named) == 1:
                raise ConfigError(f"kubeconfig {path} does not exist")
            continue  # kubectl skips the missing files of a $KUBECONFIG list
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"kubeconfig {path} is not valid YAML: {exc}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {path} is not a mapping")
        merged.files.append(str(path))
        merged.current = merged.current or doc.get("current-context") or None
        for section, into in (
            ("clusters", merged.clusters),
            ("users", merged.users),
            ("contexts", merged.contexts),
        ):
            for item in doc.get(section) or []:
                name = item.get("name") if isinstance(item, dict) else None
                if not name:
                    raise ConfigError(f"kubeconfig {path}: an entry of {section} has no name")
                fields = item.get(section[:-1]) or {}
                into.setdefault(name, _Entry(fields, path.resolve().parent))
    if not merged.files:
        raise ConfigError(f"no kubeconfig found at {os.pathsep.join(named) or '(none given)'}")
    return merged


def from_kubeconfig(paths: list[str], context: str | None = None) -> Credentials:
    """Credentials of ``context`` (default: the current context) of the merged files."""
    config = _merge(paths)
    where = ", ".join(config.files)
    name = context or config.current
    if not name:
        raise ConfigError(
            f"kubeconfig {where} has no current-context; set one "
            "(kubectl config use-context NAME) or name a context"
        )
    ctx = config.contexts.get(name)
    if ctx is None:
        known = ", ".join(sorted(config.contexts)) or "none"
        raise ConfigError(f"context {name!r} is not in kubeconfig {where} (contexts: {known})")
    cluster = config.clusters.get(ctx.fields.get("cluster", ""))
    if cluster is None:
        raise ConfigError(
            f"context {name!r} names cluster {ctx.fields.get('cluster')!r}, "
            f"which is not in kubeconfig {where}"
        )
    user_name = ctx.fields.get("user")
    user = config.users.get(user_name) if user_name else _Entry({}, cluster.base)
    if user is None:
        raise ConfigError(
            f"context {name!r} names user {user_name!r}, which is not in kubeconfig {where}"
        )
    if "exec" in user.fields or "auth-provider" in user.fields:
        return _delegated(config.files, name, user_name or "", ctx.fields.get("namespace"))
    if "username" in user.fields or "password" in user.fields:
        raise ConfigError(
            f"user {user_name!r} uses basic authentication, which Kubernetes no longer "
            "supports; use a token or a client certificate"
        )
    server = cluster.fields.get("server")
    if not server:
        raise ConfigError(f"cluster {ctx.fields['cluster']!r} has no server")
    what = f"user {user_name!r}"
    cert_path, cert_data = _file_or_data(user, "client-certificate", what)
    key_path, key_data = _file_or_data(user, "client-key", what)
    if (cert_path or cert_data) and not (key_path or key_data):
        raise ConfigError(f"{what} has a client certificate but no client key")
    if (key_path or key_data) and not (cert_path or cert_data):
        raise ConfigError(f"{what} has a client key but no client certificate")
    ca_path, ca_data = _file_or_data(
        cluster, "certificate-authority", f"cluster {ctx.fields['cluster']!r}"
    )
    token = user.fields.get("token") or None
    token_file = None
    if token is None and user.fields.get("tokenFile"):
        token_file = _path(user, "tokenFile", what)
    return Credentials(
        server=str(server).rstrip("/"),
        ca_path=ca_path,
        ca_data=ca_data,
        insecure=bool(cluster.fields.get("insecure-skip-tls-verify", False)),
        token=str(token) if token is not None else None,
        token_file=token_file,
        cert_path=cert_path,
        cert_data=cert_data,
        key_path=key_path,
        key_data=key_data,
        namespace=ctx.fields.get("namespace") or None,
    )


def _file_or_data(entry: _Entry, key: str, what: str) -> tuple[str | None, str | None]:
    """(path, None) for ``key``, (None, decoded PEM) for ``key-data``; the data wins."""
    data = entry.fields.get(f"{key}-data")
    if data:
        try:
            return None, base64.b64decode(str(data), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(f"{what}: {key}-data is not base64 of a PEM file") from None
    if entry.fields.get(key):
        return _path(entry, key, what), None
    return None, None


def _path(entry: _Entry, key: str, what: str) -> str:
    path = entry.base / str(entry.fields[key])  # an absolute path stays as it is
    if not path.is_file():
        raise ConfigError(f"{what}: {key} {path} does not exist")
    return str(path)


def _delegated(files: list[str], context: str, user: str, namespace: str | None) -> Credentials:
    """Credentials of an ``exec`` or ``auth-provider`` user, through the kubernetes package."""
    try:
        from kubernetes import config as kube_config
        from kubernetes.client import Configuration
    except ImportError:
        raise ConfigError(
            f"user {user!r} of context {context!r} authenticates through an exec plugin or "
            "an auth provider, which needs the kubernetes package: pip install kubernetes "
            "(or modelwerk[plugin])"
        ) from None
    cfg = Configuration()
    kube_config.load_kube_config(
        config_file=os.pathsep.join(files), context=context, client_configuration=cfg
    )
    auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    token = auth.removeprefix("Bearer ").strip() if auth else None
    return Credentials(
        server=cfg.host.rstrip("/"),
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        token=token,
        cert_path=cfg.cert_file,
        key_path=cfg.key_file,
        namespace=namespace or None,
    )
