"""The `modelwerk` command line."""

import subprocess
import sys

from modelwerk.cli import main


def test_help_lists_every_command(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "crds", "data", "train", "serve"):
        assert f"  {command} " in out


def test_unknown_command_is_a_usage_error(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_console_script_and_module_agree() -> None:
    script = str(__import__("pathlib").Path(sys.executable).with_name("modelwerk"))
    for argv in ([script, "--version"], [sys.executable, "-m", "modelwerk", "--version"]):
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        assert out.strip() == "0.1.0"


def test_crds_check_passes_on_the_committed_files() -> None:
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    assert main(["crds", "--check", "--out", str(root / "crds")]) == 0
