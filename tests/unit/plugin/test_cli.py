"""The command line without an API server: arguments, kubeconfig handling and exit codes.

What happens against an API server is tested on the real control plane
(tests/integration/test_plugin.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelwerk.plugin.cli import main
from modelwerk.plugin.cluster import ConfigError, connect


def kubeconfig(path: Path, server: str, contexts: dict[str, str | None], current: str) -> Path:
    """A kubeconfig with one cluster and a context per entry (name -> namespace); names of
    clusters and users are unique per file, so merged files do not shadow each other."""
    cluster, user = f"c-{path.name}", f"u-{path.name}"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": cluster, "cluster": {"server": server}}],
                "users": [{"name": user, "user": {"token": "t"}}],
                "contexts": [
                    {
                        "name": name,
                        "context": {"cluster": cluster, "user": user}
                        | ({"namespace": ns} if ns else {}),
                    }
                    for name, ns in contexts.items()
                ],
                "current-context": current,
            }
        )
    )
    return path


def test_the_namespace_comes_from_the_flag_else_the_context_else_default(tmp_path: Path) -> None:
    config = kubeconfig(
        tmp_path / "config", "https://127.0.0.1:6443", {"a": "team-a", "b": None}, current="a"
    )
    cases = [
        (None, None, "team-a", "https://127.0.0.1:6443"),
        ("b", None, "default", "https://127.0.0.1:6443"),
        ("a", "explicit", "explicit", "https://127.0.0.1:6443"),
    ]
    for context, namespace, expected, server in cases:
        cluster = connect(str(config), context, namespace)
        try:
            assert (cluster.namespace, cluster.server) == (expected, server)
        finally:
            cluster.close()


def test_kubeconfig_env_lists_files_that_are_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kubeconfig(tmp_path / "one", "https://127.0.0.1:1111", {"x": "from-one"}, current="x")
    second = kubeconfig(tmp_path / "two", "https://127.0.0.1:2222", {"y": "from-two"}, current="y")
    missing = tmp_path / "missing"
    monkeypatch.setenv("KUBECONFIG", f"{missing}:{first}:{second}")
    # The first file's current-context wins, as in kubectl; --context reaches the second's.
    for context, namespace, server in [(None, "from-one", 1111), ("y", "from-two", 2222)]:
        cluster = connect(None, context, None)
        try:
            assert (cluster.namespace, cluster.server) == (namespace, f"https://127.0.0.1:{server}")
        finally:
            cluster.close()


def test_an_unknown_context_or_missing_kubeconfig_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", {"a": None}, current="a")
    with pytest.raises(ConfigError, match='context "nope" does not exist'):
        connect(str(config), "nope", None)
    with pytest.raises(ConfigError, match="does not exist"):
        connect(str(tmp_path / "absent"), None, None)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setattr("modelwerk.plugin.cluster._SA_DIR", tmp_path / "no-serviceaccount")
    with pytest.raises(ConfigError, match="no kubeconfig found"):
        connect(None, None, None)


def test_usage_errors_exit_1_not_2(capsys: pytest.CaptureFixture[str]) -> None:
    # 2 is reserved for "the operator did not act in time".
    for argv in (
        ["promote"],
        ["frobnicate", "x"],
        ["abort", "x", "--timeout", "soon"],
        ["pause", "x", "--timeout", "0"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 1, argv
    assert "error:" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("status", "promote", "abort", "pause", "resume", "retry", "history", "list"):
        assert f"    {command} " in out


def test_a_missing_kubeconfig_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "iris", "--kubeconfig", str(tmp_path / "absent")]) == 1
    assert capsys.readouterr().err == f"error: kubeconfig {tmp_path / 'absent'} does not exist\n"


def test_an_unreachable_api_server_exits_1_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    config = kubeconfig(tmp_path / "config", "http://127.0.0.1:1", {"a": None}, current="a")
    # Connection flags work before and after the command, as with kubectl.
    assert main(["--kubeconfig", str(config), "list", "-n", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the API server at http://127.0.0.1:1:")


def test_the_console_script_is_installed_as_a_kubectl_plugin() -> None:
    # kubectl finds plugins as executables named kubectl-<name> on PATH.
    script = Path(sys.executable).with_name("kubectl-modelwerk")
    for argv in (
        [str(script), "--version"],
        [sys.executable, "-m", "modelwerk.plugin", "--version"],
    ):
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        assert out.strip() == "kubectl-modelwerk 0.1.0"


def test_without_the_kubernetes_package_the_plugin_says_what_to_install() -> None:
    # The operator's install leaves the package out; `None` in sys.modules makes the import
    # fail as it would then.
    code = (
        "import sys\n"
        "sys.modules['kubernetes'] = None\n"
        "from modelwerk.plugin.entry import main\n"
        "sys.exit(main())\n"
    )
    run = subprocess.run([sys.executable, "-c", code, "list"], capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr == (
        "error: kubectl-modelwerk needs the kubernetes package, which this installation of "
        "modelwerk lacks; install it with: pip install 'modelwerk[plugin]'\n"
    )
