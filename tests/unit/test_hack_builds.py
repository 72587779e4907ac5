"""The build runner of hack/kube and the pinned tools of hack/tools.py, driven by a stand-in ``go``.

The builds themselves run for real in the integration tier and in ``.ci/run``; here a small
script plays ``go build -v`` so the runner's own behaviour is checked in milliseconds: output
collected, failures reported with the output's tail, and no pipe left open (a ResourceWarning,
an error in this suite, when the binaries were built inside a pytest session).
"""

from __future__ import annotations

import gc
from pathlib import Path
from types import ModuleType

import pytest

from tests.cluster.hack import script


@pytest.fixture
def kube_build() -> ModuleType:
    return script("kube/build.py")


def fake_go(tmp_path: Path, exit_code: int) -> str:
    script = tmp_path / "go"
    script.write_text(
        "#!/bin/sh\n"
        'for p in a b c; do echo "example.com/pkg/$p"; done\n'
        f'[ {exit_code} -eq 0 ] || echo "compile error: $*" >&2\n'
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)
    return str(script)


def test_a_build_closes_its_output_pipe(kube_build: ModuleType, tmp_path: Path) -> None:
    messages: list[str] = []
    kube_build._go_build(fake_go(tmp_path, 0), ["etcd"], tmp_path, messages.append)
    gc.collect()  # an unclosed pipe would be reported here, failing this test
    assert messages[-1].startswith("[kube] built etcd in ")


def test_a_failed_build_says_what_went_wrong(kube_build: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(kube_build.BinariesUnavailable) as failed:
        kube_build.go_build(fake_go(tmp_path, 2), ["-o", "x", "example.com/cmd"], tmp_path, print)
    gc.collect()
    message = str(failed.value)
    assert "failed (exit 2)" in message
    assert "example.com/pkg/c" in message  # the output's tail
    assert "compile error: build -v -o x example.com/cmd" in message


def test_a_tool_comes_from_its_variable_when_it_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = script("tools.py")
    monkeypatch.setenv("HELM", fake_go(tmp_path, 0))
    assert tools.ensure("helm") == tmp_path / "go"
    monkeypatch.setenv("HELM", str(tmp_path / "absent"))
    with pytest.raises(tools.Unavailable, match="is not an executable"):
        tools.ensure("helm")
    with pytest.raises(tools.Unavailable, match="unknown tool"):
        tools.ensure("kubectl")


def test_a_pinned_go_command_is_built_once_then_served_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = script("tools.py")
    module = tmp_path / "module"
    module.mkdir()
    (module / "go.mod").write_text("module example.com/tool\n")
    (module / "go.sum").write_text("")
    calls = tmp_path / "calls"
    go = tmp_path / "go"
    go.write_text(  # writes an executable to the path after -o, and counts its calls
        "#!/bin/sh\n"
        f'echo called >> "{calls}"\n'
        'while [ "$1" != "-o" ]; do shift; done\n'
        'printf "#!/bin/sh\\necho tool\\n" > "$2"; chmod +x "$2"\n'
    )
    go.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TOOL", raising=False)

    def ensure(*flags: str) -> Path:
        command = tools.GoCommand(str(module), "example.com/tool/cmd", "v1.0.0", flags, "TOOL")
        monkeypatch.setattr(tools, "GO_COMMANDS", {"tool": command})
        path: Path = tools.ensure("tool")
        return path

    first = ensure("-trimpath")
    assert first == tmp_path / "cache" / "modelwerk" / "tool" / "v1.0.0" / "tool"
    assert ensure("-trimpath") == first
    assert calls.read_text().count("called") == 1  # the second lookup was the cache
    ensure("-trimpath", "-tags=other")  # other flags: another binary, built again
    (module / "go.sum").write_text("example.com/dep v1.0.0 h1:x\n")
    ensure("-trimpath", "-tags=other")  # another dependency set: built again
    assert calls.read_text().count("called") == 3
