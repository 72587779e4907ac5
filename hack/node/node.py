#!/usr/bin/env python3
"""A real single-node Kubernetes cluster on this machine: ``up``, ``down``, ``status``.

Run as root with the project's virtualenv (it reuses the control-plane harness in
tests/cluster): ``sudo .venv/bin/python hack/node/node.py up``. See hack/node/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # nodectl, and the repo root for tests.cluster

try:
    from nodectl.cli import main
except ModuleNotFoundError as e:  # e.g. the system python without the project's venv
    sys.exit(
        f"[node] {e}: run this with the project's virtualenv (`make install`, then"
        " `.venv/bin/python hack/node/node.py ...`)"
    )

if __name__ == "__main__":
    sys.exit(main())
