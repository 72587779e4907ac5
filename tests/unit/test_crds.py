"""crds/ is generated from the API models: in sync, structural, documented, well named."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelwerk import crdgen
from modelwerk.api.v1alpha1 import KINDS

ROOT = Path(__file__).resolve().parents[2]
CRDS = {name: yaml.safe_load(text) for name, text in crdgen.render().items()}

# Short names of built-in kinds (kubectl api-resources on a stock cluster): ours must not clash.
BUILTIN_SHORT_NAMES = {
    "cs",
    "cm",
    "ep",
    "ev",
    "limits",
    "ns",
    "no",
    "pvc",
    "pv",
    "po",
    "rc",
    "quota",
    "sa",
    "svc",
    "crd",
    "crds",
    "ds",
    "deploy",
    "rs",
    "sts",
    "hpa",
    "cj",
    "csr",
    "ing",
    "netpol",
    "pdb",
    "pc",
    "sc",
    "ingclass",
    "rb",
    "crb",
    "vac",
    "mwc",
    "vwc",
    "apisvc",
    "eps",
}


def _schemas(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node under an openAPIV3Schema, with its path."""
    found = [(path, node)]
    for name, child in (node.get("properties") or {}).items():
        found += _schemas(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _schemas(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _schemas(node["additionalProperties"], f"{path}{{}}")
    return found


def _crd_schemas() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for name, crd in CRDS.items():
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        out += [(name, path, node) for path, node in _schemas(schema)]
    return out


def test_committed_crds_match_the_models() -> None:
    stale = [
        name for name, text in crdgen.render().items() if (ROOT / "crds" / name).read_text() != text
    ]
    assert not stale, f"run `python -m modelwerk.crdgen`: {stale} drifted"
    assert crdgen.main(["--check", "--out", str(ROOT / "crds")]) == 0


def test_check_mode_detects_drift(tmp_path: Path) -> None:
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 0
    victim = tmp_path / "datasets.modelwerk.dev.yaml"
    victim.write_text(victim.read_text().replace("Dataset", "DataSet", 1))
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize(
    "name,path,node", _crd_schemas(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_field_is_documented_and_structural(
    name: str, path: str, node: dict[str, Any]
) -> None:
    assert (
        "description" in node
        or path in {".metadata"}
        or path.endswith("{}")
        or path.endswith("[]")
        or path == ""
    ), f"{name}: {path} has no description (add an attribute docstring)"
    # The scale subresource needs spec.replicas to exist: its default is the one written.
    kept = {("deployments.modelwerk.dev.yaml", ".spec.replicas"): 1}
    if (name, path) in kept:
        assert node["default"] == kept[name, path]
    for forbidden in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "const", "default"):
        if forbidden == "default" and (name, path) in kept:
            continue
        assert forbidden not in node, f"{name}: {path} has {forbidden}"
    assert node.get("type") != "null", f"{name}: {path} has a null type"
    if "properties" in node:
        assert node.get("type") == "object", f"{name}: {path} has properties but is not an object"
    if "type" not in node:
        assert node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string"
        ), f"{name}: {path} has no type"


def test_names_short_names_and_category() -> None:
    kinds = {}
    for crd in CRDS.values():
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        names = crd["spec"]["names"]
        kinds[names["kind"]] = names
        assert names["categories"] == ["modelwerk"]
        assert not set(names["shortNames"]) & BUILTIN_SHORT_NAMES
        version = crd["spec"]["versions"][0]
        assert version["subresources"]["status"] == {}
        assert any(c["name"] == "Age" for c in version["additionalPrinterColumns"])
    assert set(kinds) == {k.crd.kind for k in KINDS}
    assert "mwd" in kinds["Deployment"]["shortNames"]
    assert kinds["ModelVersion"]["shortNames"] == ["mv"]


def test_one_of_fields_and_immutability_have_cel_rules() -> None:
    text = "".join(crdgen.render().values())
    assert "set exactly one of source.builtin, source.uri, source.sql or source.production" in text
    assert "set exactly one of setWeight, pause, analysis" in text
    assert "set exactly one of modelVersion, modelSelector" in text
    mv = CRDS["modelversions.modelwerk.dev.yaml"]["spec"]["versions"][0]["schema"]
    rules = mv["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
    guarded = {r["message"].split()[0] for r in rules if "immutable" in r["message"]}
    spec_fields = set(mv["openAPIV3Schema"]["properties"]["spec"]["properties"])
    assert guarded == {f"spec.{f}" for f in spec_fields - {"stage"}}


def test_conditions_are_a_list_map_keyed_by_type() -> None:
    for name, path, node in _crd_schemas():
        if path == ".status.conditions":
            assert node["x-kubernetes-list-type"] == "map", name
            assert node["x-kubernetes-list-map-keys"] == ["type"], name
            item = node["items"]
            assert set(item["required"]) >= {"type", "status", "reason", "lastTransitionTime"}


def test_deployment_has_a_scale_subresource() -> None:
    version = CRDS["deployments.modelwerk.dev.yaml"]["spec"]["versions"][0]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
