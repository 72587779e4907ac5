"""A minimal JSON client for the Kubernetes API, used by the harness itself.

Owns: plain HTTPS requests with kubeconfig credentials (client certificate or
bearer token), returning decoded JSON dicts. The harness speaks to the API in
the API's own camelCase JSON so that its code reads like the Kubernetes docs and
does not depend on the generated Python client; tests use that client
(``kubernetes.client``) through the fixtures.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

JSON = dict[str, Any]


class RestError(RuntimeError):
    """A non-2xx answer; ``status`` is the HTTP code, ``body`` the decoded Status if any."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.body = body


class Rest:
    """JSON requests against one API server."""

    def __init__(self, server: str, context: ssl.SSLContext, token: str | None = None) -> None:
        self.server = server.rstrip("/")
        self._context = context
        self._token = token

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Rest:
        """From the current context of a kubeconfig with embedded data (``write_kubeconfig``)."""
        config = yaml.safe_load(path.read_text())
        context = next(
            c["context"] for c in config["contexts"] if c["name"] == config["current-context"]
        )
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        ssl_context = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
        if "client-certificate-data" in user:
            # ssl only loads key pairs from files: keep them beside the kubeconfig.
            with tempfile.NamedTemporaryFile(
                "wb", dir=path.parent, suffix=".pem", delete=False
            ) as pem:
                pem.write(base64.b64decode(user["client-certificate-data"]))
                pem.write(b"\n" + base64.b64decode(user["client-key-data"]))
            ssl_context.load_cert_chain(pem.name)
            Path(pem.name).unlink()
        return cls(cluster["server"], ssl_context, user.get("token"))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> JSON:
        url = self.server + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "Content-Type": content_type}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._context) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            e.close()
            try:
                detail: Any = json.loads(text)
            except ValueError:
                detail = text
            raise RestError(method, path, e.code, detail) from None
        return json.loads(raw) if raw else {}

    def get(self, path: str, **query: str) -> JSON:
        return self.request("GET", path, query=query or None)

    def create(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body)

    def merge_patch(self, path: str, body: JSON) -> JSON:
        # JSON merge patch replaces lists wholesale: status lists we send are complete.
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, path: str, body: JSON | None = None) -> JSON:
        return self.request("DELETE", path, body)

    def get_or_none(self, path: str) -> JSON | None:
        try:
            return self.get(path)
        except RestError as e:
            if e.status == 404:
                return None
            raise
