"""Where the API server is and how to authenticate, from a kubeconfig or the pod's identity.

The kubernetes package parses kubeconfigs (exec plugins, inline certificates and all); the
result feeds both kopf's login and our own HTTP client, so both act as the same identity.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from kubernetes import config as kube_config
from kubernetes.client import Configuration

_SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
_TOKEN_REREAD_SECONDS = 60.0


@dataclass
class Credentials:
    server: str
    ca_path: str | None
    insecure: bool
    token: str | None
    token_file: str | None
    cert_path: str | None
    key_path: str | None
    _token_read_at: float = 0.0

    def bearer_token(self) -> str | None:
        """The current token; projected service-account tokens rotate, so re-read the file."""
        if self.token_file and time.monotonic() - self._token_read_at > _TOKEN_REREAD_SECONDS:
            self.token = Path(self.token_file).read_text().strip()
            self._token_read_at = time.monotonic()
        return self.token

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_path)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_path and self.key_path:
            context.load_cert_chain(self.cert_path, self.key_path)
        return context


def load(kubeconfig: str | None) -> Credentials:
    """Credentials from ``kubeconfig``, else in-cluster, else the default kubeconfig."""
    cfg = Configuration()
    token_file = None
    if kubeconfig:
        kube_config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    elif _SA_TOKEN.exists():
        kube_config.load_incluster_config(client_configuration=cfg)
        token_file = str(_SA_TOKEN)
    else:
        kube_config.load_kube_config(client_configuration=cfg)
    auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    token = auth.removeprefix("Bearer ").strip() if auth else None
    return Credentials(
        server=cfg.host.rstrip("/"),
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        token=token,
        token_file=token_file,
        cert_path=cfg.cert_file,
        key_path=cfg.key_file,
    )
