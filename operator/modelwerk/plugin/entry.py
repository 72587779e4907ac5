"""The ``kubectl-modelwerk`` executable: says what to install when the plugin's one extra
dependency, the kubernetes package, is missing (the operator's own install leaves it out)."""

from __future__ import annotations

import sys

MISSING = (
    "error: kubectl-modelwerk needs the kubernetes package, which this installation of "
    "modelwerk lacks; install it with: pip install 'modelwerk[plugin]'\n"
)


def main() -> int:
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        sys.stderr.write(MISSING)
        return 1
    from modelwerk.plugin.cli import main as run

    return run()
