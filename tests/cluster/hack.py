"""The project's scripts under hack/ (not a package), loaded once each by path, and the pinned
tools hack/tools.py provides: helm, the Prometheus server, promtool."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

HACK = Path(__file__).resolve().parents[2] / "hack"


def script(relative: str) -> ModuleType:
    """``hack/<relative>`` as a module (``tools.py``, ``dist.py``, ``kube/build.py``)."""
    # kube/build.py under the name hack/tools.py and hack/node load it by, so that everyone
    # shares one module (and one BinariesUnavailable).
    name = "modelwerk_" + relative.removesuffix(".py").replace("/", "_")
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HACK / relative)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def tool(name: str) -> Path:
    """The path of a pinned tool, built or fetched into the cache when needed; the test fails
    (never skips) when it cannot be had."""
    tools = script("tools.py")
    try:
        path: Path = tools.ensure(name)
    except tools.Unavailable as exc:
        pytest.fail(f"{name} is needed here: {exc}")
    return path
