"""operator/ is the source root, never a package: it must not shadow the stdlib module."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_package_marker_in_source_root() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_import_operator_is_the_standard_library_from_the_repository_root() -> None:
    code = "import operator, sys; print(operator.__file__); print(operator.itemgetter(1)([0, 42]))"
    for cwd in (ROOT, ROOT / "operator"):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.split()
        assert out[0].startswith(sys.base_prefix) or "/lib/python3" in out[0], out
        assert not out[0].startswith(str(ROOT)), out
        assert out[1] == "42"


def test_package_imports_without_side_effects() -> None:
    code = "import modelwerk, sys; print('kopf' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
