"""Reading kubeconfigs and the in-cluster identity without the kubernetes package.

The shapes are the ones kubectl accepts: inline data, files relative to the kubeconfig,
tokens and token files, several files merged through $KUBECONFIG, and the pod's
ServiceAccount. The key pairs are real (made here with ``cryptography``), so the SSL contexts
really load them.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import ssl
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from modelwerk.kube import credentials
from modelwerk.kube.credentials import ConfigError, Credentials, from_kubeconfig, in_cluster

SERVER = "https://127.0.0.1:6443"


@pytest.fixture(scope="module")
def pem() -> dict[str, str]:
    """A self-signed certificate (also used as the CA) and its key, as PEM text."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelwerk-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return {
        "cert": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    }


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def config(
    clusters: dict[str, dict[str, Any]],
    users: dict[str, dict[str, Any]],
    contexts: dict[str, dict[str, Any]],
    current: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in users.items()],
        "contexts": [{"name": n, "context": c} for n, c in contexts.items()],
    }
    if current is not None:
        doc["current-context"] = current
    return doc


def write(path: Path, doc: dict[str, Any], *, as_json: bool = False) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc) if as_json else yaml.safe_dump(doc))
    return str(path)


def one(cluster: dict[str, Any], user: dict[str, Any], **context: Any) -> dict[str, Any]:
    return config(
        {"c": cluster}, {"u": user}, {"ctx": {"cluster": "c", "user": "u", **context}}, "ctx"
    )


def test_inline_token_and_ca_data_as_the_test_harness_writes_them(
    tmp_path: Path, pem: dict[str, str]
) -> None:
    # JSON is YAML: tests/cluster writes kubeconfigs as JSON.
    doc = one(
        {"server": SERVER + "/", "certificate-authority-data": b64(pem["cert"])}, {"token": "abc"}
    )
    creds = from_kubeconfig([write(tmp_path / "config", doc, as_json=True)])
    assert creds.server == SERVER  # no trailing slash: paths are appended to it
    assert (creds.ca_path, creds.ca_data) == (None, pem["cert"])
    assert (creds.token, creds.bearer_token(), creds.insecure) == ("abc", "abc", False)
    assert creds.cert_path is creds.cert_data is creds.namespace is None
    context = creds.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1


def test_client_certificate_files_are_relative_to_the_kubeconfig(
    tmp_path: Path, pem: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home" / ".kube"
    (home / "pki").mkdir(parents=True)
    (home / "pki" / "client.crt").write_text(pem["cert"])
    (home / "pki" / "client.key").write_text(pem["key"])
    (home / "ca.crt").write_text(pem["cert"])
    doc = one(
        {"server": SERVER, "certificate-authority": "ca.crt"},
        {"client-certificate": "pki/client.crt", "client-key": "pki/client.key"},
        namespace="team-a",
    )
    path = write(home / "config", doc)
    monkeypatch.chdir(tmp_path)  # the working directory plays no part
    creds = from_kubeconfig([path])
    assert creds.ca_path == str(home / "ca.crt")
    assert creds.cert_path == str(home / "pki" / "client.crt")
    assert creds.key_path == str(home / "pki" / "client.key")
    assert (creds.token, creds.namespace) == (None, "team-a")
    assert len(creds.ssl_context().get_ca_certs()) == 1  # the key pair loads too


def test_inline_client_key_pair_loads_through_a_private_temporary_file(
    tmp_path: Path, pem: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = one(
        {"server": SERVER, "insecure-skip-tls-verify": True},
        {"client-certificate-data": b64(pem["cert"]), "client-key-data": b64(pem["key"])},
    )
    creds = from_kubeconfig([write(tmp_path / "config", doc)])
    assert (creds.cert_data, creds.key_data, creds.insecure) == (pem["cert"], pem["key"], True)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    seen: list[int] = []
    real = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: str, *args: Any, **kwargs: Any) -> None:
        seen.append(stat.S_IMODE(os.stat(certfile).st_mode))
        real(self, certfile, *args, **kwargs)

    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    context = creds.ssl_context()
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    assert seen == [0o600]  # only its owner could read the key meanwhile
    assert list(scratch.iterdir()) == []  # and it is gone


def test_an_explicit_context_wins_over_the_current_one(tmp_path: Path) -> None:
    doc = config(
        {"prod": {"server": "https://prod:6443"}, "dev": {"server": "https://dev:6443"}},
        {"admin": {"token": "p"}, "me": {"token": "d"}},
        {
            "prod": {"cluster": "prod", "user": "admin"},
            "dev": {"cluster": "dev", "user": "me", "namespace": "sandbox"},
        },
        current="prod",
    )
    path = write(tmp_path / "config", doc)
    assert from_kubeconfig([path]).server == "https://prod:6443"
    dev = from_kubeconfig([path], "dev")
    assert (dev.server, dev.token, dev.namespace) == ("https://dev:6443", "d", "sandbox")


def test_merged_files_first_definition_wins_and_paths_stay_with_their_file(
    tmp_path: Path, pem: dict[str, str]
) -> None:
    (tmp_path / "b" / "certs").mkdir(parents=True)
    (tmp_path / "b" / "certs" / "ca.pem").write_text(pem["cert"])
    first = write(
        tmp_path / "a" / "config",
        config(
            {"shared": {"server": "https://first:6443"}},
            {"u": {"token": "first"}},
            {"ctx-a": {"cluster": "shared", "user": "u"}},
            current="ctx-b",
        ),
    )
    second = write(
        tmp_path / "b" / "config",
        config(
            {
                "shared": {"server": "https://second:6443"},
                "own": {"server": "https://own:6443", "certificate-authority": "certs/ca.pem"},
            },
            {"u": {"token": "second"}},
            {"ctx-b": {"cluster": "own", "user": "u"}},
            current="ctx-a",
        ),
    )
    missing = str(tmp_path / "nowhere" / "config")  # kubectl skips it
    creds = from_kubeconfig([first, missing, second])  # current-context of the first file
    assert (creds.server, creds.token) == ("https://own:6443", "first")
    assert creds.ca_path == str(tmp_path / "b" / "certs" / "ca.pem")
    assert from_kubeconfig([first, second], "ctx-a").server == "https://first:6443"


def test_token_file_is_read_and_read_again_as_it_rotates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("one\n")
    path = write(tmp_path / "config", one({"server": SERVER}, {"tokenFile": "token"}))
    creds = from_kubeconfig([path])
    assert (creds.token, creds.token_file) == (None, str(tmp_path / "token"))
    clock = [1000.0]
    monkeypatch.setattr(credentials.time, "monotonic", lambda: clock[0])
    assert creds.bearer_token() == "one"
    (tmp_path / "token").write_text("two\n")
    clock[0] += 30
    assert creds.bearer_token() == "one"  # not on every request
    clock[0] += 31
    assert creds.bearer_token() == "two"
    # An inline token wins over a token file, as in kubectl.
    both = write(tmp_path / "both", one({"server": SERVER}, {"token": "t", "tokenFile": "token"}))
    assert (from_kubeconfig([both]).token_file, from_kubeconfig([both]).bearer_token()) == (
        None,
        "t",
    )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (config({"c": {"server": SERVER}}, {}, {"x": {"cluster": "c"}}), "has no current-context"),
        (
            one({"server": SERVER}, {}) | {"current-context": "gone"},
            r"context 'gone' is not in kubeconfig .* \(contexts: ctx\)",
        ),
        (config({}, {}, {"x": {"cluster": "c"}}, "x"), "names cluster 'c', which is not in"),
        (
            config({"c": {"server": SERVER}}, {}, {"x": {"cluster": "c", "user": "u"}}, "x"),
            "names user 'u', which is not in",
        ),
        (one({}, {"token": "t"}), "cluster 'c' has no server"),
        (one({"server": SERVER}, {"username": "a", "password": "b"}), "basic authentication"),
        (one({"server": SERVER}, {"client-certificate-data": b64("x")}), "no client key"),
        (one({"server": SERVER}, {"client-key": "k.pem"}), r"client-key .*k\.pem does not exist"),
        (
            one({"server": SERVER, "certificate-authority-data": "%%%"}, {}),
            "certificate-authority-data is not base64",
        ),
        (
            one({"server": SERVER, "certificate-authority": "/no/ca.crt"}, {}),
            "certificate-authority /no/ca.crt does not exist",
        ),
        (one({"server": SERVER}, {"tokenFile": "missing-token"}), "tokenFile .* does not exist"),
    ],
)
def test_unusable_kubeconfigs_say_what_is_wrong(
    tmp_path: Path, doc: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        from_kubeconfig([write(tmp_path / "config", doc)])


def test_a_context_without_a_user_is_anonymous(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config", config({"c": {"server": SERVER}}, {}, {"x": {"cluster": "c"}}, "x")
    )
    creds = from_kubeconfig([path])
    assert creds.bearer_token() is None and creds.cert_path is creds.cert_data is None


def test_missing_or_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kubeconfig .*nope does not exist"):
        from_kubeconfig([str(tmp_path / "nope")])
    with pytest.raises(ConfigError, match="no kubeconfig found"):
        from_kubeconfig([str(tmp_path / "nope"), str(tmp_path / "neither")])
    (tmp_path / "bad").write_text("clusters: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        from_kubeconfig([str(tmp_path / "bad")])


def test_in_cluster_identity(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "ca.crt").write_text("ca")
    (tmp_path / "namespace").write_text("modelwerk-system")
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    creds = in_cluster(tmp_path, env)
    assert creds == Credentials(
        server="https://10.0.0.1:443",
        ca_path=str(tmp_path / "ca.crt"),
        token_file=str(tmp_path / "token"),
        namespace="modelwerk-system",
    )
    assert creds.bearer_token() == "sa-token"
    ipv6 = in_cluster(tmp_path, {**env, "KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert ipv6.server == "https://[fd00::1]:443"
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster(tmp_path, {})


def test_load_prefers_the_given_file_then_the_pod_then_kubeconfig_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = write(tmp_path / "given", one({"server": "https://given:6443"}, {}))
    env_file = write(tmp_path / "env", one({"server": "https://env:6443"}, {}))
    sa = tmp_path / "sa"
    sa.mkdir()
    monkeypatch.setattr(credentials, "SA_DIR", sa)
    monkeypatch.setenv("KUBECONFIG", env_file)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert credentials.load(given).server == "https://given:6443"
    assert credentials.load(None).server == "https://env:6443"  # no token mounted
    (sa / "token").write_text("t")
    assert credentials.load(None).server == "https://10.0.0.1:443"
    assert credentials.load(given).server == "https://given:6443"


EXEC_PLUGIN = """
import json
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "kind": "ExecCredential",
    "status": {"token": "from-exec"},
}))
"""


def exec_kubeconfig(tmp_path: Path) -> str:
    (tmp_path / "plugin.py").write_text(EXEC_PLUGIN)
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(tmp_path / "plugin.py")],
            "interactiveMode": "Never",
        }
    }
    return write(tmp_path / "config", one({"server": SERVER}, user, namespace="ns"))


def test_exec_users_go_through_the_kubernetes_package(tmp_path: Path) -> None:
    # The dev install has the package; the command really runs (a Python script here).
    creds = from_kubeconfig([exec_kubeconfig(tmp_path)])
    assert (creds.server, creds.bearer_token(), creds.namespace) == (SERVER, "from-exec", "ns")


def test_exec_users_without_the_kubernetes_package_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes `import kubernetes` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "kubernetes", None)
    with pytest.raises(ConfigError, match=r"exec plugin .* needs the kubernetes package"):
        from_kubeconfig([exec_kubeconfig(tmp_path)])


def test_the_operator_runs_without_the_kubernetes_package() -> None:
    """The operator image leaves the package out (kopf imports its models whenever it can,
    42 MiB): the operator's modules must load without it."""
    code = (
        "import sys\n"
        "sys.modules['kubernetes'] = None  # as if not installed\n"
        "import modelwerk.handlers, modelwerk.handlers.main, modelwerk.cli\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
