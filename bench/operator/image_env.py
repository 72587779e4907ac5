"""A Python environment with the operator image's packages, for the measured operator process.

``images/operator/Dockerfile`` installs the project's ``dependencies`` (no extras) and then the
project itself with ``--no-deps``. The development venv has every extra on top, and one of
them, the kubernetes package, changes the operator's memory: kopf imports its models whenever
it is installed. So the benchmark runs the operator in a venv made the Dockerfile's way:

1. ``pip install -r <the dependencies>``, pinned to the versions of the development venv
   (``pip freeze`` as constraints), so that the only difference from the development venv is
   the packages the image leaves out; cached in ``~/.cache/modelwerk/bench/`` by its inputs;
2. ``pip install --no-deps --force-reinstall .``, on every run, so it runs the code of the tree.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

from tests.cluster.controlplane import REPO_ROOT


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelwerk" / "bench"


def _pip(python: Path, *args: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True
    )


def operator_python(say: Callable[[str], None] = print) -> Path:
    """The interpreter of a venv holding what the operator image holds; made when missing."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = "\n".join(project["dependencies"]) + "\n"
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    key = hashlib.sha256(f"{sys.version}\n{requirements}\n{frozen}".encode()).hexdigest()[:16]
    venv = cache_root() / f"operator-venv-{key}"
    python = venv / "bin" / "python"
    if not (venv / "COMPLETE").is_file():
        say(f"making the operator image's venv in {venv} (once)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        (venv / "requirements.txt").write_text(requirements)
        (venv / "constraints.txt").write_text(frozen)
        _pip(
            python,
            "install",
            "-r",
            str(venv / "requirements.txt"),
            "-c",
            str(venv / "constraints.txt"),
        )
        (venv / "COMPLETE").write_text(requirements)
    _pip(python, "install", "--no-deps", "--force-reinstall", str(REPO_ROOT))
    return python
