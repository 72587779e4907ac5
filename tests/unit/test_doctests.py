"""The worked examples in docstrings are tests too."""

import doctest
import importlib
import pkgutil

import pytest

import modelwerk

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(modelwerk.__path__, "modelwerk.")
    if info.name.split(".")[1] in {"api", "logic", "builders", "kube", "crdgen", "statistics"}
    or info.name
    in (
        "modelwerk.runtime.storage",
        "modelwerk.runtime.data.sql",
        "modelwerk.runtime.server.experiment",
        "modelwerk.runtime.server.shadow",
    )
    or info.name.startswith("modelwerk.runtime.capture.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELWERK_PVC_ROOT", raising=False)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
